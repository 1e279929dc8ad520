"""The response cache on POST /v1/responses through a real gateway, real Redis and the official
openai SDK (client.responses.create, unary and streamed), against a target that speaks the
Responses API (native: the fake gets /v1/responses) and one that is translated (chat)."""

from __future__ import annotations

import time

import httpx
import openai
import orjson
import pytest
import redis

from tests.cache.test_cache_gateway import KEY_B, cache_crs, wait_stored
from tests.gateway.harness import TENANT_KEY
from tests.ledger.conftest import ledger_url, postgres_server  # noqa: F401  (fixtures: a real PostgreSQL)
from tests.ledger.support import wait_rows

PROVIDERS = {"native": "openai", "translated": "openai-compatible"}
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def client(gw, key: str = TENANT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=15)


def create(sdk: openai.OpenAI, **kwargs):
    """(response, x-aigw-cache) of a unary create."""
    raw = sdk.responses.with_raw_response.create(model="gpt-test", temperature=0, **kwargs)
    return raw.parse(), raw.headers["x-aigw-cache"]


def stream(sdk: openai.OpenAI, **kwargs):
    """(events, x-aigw-cache) of a streamed create."""
    with sdk.responses.with_streaming_response.create(model="gpt-test", temperature=0, stream=True, **kwargs) as raw:
        return list(raw.parse()), raw.headers["x-aigw-cache"]


def kinds(events) -> list[str]:
    """Event types with runs of deltas collapsed (a live stream splits its text into several)."""
    out: list[str] = []
    for event in events:
        if not (out and out[-1] == event.type and event.type.endswith(".delta")):
            out.append(event.type)
    return out


def upstream_calls(fake) -> int:
    return sum(1 for r in fake.requests if r.method == "POST")


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_second_identical_request_is_a_hit_unary_and_streamed_and_chains(tmp_path, fake_openai, redis_server,
                                                                          start_gateway, kind):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai, provider=PROVIDERS[kind]), "--redis-url", redis_server.url)
    sdk = client(gw)
    first, result = create(sdk, input="what is two plus two", instructions="Be brief.", metadata={"run": "1"})
    assert result == "miss"
    wait_stored(redis_server.url, 1)
    second, result = create(sdk, input="what is two plus two", instructions="Be brief.", metadata={"run": "2"},
                            store=True, user="someone")
    assert result == "hit"
    assert upstream_calls(fake_openai) == 1  # the upstream saw one call
    assert second.output_text == first.output_text and second.output_text.startswith("echo: ")
    assert second.usage == first.usage and second.status == "completed"
    assert second.id != first.id and second.id.startswith("resp_aigw_")  # a new response, never the cached one
    assert second.metadata == {"run": "2"} and second.instructions == "Be brief."  # the caller's own settings
    assert sdk.responses.retrieve(second.id).output_text == second.output_text  # kept like a live answer

    follow, result = create(sdk, input="and then?", previous_response_id=second.id)
    assert result == "miss" and follow.output_text == "echo: and then?"
    sent = orjson.dumps(fake_openai.requests[-1].json).decode()
    assert first.output_text in sent  # the hit's conversation went upstream as history
    wait_stored(redis_server.url, 2)
    third, result = create(sdk, input="what is two plus two", instructions="Be brief.")
    assert result == "hit" and third.id not in (first.id, second.id)
    again, result = create(sdk, input="and then?", previous_response_id=third.id)  # the same conversation
    assert result == "hit" and again.output_text == follow.output_text and again.previous_response_id == third.id

    live, result = stream(sdk, input="a streamed question")
    assert result == "miss"
    wait_stored(redis_server.url, 3)
    calls = upstream_calls(fake_openai)
    replayed, result = stream(sdk, input="a streamed question", store=True)
    assert result == "hit" and upstream_calls(fake_openai) == calls
    assert kinds(replayed) == kinds(live)  # the same event sequence as a live stream
    assert kinds(live)[0] == "response.created" and kinds(live)[-1] == "response.completed"
    done, live_done = replayed[-1].response, live[-1].response
    assert done.output_text == live_done.output_text and done.usage == live_done.usage and done.usage.total_tokens
    assert "".join(e.delta for e in replayed if e.type == "response.output_text.delta") == done.output_text
    assert done.id != live_done.id and {e.response.id for e in replayed if hasattr(e, "response")} == {done.id}
    assert sdk.responses.retrieve(done.id).output_text == done.output_text


@pytest.mark.parametrize("scope,b_hits", [("tenant", False), ("route", True)])
def test_scope_tenant_never_crosses_tenants_and_route_does(tmp_path, fake_openai, redis_server, start_gateway, scope,
                                                           b_hits):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai, cache=f"{{mode: exact, scope: {scope}}}", provider="openai"),
                       "--redis-url", redis_server.url)
    assert create(client(gw), input="hello")[1] == "miss"
    wait_stored(redis_server.url, 1)
    assert create(client(gw), input="hello")[1] == "hit"
    assert create(client(gw, KEY_B), input="hello")[1] == ("hit" if b_hits else "miss")


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_pii_is_masked_in_the_entry_and_each_tenant_gets_its_own_values(tmp_path, fake_openai, redis_server,
                                                                        start_gateway, kind):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai, cache="{mode: exact, scope: route}", guard=True,
                                       provider=PROVIDERS[kind]), "--redis-url", redis_server.url)
    first, result = create(client(gw), input="write to alice@example.com please", instructions="Mail alice@example.com.",
                           metadata={"contact": "alice@example.com"}, user="alice@example.com")
    assert result == "miss" and "alice@example.com" in first.output_text
    wait_stored(redis_server.url, 1)
    other, result = create(client(gw, KEY_B), input="write to bob@example.org please", instructions="Mail bob@example.org.")
    assert result == "hit"
    assert "bob@example.org" in other.output_text and "alice" not in other.model_dump_json()
    events, result = stream(client(gw, KEY_B), input="write to carol@example.net please",
                            instructions="Mail carol@example.net.")
    assert result == "hit"
    assert "carol@example.net" in events[-1].response.output_text
    assert "carol@example.net" in "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert upstream_calls(fake_openai) == 1
    store = redis.Redis.from_url(redis_server.url)
    keys = store.keys("aigw:cache:*")
    assert keys
    for key in keys:
        value = store.get(key) or b""
        assert b"alice" not in value and b"bob@" not in value and b"carol" not in value and b"example" not in value, value
    store.close()


def test_hits_cost_nothing_count_requests_and_record_savings(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    crs = cache_crs(tmp_path, fake_openai, provider="openai")
    text = open(crs).read().replace("  apiKeySecretRefs: [{name: team-a-key}]\n",
                                    "  apiKeySecretRefs: [{name: team-a-key}]\n  budget: {amount: 100}\n")
    open(crs, "w").write(text)
    gw = start_gateway("-f", crs, "--redis-url", redis_server.url)
    sdk = client(gw)
    raw = sdk.responses.with_raw_response.create(model="gpt-test", temperature=0, input="how much is this")
    live_cost = float(raw.headers["x-aigw-cost-usd"])
    assert raw.headers["x-aigw-cache"] == "miss" and live_cost > 0
    wait_stored(redis_server.url, 1)
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        raw = sdk.responses.with_raw_response.create(model="gpt-test", temperature=0, input="how much is this")
        timings.append(time.perf_counter() - started)
        assert raw.headers["x-aigw-cache"] == "hit" and float(raw.headers["x-aigw-cost-usd"]) == 0
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        usage = http.get("/v1/usage", headers={"authorization": f"Bearer {TENANT_KEY}"}).json()
    assert abs(usage["budget"]["spend_usd"] - live_cost) < 1e-9, usage  # hits added nothing
    assert usage["requests"]["used"] == 21, usage  # but every request counts toward RPM
    metrics = httpx.get(gw.ops_url + "/metrics").text
    saved = [line for line in metrics.splitlines() if line.startswith("aigw_cache_saved_usd_total{")]
    assert saved and abs(float(saved[0].split()[-1]) - 20 * live_cost) < 1e-9, saved
    print(f"/v1/responses exact hit p50 (client-side, SDK): {sorted(timings)[10] * 1000:.1f} ms")


def test_tool_calls_and_provider_state_are_not_cached(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai, provider="openai"), "--redis-url", redis_server.url)
    sdk = client(gw)
    calling, result = create(sdk, input="weather in Paris?", tools=[TOOL])
    assert result == "miss" and calling.output[0].type == "function_call"
    first, _ = create(sdk, input="plain question")
    wait_stored(redis_server.url, 1)  # the plain answer; the tool call awaiting its result is not stored
    assert create(sdk, input="weather in Paris?", tools=[TOOL])[1] == "miss"
    assert create(sdk, input="plain question")[1] == "hit"
    # A conversation the provider keeps (a native previous response) is not the request's to say.
    assert create(sdk, input="and then?", previous_response_id=first.id)[1] == "bypass"
    assert create(sdk, input="plain question", background=True)[1] == "bypass"
    metrics = httpx.get(gw.ops_url + "/metrics").text
    assert 'aigw_cache_bypass_total{reason="provider_state",route="main"}' in metrics
    assert 'aigw_cache_bypass_total{reason="background",route="main"}' in metrics


def test_a_hit_is_a_ledger_row_with_cache_hit_and_no_cost(tmp_path, fake_openai, redis_server, ledger_url,
                                                          start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake_openai, provider="openai"), "--redis-url", redis_server.url,
                       "--ledger-url", ledger_url, wait=False)
    gw.wait_ready(timeout=60)
    sdk = client(gw)
    assert create(sdk, input="for the books")[1] == "miss"
    wait_stored(redis_server.url, 1)
    assert create(sdk, input="for the books")[1] == "hit"
    assert stream(sdk, input="for the books")[1] == "hit"
    found = sorted(wait_rows(ledger_url, 3), key=lambda row: row["ts"])
    assert [(r["api"], r["cache"], r["stream"]) for r in found] == [
        ("responses", "miss", False), ("responses", "hit", False), ("responses", "hit", True)], found
    assert found[0]["cost_usd"] > 0 and found[1]["cost_usd"] == 0 and found[2]["cost_usd"] == 0
    assert found[1]["input_tokens"] == found[0]["input_tokens"] and found[1]["target"] == ""

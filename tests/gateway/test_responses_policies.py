"""Limits, budgets, the cost header, guardrails (PII mask and restore, streamed too) and fallback
on /v1/responses behave as on /v1/chat/completions (real gateway, real Redis, fake providers)."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.fakes.openai_provider import Behaviour
from tests.gateway.harness import TENANT_KEY, clear_of_a_minute_edge, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}
CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"


def crs(tmp_path, fake, *, tenant: str = "", route: str = "", extra: str = "", provider: str = "openai") -> str:
    path = write_crs(tmp_path / "crs.yaml", fake.base_url, provider=provider, extra=extra,
                     upstream_key=FAKE_ANTHROPIC_API_KEY if provider == "anthropic" else "sk-upstream-test")
    tenant_spec = "  apiKeySecretRefs: [{name: team-a-key}]\n"
    text = path.read_text().replace(tenant_spec, tenant_spec + tenant)
    text = text.replace("      model: fake\n", "      model: fake\n      pricing: {inputPerMillion: 1000, outputPerMillion: 2000}\n"
                        + route, 1)
    path.write_text(text)
    return str(path)


def responses(gw, **body):
    return httpx.post(gw.url + "/v1/responses", headers=AUTH, timeout=15, json={"model": "gpt-test", **body})


def chat(gw, content: str, **body):
    return httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=15,
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": content}], **body})


def test_rpm_limit_answers_429_as_on_chat(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", crs(tmp_path, fake_openai, tenant="  limits: {requestsPerMinute: 3}\n"),
                       "--redis-url", redis_server.url)
    clear_of_a_minute_edge()  # the four requests in one window
    statuses = [responses(gw, input="x").status_code for _ in range(2)] + [chat(gw, "x").status_code]
    r = responses(gw, input="x")
    assert statuses == [200, 200, 200] and r.status_code == 429  # one window for both APIs
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded") and err["request_id"]
    assert r.headers["x-ratelimit-remaining-requests"] == "0" and int(r.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0).responses.create(
            model="gpt-test", input="x")


@pytest.mark.parametrize("provider", ["openai", "openai-compatible"])  # native, and translated to chat
def test_cost_header_and_budget_spend_match_chat(tmp_path, fake_openai, redis_server, start_gateway, provider):
    redis_server.flushall()
    gw = start_gateway("-f", crs(tmp_path, fake_openai, provider=provider,
                                 tenant="  budget: {amount: 100, period: monthly}\n"),
                       "--redis-url", redis_server.url)

    def spend() -> float:
        return httpx.get(gw.url + "/v1/usage", headers=AUTH, timeout=5).json()["budget"]["spend_usd"]

    words = "the same words every time"
    chat_cost = float(chat(gw, words).headers["x-aigw-cost-usd"])
    r = responses(gw, input=words)
    assert r.status_code == 200 and float(r.headers["x-aigw-cost-usd"]) == pytest.approx(chat_cost) and chat_cost > 0
    before = spend()
    text = responses(gw, input=words, stream=True).text
    assert "response.completed" in text
    deadline = time.monotonic() + 5
    while spend() < before + chat_cost * 0.999 and time.monotonic() < deadline:
        time.sleep(0.05)  # a stream settles as it closes
    assert spend() - before == pytest.approx(chat_cost, rel=1e-6)


def test_budget_block_refuses_responses(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", crs(tmp_path, fake_openai, tenant="  budget: {amount: 0.00001, period: daily}\n"),
                       "--redis-url", redis_server.url)
    assert responses(gw, input="spend it all").status_code == 200
    r = responses(gw, input="more")
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"
    assert r.headers["x-aigw-budget-exceeded"] == "block"


GUARD = """---
apiVersion: aigw.dev/v1alpha1
kind: GuardrailPolicy
metadata: {name: pii}
spec:
  failMode: closed
  pii: {direction: both, action: mask, restoreInResponse: true, entities: [email, creditCard]}
  secrets: {action: block}
"""


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_pii_masked_upstream_and_restored_for_the_caller(tmp_path, fake_openai, fake_anthropic, start_gateway,
                                                         provider):
    fake = fake_openai if provider == "openai" else fake_anthropic
    gw = start_gateway("-f", crs(tmp_path, fake, provider=provider, route="  guardrailPolicyRef: pii\n", extra=GUARD))
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=15)
    prompt = f"mail {EMAIL} and charge {CARD} please"
    r = client.responses.create(model="gpt-test", input=prompt, instructions=f"the user is {EMAIL}")
    assert r.output_text == f"echo: {prompt}"  # restored
    raw = b"".join(req.body for req in fake.requests)
    assert EMAIL.encode() not in raw and b"4111 1111" not in raw and b"<EMAIL_1>" in raw
    if provider == "openai":  # still native: the provider got the masked body at /responses
        assert fake.last_request.path == "/v1/responses"
        assert fake.last_request.json["input"] == "mail <EMAIL_1> and charge <CREDIT_CARD_1> please"
    with client.responses.stream(model="gpt-test", input=prompt) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == final.output_text == f"echo: {prompt}"
    raw = b"".join(req.body for req in fake.requests)
    assert EMAIL.encode() not in raw and b"4111 1111" not in raw
    follow = client.responses.create(model="gpt-test", input="again", previous_response_id=r.id)
    assert follow.output_text == "echo: again"
    assert EMAIL.encode() not in fake.last_request.body  # the stored history is masked again
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gpt-test", input="my key is sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 3)
    assert err.value.body["code"] == "guardrail_blocked"


def test_output_guardrail_masks_a_card_split_across_stream_events(tmp_path, fake_openai, start_gateway):
    policy = GUARD.replace("direction: both, action: mask, restoreInResponse: true", "direction: output, action: mask")
    path = crs(tmp_path, fake_openai, route="  guardrailPolicyRef: pii\n", extra=policy)
    text = open(path).read().replace("      model: fake\n", "      model: fake~chunks=12\n", 1)
    open(path, "w").write(text)
    gw = start_gateway("-f", path)
    r = responses(gw, input=f"card {CARD} end", stream=True)
    assert "4111" not in r.text and "<CREDIT_CARD_1>" in r.text and "response.completed" in r.text


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_from_a_failing_native_target(tmp_path, fake_openai_factory, start_gateway, stream):
    primary, backup = fake_openai_factory(), fake_openai_factory()
    primary.set_default(Behaviour(status=503))
    backup_cr = f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: backup}}
spec: {{provider: openai-compatible, baseURL: "{backup.base_url}", apiKeySecretRef: {{name: upstream-key, key: apiKey}}}}
"""
    route = "    - credentialRef: backup\n      model: fake\n      priority: 1\n      pricing: {inputPerMillion: 1000, outputPerMillion: 0}\n  retry: {attempts: 1, initialBackoffMs: 1, maxBackoffMs: 5}\n"
    gw = start_gateway("-f", crs(tmp_path, primary, route=route, extra=backup_cr), "--access-log")
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=15)
    if stream:
        raw = responses(gw, input="hi", stream=True)
        assert raw.status_code == 200 and "event: response.completed" in raw.text
        with client.responses.stream(model="gpt-test", input="hi") as s:
            assert s.get_final_response().output_text == "echo: hi"
    else:
        raw = client.responses.with_raw_response.create(model="gpt-test", input="hi")
        assert raw.parse().output_text == "echo: hi"
    assert raw.headers["x-aigw-target"] == "backup/fake" and raw.headers["x-aigw-attempts"] == "3"
    assert [r.path for r in primary.requests][:2] == ["/v1/responses", "/v1/responses"]  # native, then retried
    assert backup.requests[-1].path == "/v1/chat/completions"  # the fallback translated for the compatible server
    deadline = time.monotonic() + 5  # the access log line is written as the request ends
    while '"path":"/v1/responses"' not in gw.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(json.loads(x[x.index("{"):]) for x in gw.log().splitlines() if '"path":"/v1/responses"' in x)
    assert (line["status"], line["target"], line["attempts"]) == (200, "backup/fake", 3)
    assert line["prompt_tokens"] > 0 and line["cost_usd"] > 0


@pytest.mark.parametrize("provider", ["openai", "openai-compatible"])
def test_a_stream_broken_after_the_first_byte_ends_with_an_error_event(tmp_path, fake_openai, start_gateway, provider):
    path = crs(tmp_path, fake_openai, provider=provider)
    text = open(path).read().replace("      model: fake\n", "      model: fake~disconnect_after=5\n", 1)
    open(path, "w").write(text)
    gw = start_gateway("-f", path)
    r = responses(gw, input="one two three four", stream=True)
    events = [block for block in r.text.strip().split("\n\n")]
    assert events[-1].startswith("event: error\n") and "response.completed" not in r.text
    error = json.loads(events[-1].split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["request_id"] and error["code"]
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=15)
    with pytest.raises(openai.APIError):
        for _ in client.responses.create(model="gpt-test", input="one two three four", stream=True):
            pass

"""Anthropic client -> Anthropic target through a real gateway: the provider receives the client's
bytes (model aside) and the client receives the provider's fields, streamed and not; the
gateway's stages (limits, guardrails, fallback, cost) behave as on the translated path."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.gateway.harness import TENANT_KEY, clear_of_a_minute_edge, write_crs

ROUTE = "claude-route"
UPSTREAM = "claude-fake"
CACHED = f"{UPSTREAM}~cache_read=7~cache_write=5"
EMAIL = "jane.doe@example.com"
PRICING = "      pricing: {inputPerMillion: 3, outputPerMillion: 15}\n"


def crs(tmp_path, fake, *, upstream=UPSTREAM, extra="", route_extra="", target_extra=""):
    path = write_crs(tmp_path / "crs.yaml", fake.base_url, provider="anthropic", model=ROUTE, upstream_model=upstream,
                     upstream_key=FAKE_ANTHROPIC_API_KEY, extra=extra)
    text = path.read_text().replace(f"      model: {upstream}\n", f"      model: {upstream}\n{target_extra}{route_extra}", 1)
    path.write_text(text)
    return str(path)


class Sent:
    """The bytes the SDK put on the wire (an httpx event hook)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def hook(self, request) -> None:
        self.bodies.append(request.read())


def client(gw, sent: Sent | None = None, **headers) -> anthropic.Anthropic:
    hooks = {"request": [sent.hook]} if sent else {}
    return anthropic.Anthropic(base_url=gw.url, api_key=TENANT_KEY, max_retries=0, timeout=15, default_headers=headers,
                               http_client=anthropic.DefaultHttpxClient(event_hooks=hooks))


# Fields the translated path used to drop or rewrite; all must reach the provider untouched.
RICH = dict(
    system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "and exact"}],
    messages=[
        {"role": "user", "content": [{"type": "text", "text": "first question", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                                          {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                      "content": [{"type": "text", "text": "failed STOP here"},
                                                  {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                                     {"type": "text", "text": "say STOP now"}]},
    ],
    tools=[{"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"}}],
    tool_choice={"type": "none"},
    stop_sequences=["STOP"],
    metadata={"user_id": "u-1"},
    extra_body={"top_k": 5, "service_tier": "auto", "output_config": {"effort": "high"}, "context_management": {"edits": []}, "future_field": [1, 2.50, "é"]},
)


def expect_same_bytes(client_body: bytes, upstream_body: bytes) -> None:
    assert upstream_body == client_body.replace(f'"model":"{ROUTE}"'.encode(), f'"model":"{CACHED}"'.encode(), 1)
    assert upstream_body != client_body  # the model name did change


def test_upstream_gets_client_bytes_and_client_gets_provider_fields(tmp_path, fake_anthropic, start_gateway):
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic, upstream=CACHED, target_extra=PRICING))
    sent = Sent()
    raw = client(gw, sent, **{"anthropic-beta": "prompt-caching-2024-07-31"}).messages.with_raw_response.create(
        model=ROUTE, max_tokens=64, **RICH)
    msg = raw.parse()
    upstream = fake_anthropic.last_request
    expect_same_bytes(sent.bodies[-1], upstream.body)
    assert upstream.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert upstream.headers["x-api-key"] == FAKE_ANTHROPIC_API_KEY  # the gateway's credential, not the tenant's
    assert TENANT_KEY not in json.dumps(upstream.headers)
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "STOP"
    assert msg.usage.cache_read_input_tokens == 7 and msg.usage.cache_creation_input_tokens == 5
    assert msg.usage.service_tier == "standard"  # a provider field the translation never knew
    assert msg.model == ROUTE
    # cost from all prompt tokens (cache reads and writes included) as on chat completions
    prompt = msg.usage.input_tokens + 7 + 5
    assert raw.headers["x-aigw-cost-usd"] == f"{(prompt * 3 + msg.usage.output_tokens * 15) / 1e6:.6f}"


def test_stream_is_the_providers_events(tmp_path, fake_anthropic, start_gateway):
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic, upstream=CACHED))
    sent = Sent()
    with client(gw, sent).messages.stream(model=ROUTE, max_tokens=64, **RICH) as stream:
        events = list(stream)
        final = stream.get_final_message()
    expect_same_bytes(sent.bodies[-1], fake_anthropic.last_request.body)
    start = next(e for e in events if e.type == "message_start")
    assert start.message.usage.input_tokens > 0 and start.message.usage.cache_read_input_tokens == 7
    assert start.message.model == ROUTE
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "STOP"
    assert final.usage.cache_creation_input_tokens == 5


def test_raw_stream_bytes_pass_unchanged(tmp_path, fake_anthropic, start_gateway):
    """Apart from message_start (which names the client's model) the SSE bytes are the provider's."""
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic))
    body = {"model": ROUTE, "max_tokens": 32, "stream": True, "messages": [{"role": "user", "content": "a b c d"}]}
    with httpx.stream("POST", gw.url + "/v1/messages", json=body, headers={"x-api-key": TENANT_KEY}, timeout=10) as r:
        got = b"".join(r.iter_raw())
    assert r.status_code == 200
    events = got.split(b"\n\n")
    assert events[0].startswith(b"event: message_start") and f'"model":"{ROUTE}"'.encode() in events[0]
    assert b"event: message_stop" in events[-2] and b'"text_delta"' in got and b"event: ping" in got


def test_system_turn_inside_messages_passes(tmp_path, fake_anthropic, start_gateway):
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic))
    msg = client(gw, **{"anthropic-beta": "claude-code-20250219"}).messages.create(
        model=ROUTE, max_tokens=32, messages=[{"role": "user", "content": "hi"},
                                              {"role": "system", "content": "mid-conversation note"}])
    assert msg.content[0].text == "echo: hi"
    assert fake_anthropic.last_request.json["messages"][1]["role"] == "system"
    # the data-plane route table knows the path: another method is a 405 in the API's error shape
    r = httpx.get(gw.url + "/v1/messages", headers={"x-api-key": TENANT_KEY}, timeout=5)
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["type"] == "error"


def test_guardrails_mask_and_restore_on_passthrough(tmp_path, fake_anthropic, start_gateway):
    policy = """---
apiVersion: aigw.dev/v1alpha1
kind: GuardrailPolicy
metadata: {name: pii}
spec:
  failMode: closed
  pii: {direction: both, action: mask, restoreInResponse: true, entities: [email]}
"""
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic, extra=policy, route_extra="  guardrailPolicyRef: pii\n"))
    c = client(gw)
    prompt = f"write to {EMAIL} today"
    msg = c.messages.create(model=ROUTE, max_tokens=64, system=f"owner {EMAIL}",
                            messages=[{"role": "user", "content": prompt}])
    upstream = fake_anthropic.last_request.body
    assert EMAIL.encode() not in upstream and b"<EMAIL_1>" in upstream
    assert msg.content[0].text == f"echo: {prompt}"
    with c.messages.stream(model=ROUTE, max_tokens=64, messages=[{"role": "user", "content": prompt}]) as stream:
        text = "".join(stream.text_stream)
    assert text == f"echo: {prompt}"  # the placeholder was split across events by the fake (3 slices)
    assert all(EMAIL.encode() not in r.body for r in fake_anthropic.requests)


def test_fallback_to_another_api_translates(tmp_path, fake_anthropic, fake_openai, start_gateway):
    extra = f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: backup}}
spec:
  provider: openai-compatible
  baseURL: {fake_openai.base_url}
  apiKeySecretRef: {{name: backup-key, key: apiKey}}
---
apiVersion: v1
kind: Secret
metadata: {{name: backup-key}}
stringData: {{apiKey: sk-upstream-test}}
"""
    backup = "      priority: 0\n    - credentialRef: backup\n      model: fake\n      priority: 1\n"
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic, upstream=f"{UPSTREAM}~status=529", extra=extra,
                                 target_extra=backup))
    raw = client(gw).messages.with_raw_response.create(model=ROUTE, max_tokens=32, messages=[{"role": "user", "content": "hello"}])
    assert raw.parse().content[0].text == "echo: hello"
    assert raw.headers["x-aigw-target"] == "backup/fake" and "x-aigw-cost-usd" in raw.headers
    with client(gw).messages.stream(model=ROUTE, max_tokens=32, messages=[{"role": "user", "content": "hey you"}]) as s:
        assert "".join(s.text_stream) == "echo: hey you"
    assert fake_openai.last_request.json["messages"][-1]["content"] == "hey you"


def test_token_limits_apply_on_passthrough(tmp_path, fake_anthropic, start_gateway):
    path = crs(tmp_path, fake_anthropic)
    text = open(path).read().replace("  apiKeySecretRefs: [{name: team-a-key}]\n",
                                     "  apiKeySecretRefs: [{name: team-a-key}]\n  limits: {requestsPerMinute: 2}\n")
    open(path, "w").write(text)
    gw = start_gateway("-f", path)
    c = client(gw)
    clear_of_a_minute_edge()  # the three requests in one window
    for _ in range(2):
        c.messages.create(model=ROUTE, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.RateLimitError) as exc:
        c.messages.create(model=ROUTE, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["type"] == "rate_limit_error"


def test_system_turn_translated_for_an_openai_target(tmp_path, fake_openai, start_gateway):
    gw = start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url, model=ROUTE)))
    msg = client(gw, **{"anthropic-beta": "claude-code-20250219"}).messages.create(
        model=ROUTE, max_tokens=32, messages=[{"role": "user", "content": "hi"}, {"role": "system", "content": "be terse"}])
    assert msg.content[0].text == "echo: hi"
    assert fake_openai.last_request.json["messages"][-1] == {"role": "system", "content": "be terse"}
    assert "anthropic-beta" not in fake_openai.last_request.headers  # provider headers go to their provider only


def test_count_tokens_native_and_estimated(tmp_path, fake_anthropic, fake_openai, start_gateway):
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic))
    sent = Sent()
    counted = client(gw, sent).messages.count_tokens(model=ROUTE, system="one two",
                                                     messages=[{"role": "user", "content": "three four five"}])
    assert counted.input_tokens == 5
    upstream = fake_anthropic.last_request
    assert upstream.path == "/v1/messages/count_tokens" and upstream.json["model"] == UPSTREAM
    assert upstream.body == sent.bodies[-1].replace(f'"model":"{ROUTE}"'.encode(), f'"model":"{UPSTREAM}"'.encode())
    # no Anthropic target: the gateway's estimate, and a header that says so
    other = start_gateway("-f", str(write_crs(tmp_path / "o.yaml", fake_openai.base_url, model="gpt-route")))
    raw = client(other).messages.with_raw_response.count_tokens(
        model="gpt-route", messages=[{"role": "user", "content": "three four five"}])
    assert raw.parse().input_tokens > 0 and raw.headers["x-aigw-token-count"] == "estimate"
    with pytest.raises(anthropic.NotFoundError):
        client(other).messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])


def test_budget_and_equal_spend_streamed_or_not(tmp_path, fake_anthropic, redis_server, start_gateway):
    redis_server.flushall()
    path = crs(tmp_path, fake_anthropic, upstream=CACHED, target_extra=PRICING)
    text = open(path).read().replace("  apiKeySecretRefs: [{name: team-a-key}]\n",
                                     "  apiKeySecretRefs: [{name: team-a-key}]\n  budget: {amount: 0.001, period: daily}\n")
    open(path, "w").write(text)
    gw = start_gateway("-f", path, "--redis-url", redis_server.url)

    def spend() -> float:
        return httpx.get(gw.url + "/v1/usage", headers={"x-api-key": TENANT_KEY}, timeout=5).json()["budget"]["spend_usd"]

    c = client(gw)
    ask = dict(model=ROUTE, max_tokens=32, messages=[{"role": "user", "content": "the same words every time"}])
    cost = float(c.messages.with_raw_response.create(**ask).headers["x-aigw-cost-usd"])
    assert cost > 0 and spend() == pytest.approx(cost, rel=1e-6)
    with c.messages.stream(**ask) as stream:
        stream.get_final_message()
    deadline = time.monotonic() + 5
    while spend() < 2 * cost * 0.999 and time.monotonic() < deadline:
        time.sleep(0.05)  # a stream settles as it closes
    assert spend() == pytest.approx(2 * cost, rel=1e-6)  # cache reads and writes priced on both paths
    for _ in range(40):  # spend the rest of the budget, then be refused
        try:
            c.messages.create(**ask)
        except anthropic.RateLimitError as exc:
            assert exc.body["error"]["type"] == "rate_limit_error" and "Budget exceeded" in exc.body["error"]["message"]
            break
    else:
        raise AssertionError("the budget never blocked")


def test_provider_error_event_mid_stream_reaches_the_client(tmp_path, fake_anthropic, start_gateway):
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic, upstream=f"{UPSTREAM}~error_after=4"))
    body = {"model": ROUTE, "max_tokens": 32, "stream": True, "messages": [{"role": "user", "content": "a b c d"}]}
    with httpx.stream("POST", gw.url + "/v1/messages", json=body, headers={"x-api-key": TENANT_KEY}, timeout=10) as r:
        got = b"".join(r.iter_raw())
    assert r.status_code == 200 and got.count(b"event: ") == 5
    assert got.endswith(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n')


def test_error_event_before_any_content_fails_over(tmp_path, fake_anthropic, fake_anthropic_factory, start_gateway):
    backup = fake_anthropic_factory()
    extra = f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: backup}}
spec:
  provider: anthropic
  baseURL: {backup.base_url}
  apiKeySecretRef: {{name: upstream-key, key: apiKey}}
"""
    second = f"      priority: 0\n    - credentialRef: backup\n      model: {UPSTREAM}\n      priority: 1\n"
    gw = start_gateway("-f", crs(tmp_path, fake_anthropic, upstream=f"{UPSTREAM}~error_after=1", extra=extra,
                                 target_extra=second))
    with client(gw).messages.stream(model=ROUTE, max_tokens=32, messages=[{"role": "user", "content": "a b"}]) as s:
        assert "".join(s.text_stream) == "echo: a b"
    assert fake_anthropic.requests  # the primary was tried, and its error event never reached the client
    assert backup.last_request.body == fake_anthropic.last_request.body.replace(b"~error_after=1", b"")

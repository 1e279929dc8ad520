"""The OpenAI surface through the official SDK, against a real gateway process and fake provider."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.fakes.openai_provider import Behaviour
from tests.gateway.harness import TENANT_KEY, write_crs


@pytest.fixture
def gateway(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, max_body=64 * 1024)
    return start_gateway("-f", str(crs))


def client(gw, key=TENANT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=10)


def test_chat_completion_reaches_provider_with_upstream_model_and_key(gateway, fake_openai):
    resp = client(gateway).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hello there"}]
    )
    assert resp.choices[0].message.content == "echo: hello there"
    assert resp.usage.total_tokens > 0
    upstream = fake_openai.last_request
    assert upstream.json["model"] == "fake"  # the route's upstream name, not the client's
    assert upstream.headers["authorization"] == "Bearer sk-upstream-test"  # provider key, not the tenant's


def test_streaming_chat_passes_chunks_through(gateway):
    stream = client(gateway).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "one two three four"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three four"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_is_not_buffered(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, upstream_model="fake~chunks=5~chunk_delay_ms=300")
    gw = start_gateway("-f", str(crs))
    arrivals = []
    with client(gw).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "a b c d e f"}], stream=True
    ) as stream:
        for _ in stream:
            arrivals.append(time.monotonic())
    # Six events spaced 300 ms apart upstream: a buffering proxy would deliver them together.
    assert len(arrivals) >= 6
    assert arrivals[-1] - arrivals[0] > 0.9


def test_tool_call_round_trip(gateway):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    resp = client(gateway).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "use the tool"}], tools=tools
    )
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.choices[0].message.tool_calls[0].function.name == "lookup"


def test_models_lists_routes(gateway):
    ids = [m.id for m in client(gateway).models.list()]
    assert ids == ["gpt-test"]


def _assert_error(resp: httpx.Response, status: int, type_: str, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["type"] == type_ and body["code"] == code
    assert body["request_id"] and body["request_id"] == resp.headers["x-request-id"]
    assert "Traceback" not in resp.text
    return body


def test_wrong_key_is_401_openai_shaped_and_not_echoed(gateway):
    with pytest.raises(openai.AuthenticationError) as exc:
        client(gateway, key="sk-wrong-key-123").models.list()
    assert exc.value.status_code == 401
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": "Bearer sk-wrong-key-123"},
                   json={"model": "gpt-test", "messages": []})
    body = _assert_error(r, 401, "authentication_error", "invalid_api_key")
    assert "sk-wrong-key-123" not in r.text and body["message"] == "invalid API key"
    r = httpx.get(gateway.url + "/v1/models")
    _assert_error(r, 401, "authentication_error", "invalid_api_key")


def test_unknown_model_is_404(gateway):
    with pytest.raises(openai.NotFoundError) as exc:
        client(gateway).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["code"] == "model_not_found"
    assert exc.value.request_id


def test_malformed_json_is_400(gateway):
    r = httpx.post(gateway.url + "/v1/chat/completions", content=b'{"model": "gpt-test",',
                   headers={"authorization": f"Bearer {TENANT_KEY}", "content-type": "application/json"})
    _assert_error(r, 400, "invalid_request_error", "invalid_json")
    r = httpx.post(gateway.url + "/v1/chat/completions", content=b'[1, 2]',
                   headers={"authorization": f"Bearer {TENANT_KEY}"})
    _assert_error(r, 400, "invalid_request_error", "invalid_request")


def test_oversized_body_is_413_declared_or_chunked(gateway):
    big = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "' + b"x" * 70_000 + b'"}]}'
    headers = {"authorization": f"Bearer {TENANT_KEY}"}
    r = httpx.post(gateway.url + "/v1/chat/completions", content=big, headers=headers)
    _assert_error(r, 413, "invalid_request_error", "request_too_large")

    def chunked():  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    r = httpx.post(gateway.url + "/v1/chat/completions", content=chunked(), headers=headers)
    _assert_error(r, 413, "invalid_request_error", "request_too_large")


def test_request_id_is_the_gateways_and_a_client_id_is_only_echoed(gateway):
    auth = {"authorization": f"Bearer {TENANT_KEY}"}
    r = httpx.get(gateway.url + "/v1/models", headers=auth)
    assert r.status_code == 200 and r.headers["x-request-id"].startswith("req_")
    assert "x-aigw-request-id" not in r.headers
    r = httpx.get(gateway.url + "/v1/models", headers={**auth, "x-request-id": "abc-123"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123"
    own = r.headers["x-aigw-request-id"]
    assert own.startswith("req_")
    again = httpx.get(gateway.url + "/v1/models", headers={**auth, "x-request-id": "abc-123"})
    assert again.headers["x-aigw-request-id"] != own  # a reused client id never reuses the key
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={**auth, "x-request-id": "abc-124"},
                   json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and r.headers["x-request-id"] == "abc-124"
    assert r.json()["error"]["request_id"] == r.headers["x-aigw-request-id"]
    r = httpx.get(gateway.url + "/v1/models", headers={**auth, "x-request-id": "bad id with spaces and /slashes"})
    assert r.headers["x-request-id"].startswith("req_") and "x-aigw-request-id" not in r.headers


@pytest.mark.parametrize(
    "behaviour, status, code, tries",
    [
        (Behaviour(status=500), 502, "upstream_error", 3),  # retried: 1 + retry.attempts (2)
        (Behaviour(garbage=True), 502, "upstream_bad_response", 3),
        (Behaviour(status=401), 502, "upstream_error", 1),  # our key is wrong: only a fallback could help
        (Behaviour(status=429, headers={"retry-after": "3"}), 429, "upstream_rate_limited", 1),  # 3 s > maxBackoffMs
        (Behaviour(status=400, error_message="bad temperature"), 400, "upstream_rejected", 1),  # never retried
        (Behaviour(disconnect=True), 502, "upstream_error", 3),
    ],
)
def test_upstream_failures_are_mapped(gateway, fake_openai, behaviour, status, code, tries):
    fake_openai.set_default(behaviour)
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TENANT_KEY}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}, timeout=10)
    body = _assert_error(r, status, r.json()["error"]["type"], code)
    assert "sk-upstream-test" not in r.text and fake_openai.base_url not in body["message"]
    assert len(fake_openai.requests) == tries
    if status == 429:
        assert r.headers["retry-after"] == "3"


def test_transient_failure_is_retried_transparently(gateway, fake_openai):
    fake_openai.script(Behaviour(status=503), Behaviour(status=429, headers={"retry-after": "0"}))
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TENANT_KEY}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "again"}]}, timeout=10)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: again"
    assert r.headers["x-aigw-attempts"] == "3" and len(fake_openai.requests) == 3


def test_upstream_unreachable_is_502_and_stall_is_504(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", "http://127.0.0.1:9/v1")
    gw = start_gateway("-f", str(crs))
    r = httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TENANT_KEY}"},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}, timeout=10)
    _assert_error(r, 502, "upstream_error", "upstream_unreachable")
    assert "127.0.0.1:9" not in r.text


def test_first_byte_timeout_fails_over_to_next_target(tmp_path, fake_openai_factory, start_gateway):
    stalled, healthy = fake_openai_factory(), fake_openai_factory()
    stalled.set_default(Behaviour(stall_seconds=5))
    crs = write_crs(tmp_path / "crs.yaml", stalled.base_url, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: backup}}
spec:
  provider: openai
  baseURL: {healthy.base_url}
  apiKeySecretRef: {{name: upstream-key, key: apiKey}}
""")
    text = crs.read_text().replace(
        "      model: fake\n",
        "      model: fake\n    - credentialRef: backup\n      model: fake\n      priority: 1\n  timeouts: {requestSeconds: 5, firstByteSeconds: 0.5}\n",
    )
    crs.write_text(text)
    gw = start_gateway("-f", str(crs))
    started = time.monotonic()
    stream = client(gw).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "fallback please"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: fallback please"
    assert time.monotonic() - started < 4.5  # did not wait for the stalled target's 5 s
    # A first-byte timeout moves on to the next target at once: no retries on the stalled one.
    assert len(healthy.requests) == 1 and len(stalled.requests) == 1


def test_mid_stream_failure_ends_with_error_event(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, upstream_model="fake~chunks=4~disconnect_after=3")
    gw = start_gateway("-f", str(crs))
    r = httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TENANT_KEY}"},
                   json={"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "a b c d"}]},
                   timeout=10)
    assert r.status_code == 200
    events = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert '"error"' in events[-1] and '"request_id"' in events[-1], r.text
    assert "[DONE]" not in r.text


def test_embeddings_through_the_sdk(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, model="embed-small", upstream_model="fake-embedding")
    gw = start_gateway("-f", str(crs))
    resp = client(gw).embeddings.create(model="embed-small", input=["a b", "c"])
    assert len(resp.data) == 2 and len(resp.data[0].embedding) == 8
    assert fake_openai.last_request.json["model"] == "fake-embedding"
    r = httpx.post(gw.url + "/v1/embeddings", headers={"authorization": f"Bearer {TENANT_KEY}"},
                   json={"model": "embed-small"})
    _assert_error(r, 400, "invalid_request_error", "invalid_request")


def test_allowed_models_and_anonymous_access(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: other}}
spec: {{model: other-model, targets: [{{credentialRef: upstream, model: fake}}]}}
---
apiVersion: aigw.dev/v1alpha1
kind: AIGateway
metadata: {{name: local}}
spec: {{gateway: {{allowAnonymous: public}}}}
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: public}}
spec: {{}}
""")
    crs.write_text(crs.read_text().replace("  apiKeySecretRefs: [{name: team-a-key}]\n",
                                           "  apiKeySecretRefs: [{name: team-a-key}]\n  allowedModels: [gpt-test]\n"))
    gw = start_gateway("-f", str(crs))
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client(gw).chat.completions.create(model="other-model", messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["code"] == "model_not_allowed"
    assert [m.id for m in client(gw).models.list()] == ["gpt-test"]
    r = httpx.post(gw.url + "/v1/chat/completions", json={"model": "other-model", "messages": [{"role": "user", "content": "anon"}]})
    assert r.status_code == 200  # no key at all: the anonymous tenant, switched on explicitly
    r = httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": "Bearer wrong"},
                   json={"model": "other-model", "messages": [{"role": "user", "content": "anon"}]})
    assert r.status_code == 401  # a wrong key is still wrong

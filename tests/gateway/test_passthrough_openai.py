"""OpenAI chat client -> OpenAI-compatible target: the client's bytes up (model aside), the
provider's answer down with the model the client asked for; usage the gateway asked for on a
stream is taken out again; guardrails mask and restore, streamed too."""

from __future__ import annotations

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.harness import TENANT_KEY, write_crs

EMAIL = "jane.doe@example.com"


class Sent:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def hook(self, request) -> None:
        self.bodies.append(request.read())


def client(gw, sent: Sent | None = None, **headers) -> openai.OpenAI:
    hooks = {"request": [sent.hook]} if sent else {}
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10, default_headers=headers,
                         http_client=openai.DefaultHttpxClient(event_hooks=hooks))


def test_upstream_gets_client_bytes_and_client_gets_its_model(tmp_path, fake_openai, start_gateway):
    gw = start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url)))
    sent = Sent()
    c = client(gw, sent, **{"openai-beta": "assistants=v2", "openai-organization": "org-client"})
    reply = c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi there"}], seed=7,
                                      logit_bias={"50256": -100}, extra_body={"future_field": {"x": [1, 2.5]}})
    upstream = fake_openai.last_request
    assert upstream.body == sent.bodies[-1].replace(b'"model":"gpt-test"', b'"model":"fake"')
    assert upstream.headers["openai-beta"] == "assistants=v2" and "openai-organization" not in upstream.headers
    assert upstream.headers["authorization"] == "Bearer sk-upstream-test"
    assert reply.model == "gpt-test" and reply.choices[0].message.content == "echo: hi there"


def test_stream_usage_asked_by_the_gateway_is_not_shown(tmp_path, fake_openai, start_gateway):
    gw = start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url)))
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {TENANT_KEY}"}, timeout=10) as r:
        raw = b"".join(r.iter_raw())
    assert r.status_code == 200 and raw.endswith(b"data: [DONE]\n\n")
    assert b'"usage"' not in raw and b'"model":"gpt-test"' in raw and b'"model":"fake"' not in raw
    assert fake_openai.last_request.json["stream_options"] == {"include_usage": True}
    chunks = client(gw).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "a b c"}],
                                                stream=True, stream_options={"include_usage": True})
    usage = [ch.usage for ch in chunks if ch.usage]
    assert len(usage) == 1 and usage[0].prompt_tokens == 3


def test_a_stream_records_its_attempt_and_first_token(tmp_path, fake_openai, start_gateway):
    """The executor records a stream's attempt and time to first token once its first chunk is
    written (not before: the client's first token does not wait for metrics)."""
    gw = start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url)))
    for _ in range(2):
        chunks = client(gw).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "a b"}],
                                                    stream=True)
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "echo: a b"
    counts = {s.name: s.value for f in text_string_to_metric_families(httpx.get(gw.ops_url + "/metrics").text)
              for s in f.samples if s.name.endswith("_count") and s.labels.get("gen_ai_request_model") == "fake"}
    assert counts.get("gen_ai_server_time_to_first_token_seconds_count") == 2, counts
    assert counts.get("gen_ai_client_operation_duration_seconds_count") == 2, counts


def test_guardrails_on_openai_passthrough(tmp_path, fake_openai, start_gateway):
    path = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, extra="""---
apiVersion: aigw.dev/v1alpha1
kind: GuardrailPolicy
metadata: {name: pii}
spec:
  failMode: closed
  pii: {direction: both, action: mask, restoreInResponse: true, entities: [email]}
""")
    path.write_text(path.read_text().replace("      model: fake\n", "      model: fake\n  guardrailPolicyRef: pii\n", 1))
    gw = start_gateway("-f", str(path))
    c = client(gw)
    prompt = f"mail {EMAIL} now"
    assert c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": prompt}]).choices[0].message.content == f"echo: {prompt}"
    stream = c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": prompt}], stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == f"echo: {prompt}"
    assert all(EMAIL.encode() not in r.body for r in fake_openai.requests)

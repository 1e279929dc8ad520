"""Across formats, through a real gateway and the official SDKs: a field the target cannot honour
is refused by name (or dropped and listed, when the route says so); response_format reaches an
Anthropic target so openai's parse() gets JSON; the model endpoints answer each SDK in its shape;
embeddings on a chat-only route is a 4xx; the access log records every answer."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from pydantic import BaseModel

from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.gateway.harness import TENANT_KEY, write_crs

DROP_ROUTE = """---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {name: lenient}
spec:
  model: lenient-claude
  unsupportedFields: drop
  targets:
    - credentialRef: upstream
      model: claude-fake
"""


@pytest.fixture
def gw(tmp_path, fake_anthropic, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_anthropic.base_url, provider="anthropic", model="gpt-via-anthropic",
                    upstream_model="claude-fake", upstream_key=FAKE_ANTHROPIC_API_KEY, extra=DROP_ROUTE)
    return start_gateway("-f", str(crs), "--access-log")


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)


class Answer(BaseModel):
    arg: str


def test_openai_parse_gets_json_from_an_anthropic_target(gw, fake_anthropic):
    done = client(gw).chat.completions.parse(
        model="gpt-via-anthropic", messages=[{"role": "user", "content": "fill the form"}], response_format=Answer)
    assert done.choices[0].message.parsed == Answer(arg="value")
    assert done.choices[0].finish_reason == "stop" and not done.choices[0].message.tool_calls
    sent = fake_anthropic.last_request.json
    assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert sent["tools"][-1]["input_schema"]["properties"]["arg"]["type"] == "string"
    streamed = client(gw).chat.completions.create(
        model="gpt-via-anthropic", messages=[{"role": "user", "content": "x"}], stream=True,
        response_format={"type": "json_object"})
    assert json.loads("".join(c.choices[0].delta.content or "" for c in streamed if c.choices)) == {"arg": "value"}


@pytest.mark.parametrize("extra,param", [
    ({"logprobs": True}, "logprobs"), ({"n": 2}, "n"), ({"seed": 7}, "seed"), ({"temperature": 1.5}, "temperature"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"), ({"logit_bias": {"50256": -100}}, "logit_bias"),
])
def test_unsupported_fields_are_refused_by_name(gw, fake_anthropic, extra, param):
    seen = len(fake_anthropic.requests)
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).chat.completions.create(model="gpt-via-anthropic", messages=[{"role": "user", "content": "x"}], **extra)
    err = exc.value.body
    assert exc.value.status_code == 400 and err["param"] == param and err["type"] == "invalid_request_error"
    assert param in err["message"] and "Anthropic" in err["message"]
    assert len(fake_anthropic.requests) == seen  # nothing went upstream


def test_neutral_values_pass(gw):
    resp = client(gw).chat.completions.create(model="gpt-via-anthropic", messages=[{"role": "user", "content": "ok"}],
                                              n=1, logprobs=False, temperature=1.0, presence_penalty=0)
    assert resp.choices[0].message.content == "echo: ok"


def test_a_drop_route_drops_and_says_so(gw, fake_anthropic):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="lenient-claude", messages=[{"role": "user", "content": "hi"}], n=2, logprobs=True, temperature=0.5)
    assert set(raw.headers["x-aigw-dropped-fields"].split(",")) == {"n", "logprobs"}
    assert raw.parse().choices[0].message.content == "echo: hi"
    sent = fake_anthropic.last_request.json
    assert sent["temperature"] == 0.5 and "n" not in sent and "logprobs" not in sent
    clean = client(gw).chat.completions.with_raw_response.create(
        model="lenient-claude", messages=[{"role": "user", "content": "hi"}])
    assert "x-aigw-dropped-fields" not in clean.headers


def test_openai_sdk_retrieves_models(gw):
    sdk = client(gw)
    model = sdk.models.retrieve("gpt-via-anthropic")
    assert (model.id, model.object, model.owned_by) == ("gpt-via-anthropic", "model", "aigw/main")
    with pytest.raises(openai.NotFoundError) as exc:
        sdk.models.retrieve("no-such-model")
    assert exc.value.body["code"] == "model_not_found"
    assert {m.id for m in sdk.models.list()} == {"gpt-via-anthropic", "lenient-claude"}


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_google_genai_lists_and_gets_models(gw, version):
    sdk = genai.Client(api_key=TENANT_KEY, http_options=genai_types.HttpOptions(base_url=gw.url, api_version=version))
    names = sorted(m.name for m in sdk.models.list())
    assert names == ["models/gpt-via-anthropic", "models/lenient-claude"]
    got = sdk.models.get(model="gpt-via-anthropic")
    assert got.name == "models/gpt-via-anthropic" and "generateContent" in got.supported_actions
    with pytest.raises(genai.errors.ClientError) as exc:
        sdk.models.get(model="no-such-model")
    assert exc.value.code == 404


def test_embeddings_on_a_chat_only_route_is_a_4xx(gw):
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).embeddings.create(model="gpt-via-anthropic", input="hello")
    assert exc.value.body["code"] == "operation_not_supported" and "embeddings" in exc.value.body["message"]


def test_access_log_records_404_and_405(gw):
    missing = httpx.get(gw.url + "/v1/nothing-here", headers={"authorization": f"Bearer {TENANT_KEY}"})
    wrong = httpx.delete(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TENANT_KEY}"})
    assert (missing.status_code, wrong.status_code) == (404, 405)

    def lines():
        out = []
        for line in gw.log().splitlines():
            start = line.find('{"request_id"')
            if start >= 0:
                out.append(json.loads(line[start:]))
        return out

    deadline = __import__("time").monotonic() + 10
    while __import__("time").monotonic() < deadline:
        logged = {(entry["path"], entry["status"]) for entry in lines()}
        if {("/v1/nothing-here", 404), ("/v1/chat/completions", 405)} <= logged:
            break
    assert {("/v1/nothing-here", 404), ("/v1/chat/completions", 405)} <= logged


def genai_client(gw) -> genai.Client:
    return genai.Client(api_key=TENANT_KEY, http_options=genai_types.HttpOptions(base_url=gw.url, api_version="v1beta"))


def test_google_genai_to_anthropic_translates_thinking_and_refuses_gemini_only_fields(gw, fake_anthropic):
    sdk = genai_client(gw)
    reply = sdk.models.generate_content(
        model="gpt-via-anthropic", contents="think about it",
        config=genai_types.GenerateContentConfig(max_output_tokens=4000, stop_sequences=["END"],
                                                 thinking_config=genai_types.ThinkingConfig(thinking_budget=2048)))
    assert reply.text
    sent = fake_anthropic.last_request.json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048} and sent["stop_sequences"] == ["END"]
    seen = len(fake_anthropic.requests)
    for config, param in (
        (genai_types.GenerateContentConfig(safety_settings=[genai_types.SafetySetting(
            category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_NONE")]), "safetySettings"),
        (genai_types.GenerateContentConfig(candidate_count=2), "generationConfig.candidateCount"),
        (genai_types.GenerateContentConfig(top_k=20, thinking_config=genai_types.ThinkingConfig(thinking_budget=2048),
                                           max_output_tokens=4000), "top_k"),
    ):
        with pytest.raises(genai.errors.ClientError) as exc:
            sdk.models.generate_content(model="gpt-via-anthropic", contents="x", config=config)
        assert exc.value.code == 400 and param in exc.value.message
    assert len(fake_anthropic.requests) == seen


@pytest.fixture
def to_openai(tmp_path, fake_openai, start_gateway):
    return start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url, model="claude-via-openai",
                                             provider="openai")))


def test_anthropic_agent_traffic_on_an_openai_target(to_openai, fake_openai):
    import anthropic

    sdk = anthropic.Anthropic(base_url=to_openai.url, api_key=TENANT_KEY, max_retries=0, timeout=10)
    msg = sdk.messages.create(
        model="claude-via-openai", max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2048},
        system=[{"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                  {"role": "system", "content": "plan mode"}, {"role": "user", "content": "go on"}])
    assert msg.content[-1].text == "echo: go on" and msg.stop_reason == "end_turn"
    sent = fake_openai.last_request.json
    assert sent["reasoning_effort"] == "low" and {"role": "system", "content": "plan mode"} in sent["messages"]
    assert "cache_control" not in json.dumps(sent) and "x_vendor" not in sent
    with pytest.raises(anthropic.BadRequestError) as exc:
        sdk.messages.create(model="claude-via-openai", max_tokens=10, extra_body={"top_k": 5},
                            messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["type"] == "invalid_request_error" and "top_k" in exc.value.body["error"]["message"]

"""Any SDK to any backend: the anthropic SDK against an OpenAI backend and the openai SDK against
an Anthropic backend, through a real gateway, streaming and tool calls included."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.gateway.harness import TENANT_KEY, write_crs

TOOL = {"name": "lookup", "description": "look something up",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}


@pytest.fixture
def to_openai(tmp_path, fake_openai, start_gateway):
    return start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url, model="claude-via-openai")))


@pytest.fixture
def to_anthropic(tmp_path, fake_anthropic, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_anthropic.base_url, provider="anthropic", model="gpt-via-anthropic",
                    upstream_model="claude-fake", upstream_key=FAKE_ANTHROPIC_API_KEY)
    return start_gateway("-f", str(crs))


def anthropic_client(gw, key=TENANT_KEY):
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=10)


def openai_client(gw):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)


def test_anthropic_sdk_to_openai_backend(to_openai, fake_openai):
    msg = anthropic_client(to_openai).messages.create(
        model="claude-via-openai", max_tokens=64, system="be brief",
        messages=[{"role": "user", "content": "hello anthropic"}])
    assert msg.content[0].text == "echo: hello anthropic" and msg.stop_reason == "end_turn"
    assert msg.model == "claude-via-openai" and msg.usage.output_tokens > 0
    sent = fake_openai.last_request.json
    assert sent["messages"][0] == {"role": "system", "content": "be brief"} and sent["max_tokens"] == 64


def test_anthropic_sdk_streams_from_openai_backend(to_openai):
    with anthropic_client(to_openai).messages.stream(
        model="claude-via-openai", max_tokens=64, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: one two three" and final.usage.output_tokens > 0


def test_anthropic_sdk_tool_use_on_openai_backend(to_openai):
    msg = anthropic_client(to_openai).messages.create(
        model="claude-via-openai", max_tokens=64, tools=[TOOL],
        messages=[{"role": "user", "content": "use lookup"}])
    assert msg.stop_reason == "tool_use"
    (block,) = [b for b in msg.content if b.type == "tool_use"]
    assert block.name == "lookup" and isinstance(block.input, dict)


def test_anthropic_shaped_errors(to_openai):
    with pytest.raises(anthropic.AuthenticationError) as exc:
        anthropic_client(to_openai, key="wrong").messages.create(
            model="claude-via-openai", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["type"] == "authentication_error" and exc.value.body["request_id"]
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client(to_openai).messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as exc:
        anthropic_client(to_openai).messages.create(model="claude-via-openai", max_tokens=8, messages=[])
    assert exc.value.status_code == 400


def test_openai_sdk_to_anthropic_backend(to_anthropic, fake_anthropic):
    resp = openai_client(to_anthropic).chat.completions.create(
        model="gpt-via-anthropic", messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hi there"}])
    assert resp.choices[0].message.content == "echo: hi there" and resp.usage.prompt_tokens > 0
    sent = fake_anthropic.last_request
    assert sent.json["system"] == "sys" and sent.json["model"] == "claude-fake" and sent.json["max_tokens"] > 0
    assert sent.headers.get("x-api-key") == FAKE_ANTHROPIC_API_KEY or sent.headers.get("authorization", "").endswith(FAKE_ANTHROPIC_API_KEY)


def test_openai_sdk_streams_from_anthropic_backend_with_usage(to_anthropic):
    chunks = list(openai_client(to_anthropic).chat.completions.create(
        model="gpt-via-anthropic", messages=[{"role": "user", "content": "a b c"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b c"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_openai_sdk_tool_call_on_anthropic_backend(to_anthropic):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": TOOL["input_schema"]}}]
    stream = openai_client(to_anthropic).chat.completions.create(
        model="gpt-via-anthropic", messages=[{"role": "user", "content": "call it"}], tools=tools, stream=True)
    calls, finish = {}, None
    for c in stream:
        for choice in c.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": None, "args": ""})
                entry["name"] = entry["name"] or (tc.function.name if tc.function else None)
                entry["args"] += (tc.function.arguments or "") if tc.function else ""
    assert finish == "tool_calls" and calls[0]["name"] == "lookup"

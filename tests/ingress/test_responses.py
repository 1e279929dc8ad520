"""Responses API <-> canonical chat: golden translations of what real agents sent (recorded
under tests/fixtures/agents), the refusals that name a field, responses and the stream events."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest

from aigw_gateway.errors import InvalidRequest, UpstreamBadResponse
from aigw_gateway.ingress.responses import canonical_usage, from_chat, to_chat, usage_of
from aigw_gateway.ingress.responses_stream import ResponsesStreamEncoder
from aigw_gateway.providers.openai_responses import ResponsesStreamTranslator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
AGENTS = ("openai-agents", "vercel-ai-sdk", "codex-cli")


def _translate(body: dict) -> dict:
    try:
        return {"canonical": to_chat(body)}
    except InvalidRequest as err:
        return {"refused": {"param": err.param, "message": err.message}}


def _function_tools_only(body: dict) -> dict:
    return {**body, "tools": [t for t in body.get("tools") or () if t.get("type") == "function"]}


@pytest.mark.parametrize("agent", AGENTS)
def test_golden_translation_of_recorded_agent_traffic(agent):
    recorded = json.loads((FIXTURES / f"{agent}.json").read_text())
    got = []
    for request in recorded:
        body = request["body"]
        got.append({"as_sent": _translate(body), "function_tools_only": _translate(_function_tools_only(body))})
    golden = FIXTURES / f"{agent}.canonical.json"
    if os.environ.get("AIGW_RECORD_AGENT_FIXTURES") == "1":
        golden.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(golden.read_text())
    for turn in got:  # every turn of every agent translates once hosted tools are off
        assert "canonical" in turn["function_tools_only"], turn["function_tools_only"]


def test_codex_hosted_tools_are_refused_by_name():
    body = json.loads((FIXTURES / "codex-cli.json").read_text())[0]["body"]
    refused = _translate(body)["refused"]
    index = int(refused["param"][len("tools["):-1])
    assert body["tools"][index]["type"] != "function" and refused["param"] == f"tools[{index}]"


def test_agent_tool_loop_turn_becomes_chat_messages():
    second = json.loads((FIXTURES / "openai-agents.json").read_text())[1]["body"]
    chat = to_chat(second)
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    call = chat["messages"][2]["tool_calls"][0]
    assert chat["messages"][3]["tool_call_id"] == call["id"] and call["function"]["name"] == "get_weather"
    assert chat["tools"][0]["function"]["name"] == "get_weather" and chat["tools"][0]["function"]["strict"] is True


def test_items_and_settings_translate():
    chat = to_chat({
        "model": "m", "instructions": "sys", "max_output_tokens": 50, "temperature": 0.2, "stream": True,
        "tool_choice": {"type": "function", "name": "f"}, "reasoning": {"effort": "low"}, "user": "u1",
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        "input": [
            {"role": "developer", "content": "dev rules"},
            {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": "two"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        ],
    })
    assert chat["messages"][0] == {"role": "system", "content": "sys"}
    assert chat["messages"][1] == {"role": "system", "content": "dev rules"}
    assert chat["messages"][2]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert chat["messages"][3]["content"] == "calling" and [c["id"] for c in chat["messages"][3]["tool_calls"]] == ["c1", "c2"]
    assert [m["role"] for m in chat["messages"][4:]] == ["tool", "tool"]
    assert chat["max_tokens"] == 50 and chat["temperature"] == 0.2 and chat["reasoning_effort"] == "low"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}} and chat["user"] == "u1"
    assert chat["response_format"]["json_schema"]["name"] == "out"
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("body, param", [
    ({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0]"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]}, "input[0].content[0]"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "service_tier": "flex"}, "service_tier"),
    ({"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"input": "x", "some_new_field": 1}, "some_new_field"),
    ({"input": "x", "tool_choice": {"type": "allowed_tools", "tools": []}}, "tool_choice"),
])
def test_what_cannot_translate_is_a_400_naming_it(body, param):
    with pytest.raises(InvalidRequest) as err:
        to_chat({"model": "m", **body})
    assert err.value.param == param and err.value.status_code == 400


def test_response_from_chat_with_text_tool_calls_and_usage():
    completion = {"id": "chatcmpl-1", "created": 7, "choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "partial", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}}}
    r = from_chat(completion, "client-model", "resp_aigw_abc", {"model": "client-model", "metadata": {"k": "v"}})
    assert r["status"] == "incomplete" and r["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [o["type"] for o in r["output"]] == ["message", "function_call"]
    assert r["output"][1]["call_id"] == "call_1" and r["output"][1]["arguments"] == "{\"a\":1}"
    assert r["usage"] == {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 5,
                          "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15}
    assert canonical_usage(r["usage"]) == completion["usage"] and r["metadata"] == {"k": "v"} and r["created_at"] == 7


def _events(data: bytes) -> list[dict]:
    out = []
    for block in data.decode().strip().split("\n\n"):
        kind, payload = block.split("\n", 1)
        event = orjson.loads(payload[len("data: "):])
        assert kind == f"event: {event['type']}"
        out.append(event)
    return out


def _chunk(delta=None, finish=None, usage=None):
    chunk = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if usage:
        chunk = {"choices": [], "usage": usage}
    return chunk


def test_stream_encoder_sequence_for_text_then_tool_call():
    enc = ResponsesStreamEncoder("m", "resp_aigw_x", {"model": "m"})
    data = b"".join(enc.chunk(c) for c in (
        _chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hel"}), _chunk({"content": "lo"}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_9", "function": {"name": "f", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
        _chunk(finish="tool_calls"), _chunk(usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
    )) + enc.end()
    events = _events(data)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["output"][1] == {"type": "function_call", "id": "fc_aigw_x_0", "call_id": "call_9", "name": "f",
                                  "arguments": "{\"a\":1}", "status": "completed"}
    assert final["usage"]["total_tokens"] == 7 and enc.response == final


def test_native_stream_needs_its_final_event():
    translator = ResponsesStreamTranslator("openai/m")
    chunks = translator.feed(b'event: response.created\ndata: {"type":"response.created","response":{"id":"r"}}\n\n'
                             b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"hi"}\n\n')
    assert [c["_event"]["type"] for c in chunks] == ["response.created", "response.output_text.delta"]
    assert chunks[1]["choices"][0]["delta"]["content"] == "hi"
    with pytest.raises(UpstreamBadResponse):
        translator.finish()
    done = ResponsesStreamTranslator("openai/m")
    last = done.feed(b'data: {"type":"response.completed","response":{"id":"r","usage":'
                     b'{"input_tokens":2,"output_tokens":3,"total_tokens":5}}}\n\n')
    assert last[0]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert done.finish() == []


def test_usage_round_trip_without_details():
    assert usage_of({"prompt_tokens": 1, "completion_tokens": 2}) == {
        "input_tokens": 1, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 3}
    assert usage_of(None) is None and canonical_usage(None) is None


def test_text_after_a_tool_call_is_a_new_message_item_not_dropped():
    enc = ResponsesStreamEncoder("m", "resp_aigw_y", {"model": "m"})
    data = b"".join(enc.chunk(c) for c in (
        _chunk({"content": "before"}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]}),
        _chunk({"content": "after"}), _chunk(finish="tool_calls"),
    )) + enc.end()
    final = _events(data)[-1]["response"]
    assert [(o["type"], o.get("content", [{}])[0].get("text")) for o in final["output"]] == [
        ("message", "before"), ("function_call", None), ("message", "after")]
    assert len({o["id"] for o in final["output"]}) == 3


def test_a_refusal_is_a_refusal_part():
    r = from_chat({"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": None,
                                                                     "refusal": "I can't help with that."}}]},
                  "m", "resp_aigw_z", {"model": "m"})
    assert r["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]

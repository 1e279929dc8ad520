"""The response side across formats: what a provider says reaches every client in the client's
own terms: stop sequences, cache reads and writes (never folded into input silently), reasoning,
the response_format tool, several candidates; streamed and not."""

from __future__ import annotations

import json

from tests.conformance.translate import answer, stream_answer

ANTHROPIC_STOP = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "stop_sequence",
    "stop_sequence": "END", "content": [
        {"type": "thinking", "thinking": "plan", "signature": "sig-9"}, {"type": "text", "text": "done"}],
    "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200},
}
GEMINI_CACHED = {
    "responseId": "r1", "modelVersion": "gemini-2.5-flash",
    "candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
        {"text": "thinking out loud", "thought": True}, {"text": "answer"}]}}],
    "usageMetadata": {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 5,
                      "thoughtsTokenCount": 3, "totalTokenCount": 1208},
}
OPENAI_CACHED = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1100, "completion_tokens": 2, "total_tokens": 1102,
              "prompt_tokens_details": {"cached_tokens": 1024}},
}


def test_anthropic_stop_sequence_cache_and_thinking_reach_every_client():
    openai = answer("anthropic", "openai", ANTHROPIC_STOP)
    choice = openai["choices"][0]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", "END")
    assert choice["message"]["reasoning_content"] == "plan"
    assert choice["message"]["thinking_blocks"] == [{"type": "thinking", "thinking": "plan", "signature": "sig-9"}]
    assert openai["usage"] == {"prompt_tokens": 1210, "completion_tokens": 4, "total_tokens": 1214,
                               "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 200}}
    claude = answer("anthropic", "anthropic", ANTHROPIC_STOP)
    assert (claude["stop_reason"], claude["stop_sequence"]) == ("stop_sequence", "END")
    assert claude["usage"] == {"input_tokens": 10, "output_tokens": 4, "cache_creation_input_tokens": 200,
                               "cache_read_input_tokens": 1000}
    assert claude["content"][0] == {"type": "thinking", "thinking": "plan", "signature": "sig-9"}
    gemini = answer("anthropic", "gemini", ANTHROPIC_STOP)
    assert gemini["candidates"][0]["finishReason"] == "STOP"
    assert gemini["candidates"][0]["content"]["parts"][0] == {"text": "plan", "thought": True}
    assert gemini["usageMetadata"]["cachedContentTokenCount"] == 1000
    assert gemini["usageMetadata"]["promptTokenCount"] == 1210  # Gemini counts cached tokens in the prompt


def test_gemini_cache_and_thoughts_reach_every_client():
    claude = answer("gemini", "anthropic", GEMINI_CACHED)
    assert claude["usage"] == {"input_tokens": 200, "output_tokens": 8, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 1000}
    assert claude["content"][0] == {"type": "thinking", "thinking": "thinking out loud", "signature": ""}
    assert claude["content"][1] == {"type": "text", "text": "answer"}
    openai = answer("gemini", "openai", GEMINI_CACHED)
    assert openai["usage"]["prompt_tokens_details"] == {"cached_tokens": 1000}
    assert openai["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert openai["choices"][0]["message"]["reasoning_content"] == "thinking out loud"


def test_openai_cached_tokens_reach_anthropic_and_gemini_clients():
    assert answer("openai", "anthropic", OPENAI_CACHED)["usage"] == {
        "input_tokens": 76, "output_tokens": 2, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024}
    assert answer("openai", "gemini", OPENAI_CACHED)["usageMetadata"]["cachedContentTokenCount"] == 1024


def test_the_response_format_tool_comes_back_as_text():
    raw = {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "tool_use",
           "content": [{"type": "tool_use", "id": "toolu_1", "name": "json_response", "input": {"city": "Oslo"}}],
           "usage": {"input_tokens": 3, "output_tokens": 5}}
    choice = answer("anthropic", "openai", raw)["choices"][0]
    assert json.loads(choice["message"]["content"]) == {"city": "Oslo"}
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]


def test_gemini_candidates_become_choices():
    raw = {"responseId": "r2", "candidates": [
        {"index": i, "finishReason": "STOP", "content": {"role": "model", "parts": [{"text": f"take {i}"}]}} for i in (0, 1)]}
    choices = answer("gemini", "openai", raw)["choices"]
    assert [(c["index"], c["message"]["content"]) for c in choices] == [(0, "take 0"), (1, "take 1")]


def _anthropic_sse(events: list[tuple[str, dict]]) -> bytes:
    return b"".join(f"event: {k}\ndata: {json.dumps({'type': k, **v})}\n\n".encode() for k, v in events)


STREAM = _anthropic_sse([
    ("message_start", {"message": {"id": "msg_3", "model": "claude", "usage": {
        "input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 50}}}),
    ("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "sig-s"}}),
    ("content_block_stop", {"index": 0}),
    ("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "partial"}}),
    ("message_delta", {"delta": {"stop_reason": "stop_sequence", "stop_sequence": "###"}, "usage": {"output_tokens": 6}}),
    ("message_stop", {}),
])


def _sse_json(raw: bytes) -> list[dict]:
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


def test_streamed_stop_sequence_cache_and_thinking_across_formats():
    openai = _sse_json(stream_answer("anthropic", "openai", STREAM))
    assert "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in openai if c["choices"]) == "hmm"
    final = [c for c in openai if c["choices"] and c["choices"][0]["finish_reason"]][-1]
    assert final["choices"][0]["stop_reason"] == "###"
    assert openai[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 500, "cache_write_tokens": 50}
    claude = _sse_json(stream_answer("anthropic", "anthropic", STREAM))
    delta = [e for e in claude if e["type"] == "message_delta"][0]
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "###"}
    assert delta["usage"] == {"input_tokens": 10, "output_tokens": 6, "cache_creation_input_tokens": 50,
                              "cache_read_input_tokens": 500}
    kinds = [(e["type"], (e.get("delta") or e.get("content_block") or {}).get("type")) for e in claude]
    assert ("content_block_delta", "thinking_delta") in kinds and ("content_block_delta", "signature_delta") in kinds
    gemini = _sse_json(stream_answer("anthropic", "gemini", STREAM))
    assert gemini[-1]["usageMetadata"]["cachedContentTokenCount"] == 500


def test_streamed_response_format_tool_is_text():
    raw = _anthropic_sse([
        ("message_start", {"message": {"id": "msg_4", "model": "claude", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "json_response",
                                                               "input": {}}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}}),
        ("message_stop", {}),
    ])
    chunks = _sse_json(stream_answer("anthropic", "openai", raw))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert json.loads(text) == {"city": "Oslo"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == ["stop"]

"""The stream taps: provider bytes out as they came (model aside), usage read, errors surfaced."""

from __future__ import annotations

import orjson
import pytest

from aigw_gateway.errors import UpstreamBadResponse
from aigw_gateway.passthrough.anthropic import AnthropicTap
from aigw_gateway.passthrough.gemini import GeminiTap


def ev(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **data}) + b"\n\n"


START = ev("message_start", {"message": {"id": "msg_1", "model": "claude-up", "usage": {
    "input_tokens": 10, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 5, "output_tokens": 1}}})
REST = (ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}) + ev("ping", {})
        + ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "hi"}})
        + ev("content_block_stop", {"index": 0})
        + ev("message_delta", {"delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"}, "usage": {"output_tokens": 3}})
        + ev("message_stop", {}))


def test_anthropic_tap_forwards_bytes_and_reads_usage():
    tap = AnthropicTap("t", "claude-route")
    pieces = tap.feed(START + REST[:17]) + tap.feed(REST[17:]) + tap.finish()
    out = b"".join(p.data for p in pieces)
    assert out == START.replace(b"claude-up", b"claude-route") + REST
    assert tap.usage == {"prompt_tokens": 22, "completion_tokens": 3, "total_tokens": 25,
                         "prompt_tokens_details": {"cached_tokens": 7, "cache_write_tokens": 5}}  # writes itemised, never folded
    assert not pieces[0].substance and any(p.substance for p in pieces)


def test_anthropic_tap_error_event_and_truncation():
    tap = AnthropicTap("t", "m")
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    pieces = tap.feed(START + error)
    assert pieces[-1].data == error and pieces[-1].error is not None and pieces[-1].error.retryable
    tap = AnthropicTap("t", "m")
    tap.feed(START)
    with pytest.raises(UpstreamBadResponse):
        tap.finish()


def test_gemini_tap_maps_model_keeps_framing_and_reads_usage():
    def event(text: str, final: bool) -> bytes:
        candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if final:
            candidate["finishReason"] = "STOP"
        usage = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6, "thoughtsTokenCount": 1}
        return b"data: " + orjson.dumps({"candidates": [candidate], "usageMetadata": usage, "modelVersion": "g-up"}) + b"\r\n\r\n"
    tap = GeminiTap("t", "g-route")
    out = b"".join(p.data for p in tap.feed(event("a", False) + event("b", True)) + tap.finish())
    assert out == (event("a", False) + event("b", True)).replace(b'"g-up"', b'"g-route"')
    assert tap.usage["completion_tokens"] == 3 and tap.usage["completion_tokens_details"] == {"reasoning_tokens": 1}
    truncated = GeminiTap("t", "m")
    truncated.feed(event("a", False))
    with pytest.raises(UpstreamBadResponse):
        truncated.finish()

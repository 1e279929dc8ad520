"""What an entry holds, and how a stored answer is replayed as a stream or rebuilt from one.

An entry is the canonical (`chat.completion`) answer as the provider gave it to the gateway,
before output guardrails restore anyone's values: placeholders stay placeholders. A hit runs the
entry through the caller's own output guardrails and encoder, so a cached answer comes out in the
client's format, unary or streamed (the same event shapes as a live stream, usage included).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

ENTRY_VERSION = 1


def pack(response: dict[str, Any], cost_usd: float) -> bytes:
    return orjson.dumps({"v": ENTRY_VERSION, "response": response, "cost_usd": cost_usd, "stored": int(time.time())})


def unpack(raw: bytes) -> tuple[dict[str, Any], float] | None:
    """(canonical response, what it cost when it was live), or None for an unreadable entry."""
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or entry.get("v") != ENTRY_VERSION or not isinstance(entry.get("response"), dict):
        return None
    return entry["response"], float(entry.get("cost_usd") or 0.0)


# Responses output items that wait for the client to run something and send the result back.
AWAITING_ITEMS = frozenset({"function_call", "custom_tool_call", "computer_call", "local_shell_call", "shell_call",
                            "apply_patch_call", "mcp_approval_request"})


def storable(response: dict[str, Any], *, store_tool_calls: bool) -> bool:
    """Only whole answers: not truncated by an error, and (by default) not waiting on tool results."""
    if response.get("object") == "response":  # a Responses API answer (cache/responses.py)
        if response.get("status") != "completed" or response.get("error") or not isinstance(response.get("output"), list):
            return False
        return store_tool_calls or not any(isinstance(item, dict) and item.get("type") in AWAITING_ITEMS
                                           for item in response["output"])
    if response.get("object") == "aigw.native":  # a provider's own bytes (cache/native.py)
        choices = [{"finish_reason": reason} for reason in response.get("finish_reasons") or ()]
    else:
        choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        reason = choice.get("finish_reason")
        if reason in (None, "error", "content_filter"):
            return False
        if reason == "tool_calls" and not store_tool_calls:
            return False
    return True


def chunks_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The canonical `chat.completion.chunk`s a live stream of this answer would have carried."""
    base = {"id": response.get("id", ""), "object": "chat.completion.chunk",
            "created": response.get("created", int(time.time())), "model": response.get("model", "")}
    chunks: list[dict[str, Any]] = []
    finals = []
    for choice in response.get("choices", []):
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant"}
        for key in ("reasoning_content", "content", "refusal"):
            if message.get(key) is not None:
                delta[key] = message[key]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(message["tool_calls"])]
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finals.append({"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")})
    chunks.append({**base, "choices": finals})
    if response.get("usage") is not None:  # as OpenAI sends it: a chunk of its own, no choices
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return chunks


class Assembler:
    """Rebuilds the whole canonical answer from a live stream's chunks, to store it afterwards."""

    def __init__(self) -> None:
        self.base: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.size = 0

    def add(self, chunk: dict[str, Any]) -> None:
        if not self.base:
            self.base = {k: chunk.get(k) for k in ("id", "created", "model")}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            slot = self.choices.setdefault(choice.get("index", 0), {"message": {"role": "assistant"}, "finish_reason": None})
            message = slot["message"]
            delta = choice.get("delta") or {}
            for key in ("content", "reasoning_content", "refusal"):
                if delta.get(key):
                    message[key] = (message.get(key) or "") + delta[key]
                    self.size += len(delta[key])
            for call in delta.get("tool_calls") or ():
                calls = message.setdefault("tool_calls", [])
                i = call.get("index", len(calls))
                while len(calls) <= i:
                    calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    calls[i]["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    calls[i]["function"]["name"] += function["name"]
                if function.get("arguments"):
                    calls[i]["function"]["arguments"] += function["arguments"]
                    self.size += len(function["arguments"])
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]

    def response(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self.choices):
            slot = self.choices[index]
            message = dict(slot["message"])
            message.setdefault("content", None)
            choices.append({"index": index, "message": message, "finish_reason": slot["finish_reason"]})
        out = {**self.base, "object": "chat.completion", "choices": choices}
        if self.usage is not None:
            out["usage"] = self.usage
        return out

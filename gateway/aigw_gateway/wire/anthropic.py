"""Anthropic's Messages API: the facts both directions use (ingress/anthropic.py and
providers/anthropic.py): stop reasons, usage fields, error types, which canonical request
fields a target honours, and the tool that carries `response_format`."""

from __future__ import annotations

from typing import Any

from .canonical import Usage, cache_tokens, usage_dict
from .common import BASE
from .rules import IGNORED, TRANSLATED, FieldRules, at_most, limited

# stop_reason -> canonical finish_reason
FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter",
}
# canonical finish_reason -> stop_reason (a canonical choice with `stop_reason` set stopped on a sequence)
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
# Anthropic error types -> the HTTP status they stand for (for in-stream `error` events).
ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
    "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
    "timeout_error": 504, "overloaded_error": 529,
}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
# Request fields of the Messages API the canonical format carries under its own names.
REQUEST_FIELDS = frozenset({"model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature",
                            "top_p", "top_k", "tools", "tool_choice", "metadata", "thinking", "output_config",
                            "output_format"})
# `response_format` reaches Anthropic as a tool the model is made to call; its input is the JSON.
JSON_TOOL = "json_response"
MIN_THINKING_BUDGET = 1024


def _response_format(value: Any, _request: Any) -> str | None:
    if isinstance(value, dict) and value.get("type") in ("text", "json_object", "json_schema"):
        schema = (value.get("json_schema") or {}).get("schema") if value["type"] == "json_schema" else None
        if schema is not None and (not isinstance(schema, dict) or schema.get("type", "object") != "object"):
            return "needs an object schema on Anthropic targets (the answer is a tool input)"
        return None
    return "must be text, json_object or json_schema"


def _tool_choice(value: Any, _request: Any) -> str | None:
    if value in (None, "auto", "none", "required"):
        return None
    if isinstance(value, dict) and value.get("type") == "function":
        return None
    return "must be auto, none, required or a function"


FIELDS = FieldRules(api="anthropic", label="Anthropic", fields={
    **BASE,
    "temperature": at_most(1.0), "top_k": TRANSLATED, "user": TRANSLATED, "safety_identifier": TRANSLATED,
    "parallel_tool_calls": TRANSLATED, "response_format": limited(_response_format),
    "tool_choice": limited(_tool_choice), "reasoning_effort": TRANSLATED, "reasoning_budget": TRANSLATED,
    "prompt_cache_key": IGNORED,  # Anthropic caches at cache_control markers, which are kept
})


def to_canonical_usage(usage: dict[str, Any]) -> Usage:
    return usage_dict(usage.get("input_tokens") or 0, usage.get("output_tokens") or 0,
                      cache_read=usage.get("cache_read_input_tokens") or 0,
                      cache_write=usage.get("cache_creation_input_tokens") or 0)


def from_canonical_usage(usage: Any) -> dict[str, int]:
    """Anthropic's usage: input_tokens excludes cache reads and writes, which have their own fields."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    read, write = cache_tokens(usage)
    out = {"input_tokens": max(int(usage.get("prompt_tokens") or 0) - read - write, 0),
           "output_tokens": int(usage.get("completion_tokens") or 0)}
    if read or write:
        out["cache_creation_input_tokens"] = write
        out["cache_read_input_tokens"] = read
    return out

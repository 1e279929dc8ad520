"""Policy builders and canonical request/response/chunk shapes for the guardrail tests."""

from __future__ import annotations

from typing import Any

from aigw_config.kinds import GuardrailPolicySpec
from aigw_gateway.guardrails import CompiledPolicy, compile_policy

ALL_ENTITIES = ["email", "phone", "ssn", "creditCard", "ipAddress", "iban", "aadhaar", "pan"]


def policy(
    *,
    action: str = "mask",
    direction: str = "both",
    restore: bool = True,
    entities: list[str] | None = None,
    custom: list[dict[str, Any]] | None = None,
    injection: str | None = None,
    secrets: str | None = None,
    fail_mode: str = "closed",
    name: str = "test-policy",
) -> CompiledPolicy:
    """A compiled policy from the CR's own camelCase YAML shape (validated like `aigw serve -f`)."""
    body: dict[str, Any] = {"failMode": fail_mode}
    if entities != [] or custom:
        body["pii"] = {
            "direction": direction,
            "action": action,
            "restoreInResponse": restore and action == "mask",
            "entities": ALL_ENTITIES if entities is None else entities,
            "custom": custom or [],
        }
    if injection:
        body["promptInjection"] = {"action": injection}
    if secrets:
        body["secrets"] = {"action": secrets}
    return compile_policy(name, GuardrailPolicySpec.model_validate(body))


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": list(messages), **extra}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def completion(content: str | None, *, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunk(content: str | None = None, *, index: int = 0, finish: str | None = None, role: str | None = None,
          tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}  # fmt: skip


def usage_chunk() -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o",
            "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}  # fmt: skip


def stream_text(chunks: list[dict[str, Any]], index: int = 0) -> str:
    """The content a client assembles from canonical chunks for one choice."""
    out = []
    for c in chunks:
        for choice in c.get("choices") or []:
            if choice.get("index", 0) == index:
                out.append(choice.get("delta", {}).get("content") or "")
    return "".join(out)


def stream_arguments(chunks: list[dict[str, Any]], index: int = 0, tool: int = 0) -> str:
    out = []
    for c in chunks:
        for choice in c.get("choices") or []:
            if choice.get("index", 0) != index:
                continue
            for call in choice.get("delta", {}).get("tool_calls") or []:
                if call.get("index", 0) == tool:
                    out.append((call.get("function") or {}).get("arguments") or "")
    return "".join(out)


def run_stream(stream_filter: Any, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in chunks:
        out.extend(stream_filter.feed(c))
    out.extend(stream_filter.flush())
    return out

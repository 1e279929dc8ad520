"""OpenAI chat completions (OpenAI, Azure OpenAI, OpenAI-compatible servers): the canonical format.

The canonical request is this API's own, so the table only concerns the gateway's extension keys
(see canonical.py); everything else is the upstream's to accept or refuse. `openai_body` turns a
canonical request that came from another API into a plain OpenAI body:
- reasoning_budget becomes reasoning_effort;
- `is_error` on a tool result becomes an "Error: " prefix (this API has no such flag);
- images inside a tool result (tool messages carry only text here) follow the tool results as a
  user message;
- thinking blocks of earlier turns are left out: reasoning is not replayable to another vendor;
- `cache_control` markers are left out: OpenAI caches prompt prefixes automatically.
"""

from __future__ import annotations

from typing import Any, cast

from .canonical import ChatRequest, effort_for_budget
from .rules import TRANSLATED, UNSUPPORTED, FieldRules

FIELDS = FieldRules(api="openai", label="OpenAI", open=True,
                    fields={"top_k": UNSUPPORTED, "reasoning_budget": TRANSLATED})
# vLLM, SGLang, llama.cpp and LM Studio accept top_k.
FIELDS_COMPATIBLE = FieldRules(api="openai", label="OpenAI-compatible", open=True,
                               fields={"top_k": TRANSLATED, "reasoning_budget": TRANSLATED})


def _plain_parts(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    return [{k: v for k, v in p.items() if k != "cache_control"} if isinstance(p, dict) else p for p in content]


def _tool_message(msg: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the tool message with text content only, image parts that must follow it)."""
    content = msg.get("content")
    images: list[dict[str, Any]] = []
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(part.get("text") or "")
            elif isinstance(part, dict):
                images.append({k: v for k, v in part.items() if k != "cache_control"})
        content = "\n".join(texts)
    text = content if isinstance(content, str) else ""
    if msg.get("is_error") and not text.startswith("Error"):
        text = "Error: " + text
    out = {k: v for k, v in msg.items() if k not in ("is_error", "cache_control")}
    out["content"] = text
    return out, images


def _messages(messages: list[Any]) -> list[Any]:
    out: list[Any] = []
    pending: list[dict[str, Any]] = []  # images from the current run of tool results
    for msg in messages:
        if not isinstance(msg, dict):
            out.append(msg)
            continue
        role = msg.get("role")
        if role == "tool":
            tool, images = _tool_message(msg)
            out.append(tool)
            pending.extend(images)
            continue
        if pending:
            out.append({"role": "user", "content": [{"type": "text", "text": "(images returned by the tools above)"},
                                                    *pending]})
            pending = []
        clean = {k: v for k, v in msg.items() if k not in ("thinking_blocks", "reasoning_content", "cache_control")}
        if isinstance(clean.get("content"), list):
            clean["content"] = _plain_parts(clean["content"])
        out.append(clean)
    if pending:
        out.append({"role": "user", "content": [{"type": "text", "text": "(images returned by the tools above)"},
                                                *pending]})
    return out


def openai_body(request: ChatRequest) -> dict[str, Any]:
    """A plain OpenAI body for a canonical request; untouched when it came from an OpenAI client."""
    if "x_vendor" not in request and "reasoning_budget" not in request:
        return cast(dict[str, Any], request)
    body = {k: v for k, v in request.items() if k not in ("x_vendor", "x_names", "x_paths", "reasoning_budget")}
    budget = request.get("reasoning_budget")
    if isinstance(budget, int) and "reasoning_effort" not in body:
        effort = effort_for_budget(budget)
        if effort not in (None, "none"):
            body["reasoning_effort"] = effort
    if isinstance(body.get("messages"), list):
        body["messages"] = _messages(body["messages"])
    if isinstance(body.get("tools"), list):
        body["tools"] = [{k: v for k, v in t.items() if k != "cache_control"} if isinstance(t, dict) else t
                         for t in body["tools"]]
    return body

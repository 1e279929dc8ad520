"""Where the text is in canonical (OpenAI chat) requests and responses, rewritten copy-on-write.

A visitor gets each text with its role and kind and returns the new text (the same object when
unchanged). Only the containers on the path to a changed text are copied; the caller's objects
are never mutated. The result shares unchanged parts with the input: treat it as read-only below
the top level.

Scanned in a request: every message's `content` (a string, or the `text` of `{type: text}`
parts), assistant `tool_calls[].function.arguments` and legacy `function_call.arguments` (JSON
text), tool/function results (their `content`), and the top-level `user` string. Not scanned:
tool definitions, images, audio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Visit = Callable[[str, str, str], str]
"""visit(text, role, kind) -> new text; kind is "content", "arguments" or "user"."""


def _content(content: Any, role: str, visit: Visit) -> Any:
    if isinstance(content, str):
        return visit(content, role, "content")
    if not isinstance(content, list):
        return content
    parts: list[Any] | None = None
    for i, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            text = part["text"]
            new = visit(text, role, "content")
            if new is not text:
                if parts is None:
                    parts = list(content)
                parts[i] = {**part, "text": new}
    return content if parts is None else parts


def _function(function: Any, role: str, visit: Visit) -> Any:
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        args = function["arguments"]
        new = visit(args, role, "arguments")
        if new is not args:
            return {**function, "arguments": new}
    return function


def _tool_calls(calls: Any, role: str, visit: Visit) -> Any:
    if not isinstance(calls, list):
        return calls
    out: list[Any] | None = None
    for i, call in enumerate(calls):
        if isinstance(call, dict) and "function" in call:
            function = call["function"]
            new = _function(function, role, visit)
            if new is not function:
                if out is None:
                    out = list(calls)
                out[i] = {**call, "function": new}
    return calls if out is None else out


def rewrite_message(message: Any, visit: Visit) -> Any:
    """A chat message (request) or a choice's message (response), with its texts visited."""
    if not isinstance(message, dict):
        return message
    role = message.get("role") or "assistant"
    changes: dict[str, Any] = {}
    for key, rewrite in (("content", _content), ("reasoning_content", _content), ("tool_calls", _tool_calls),
                         ("function_call", _function)):
        if key in message:
            old = message[key]
            new = rewrite(old, role, visit)
            if new is not old:
                changes[key] = new
    return {**message, **changes} if changes else message


def rewrite_request(request: dict[str, Any], visit: Visit) -> dict[str, Any]:
    out = dict(request)
    messages = request.get("messages")
    if isinstance(messages, list):
        out["messages"] = [rewrite_message(m, visit) for m in messages]
    user = request.get("user")
    if isinstance(user, str):
        out["user"] = visit(user, "user", "user")
    return out


def rewrite_response(response: dict[str, Any], visit: Visit, *, drop_logprobs: bool) -> dict[str, Any]:
    """A `chat.completion`: each choice's message. Logprobs carry the raw tokens, so they are
    dropped when the answer's text is scanned."""
    choices = response.get("choices")
    if not isinstance(choices, list):
        return dict(response)
    new_choices = []
    for choice in choices:
        if not isinstance(choice, dict):
            new_choices.append(choice)
            continue
        message = choice.get("message")
        new = _thinking(rewrite_message(message, visit), visit)
        if new is not message or (drop_logprobs and choice.get("logprobs") is not None):
            choice = {**choice, "message": new}
            if drop_logprobs and choice.get("logprobs") is not None:
                choice["logprobs"] = None
        new_choices.append(choice)
    return {**response, "choices": new_choices}


def _thinking(message: Any, visit: Visit) -> Any:
    """An answer's thinking blocks are scanned like its text (a changed block no longer matches
    its signature: the provider then refuses to replay it, which is the safe way round)."""
    blocks = message.get("thinking_blocks") if isinstance(message, dict) else None
    if not isinstance(blocks, list):
        return message
    out = []
    for block in blocks:
        text = block.get("thinking") if isinstance(block, dict) else None
        if isinstance(text, str) and text:
            new = visit(text, "assistant", "content")
            block = {**block, "thinking": new} if new is not text else block
        out.append(block)
    return {**message, "thinking_blocks": out}

"""Token estimates of canonical (OpenAI-format) requests, reserved before the upstream call.

No tokenizer runs here (tiktoken downloads its encodings, and a real tokenizer per request
costs more than the rest of the pipeline). The estimate only has to be close: it is reserved
against tokensPerMinute and replaced by the provider's reported usage on settlement.

- ASCII text: about 4 characters per token (`ceil(len / 4)`), as for English and code;
- other text: `ceil(utf8_bytes / 3)`, so CJK (3 bytes, about one token per character) and
  Cyrillic or Greek (2 bytes, about 0.6 tokens per character) are not undercounted fourfold;
- per message `MESSAGE_OVERHEAD` tokens (role and separators), plus `REPLY_PRIMING` per request;
- images and other non-text parts a fixed amount each (their payload size says little about
  their token count); tools, functions and response_format by the characters of their JSON;
- the completion allowance: `max_completion_tokens`, else `max_tokens`, else the gateway's
  `maxTokensEstimate`, times `n`.

Nothing is serialised or copied for the count, apart from encoding non-ASCII strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
IMAGE_PART_TOKENS = 765  # a 1024x1024 image at high detail; low detail costs 85
OTHER_PART_TOKENS = 512  # audio, files: unknown until the provider reports usage
_STRUCT_KEYS = ("tools", "functions", "response_format")


def text_tokens(text: str) -> int:
    if text.isascii():
        return (len(text) + 3) >> 2
    return (len(text.encode("utf-8")) + 2) // 3


def _json_chars(value: Any) -> int:
    """About how many characters `value` takes as JSON, walked without serialising it."""
    total = 0
    stack = [value]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        item = pop()
        if isinstance(item, str):
            total += len(item) + 3  # quotes and a separator
        elif isinstance(item, dict):
            for key, sub in item.items():
                total += len(key) + 3
                push(sub)
            total += 2
        elif isinstance(item, (list, tuple)):
            extend(item)
            total += 2
        else:
            total += 5  # numbers, booleans, null
    return total


def _parts_tokens(content: list[Any]) -> int:
    total = 0
    for part in content:
        if not isinstance(part, dict):
            total += text_tokens(part) if isinstance(part, str) else 1
            continue
        kind = part.get("type")
        if kind == "text" or (kind is None and "text" in part):
            text = part.get("text")
            total += text_tokens(text) if isinstance(text, str) else 0
        elif kind == "image_url" or kind == "image":
            total += IMAGE_PART_TOKENS
        else:
            total += OTHER_PART_TOKENS
    return total


def _tool_calls_tokens(tool_calls: Any) -> int:
    if not isinstance(tool_calls, list):
        return 0
    total = 0
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            name, arguments = function.get("name"), function.get("arguments")
            total += MESSAGE_OVERHEAD
            total += text_tokens(name) if isinstance(name, str) else 0
            total += text_tokens(arguments) if isinstance(arguments, str) else 0
    return total


def estimate_prompt_tokens(request: Mapping[str, Any]) -> int:
    """Estimated prompt tokens of a canonical chat request: one pass over the messages; bodies
    are parsed JSON, so `dict` and `list` are the only containers checked for."""
    total = REPLY_PRIMING
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            total += MESSAGE_OVERHEAD
            content = message.get("content")
            if isinstance(content, str):  # the common case, inlined
                total += (len(content) + 3) >> 2 if content.isascii() else (len(content.encode("utf-8")) + 2) // 3
            elif isinstance(content, list):
                total += _parts_tokens(content)
            elif content is not None:
                total += (_json_chars(content) + 3) >> 2
            name = message.get("name")
            if isinstance(name, str):
                total += text_tokens(name)
            if "tool_calls" in message:
                total += _tool_calls_tokens(message["tool_calls"])
    for key in _STRUCT_KEYS:
        value = request.get(key)
        if value:
            total += (_json_chars(value) + 3) >> 2
    return total


def completion_allowance(request: Mapping[str, Any], default_max_tokens: int) -> int:
    """Completion tokens to reserve: the request's own cap, else the gateway's estimate; times n."""
    cap = default_max_tokens
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if _positive_int(value):
            cap = value
            break
    n = request.get("n")
    return cap * n if _positive_int(n) else cap


def estimate_chat_tokens(request: Mapping[str, Any], default_max_tokens: int) -> int:
    """Tokens to reserve for a canonical chat request (prompt estimate plus completion allowance)."""
    return estimate_prompt_tokens(request) + completion_allowance(request, default_max_tokens)


def estimate_embedding_tokens(request: Mapping[str, Any]) -> int:
    """Tokens to reserve for an embeddings request (`input`: text, texts, or token arrays)."""
    value = request.get("input")
    if isinstance(value, str):
        return text_tokens(value)
    if not isinstance(value, list):
        return 1
    total = 0
    for item in value:
        if isinstance(item, str):
            total += text_tokens(item)
        elif isinstance(item, list):
            total += len(item)
        else:
            total += 1
    return max(total, 1)


def _positive_int(value: Any) -> TypeGuard[int]:
    return type(value) is int and value > 0

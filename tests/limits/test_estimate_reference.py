"""The one-pass estimate with dict checks gives exactly the values of the earlier two-helper,
`Mapping`-checking version (kept here as the reference) on varied bodies."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from aigw_gateway.limits.estimate import (
    _STRUCT_KEYS,
    IMAGE_PART_TOKENS,
    MESSAGE_OVERHEAD,
    OTHER_PART_TOKENS,
    REPLY_PRIMING,
    estimate_prompt_tokens,
    text_tokens,
)


# --- the reference: estimate.py before the one-pass rewrite ------------------------------------

def old_json_chars(value: Any) -> int:
    """About how many characters `value` takes as JSON, walked without serialising it."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 3  # quotes and a separator
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                total += len(key) + 3
                stack.append(sub)
            total += 2
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
            total += 2
        else:
            total += 5  # numbers, booleans, null
    return total


def old_content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if not isinstance(part, Mapping):
                total += text_tokens(part) if isinstance(part, str) else 1
                continue
            kind = part.get("type")
            if kind == "text" or (kind is None and "text" in part):
                text = part.get("text")
                total += text_tokens(text) if isinstance(text, str) else 0
            elif kind in ("image_url", "image"):
                total += IMAGE_PART_TOKENS
            else:
                total += OTHER_PART_TOKENS
        return total
    return (old_json_chars(content) + 3) >> 2


def old_tool_calls_tokens(tool_calls: Any) -> int:
    if not isinstance(tool_calls, list):
        return 0
    total = 0
    for call in tool_calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            name, arguments = function.get("name"), function.get("arguments")
            total += MESSAGE_OVERHEAD
            total += text_tokens(name) if isinstance(name, str) else 0
            total += text_tokens(arguments) if isinstance(arguments, str) else 0
    return total


def old_estimate_prompt_tokens(request: Mapping[str, Any]) -> int:
    """Estimated prompt tokens of a canonical chat request."""
    total = REPLY_PRIMING
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            total += MESSAGE_OVERHEAD + old_content_tokens(message.get("content"))
            name = message.get("name")
            if isinstance(name, str):
                total += text_tokens(name)
            if "tool_calls" in message:
                total += old_tool_calls_tokens(message["tool_calls"])
    for key in _STRUCT_KEYS:
        value = request.get(key)
        if value:
            total += (old_json_chars(value) + 3) >> 2
    return total


# --- varied bodies -------------------------------------------------------------------------------

TEXTS = ["", "a", "hello world" * 7, "你好世界" * 9, "привет", "é" * 5, "x" * 1001]


def _value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(7 if depth < 3 else 5)
    if pick == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 6:
        return {f"k{i}": _value(rng, depth + 1) for i in range(rng.randrange(4))}
    return [rng.choice(TEXTS), rng.randrange(100), None, True, rng.random()][pick]


def _part(rng: random.Random) -> Any:
    return rng.choice([
        {"type": "text", "text": rng.choice(TEXTS)}, {"text": rng.choice(TEXTS)}, {"type": "text", "text": 3},
        {"type": "image_url", "image_url": {"url": "data:x"}}, {"type": "image"}, {"type": "input_audio"},
        rng.choice(TEXTS), 7, None,
    ])


def _message(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice(["not a message", 3, None, ["list"]])
    message: dict[str, Any] = {"role": rng.choice(["system", "user", "assistant", "tool"])}
    kind = rng.randrange(6)
    if kind == 0:
        message["content"] = rng.choice(TEXTS)
    elif kind == 1:
        message["content"] = [_part(rng) for _ in range(rng.randrange(5))]
    elif kind == 2:
        message["content"] = None
    elif kind == 3:
        message["content"] = _value(rng)
    if rng.random() < 0.3:
        message["name"] = rng.choice([*TEXTS, 5])
    if rng.random() < 0.3:
        message["tool_calls"] = rng.choice([
            "odd", None, [{"function": {"name": rng.choice(TEXTS), "arguments": rng.choice([*TEXTS, {"a": 1}])}},
                          {"function": "x"}, 3, {"id": "c"}]])
    return message


def _body(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": [_message(rng) for _ in range(rng.randrange(8))]}
    if rng.random() < 0.1:
        body["messages"] = rng.choice(["text", None, {"a": 1}])
    for key in _STRUCT_KEYS:
        if rng.random() < 0.3:
            body[key] = _value(rng)
    return body


def test_the_one_pass_estimate_equals_the_reference_on_varied_bodies():
    rng = random.Random(15)
    for _ in range(3000):
        body = _body(rng)
        assert estimate_prompt_tokens(body) == old_estimate_prompt_tokens(body), body

"""Token estimates of canonical requests, and cost from pricing."""

from __future__ import annotations

import orjson
import pytest

from aigw_config.kinds import Pricing
from aigw_gateway.limits import cost_nano, cost_usd, estimate_chat_tokens, estimate_embedding_tokens, format_usd
from aigw_gateway.limits.estimate import (
    IMAGE_PART_TOKENS,
    MESSAGE_OVERHEAD,
    REPLY_PRIMING,
    completion_allowance,
    estimate_prompt_tokens,
    text_tokens,
)


def test_text_heuristics():
    assert text_tokens("") == 0
    assert text_tokens("abcd") == 1
    assert text_tokens("abcde") == 2
    assert text_tokens("a" * 400) == 100
    # CJK: 3 UTF-8 bytes a character, about one token each (not a quarter of one).
    assert text_tokens("你好世界" * 25) == 100
    # Cyrillic: 2 bytes a character.
    assert text_tokens("привет" * 10) == 40


def test_prompt_estimate_counts_messages_names_tools_and_parts():
    one = {"messages": [{"role": "user", "content": "a" * 40}]}
    assert estimate_prompt_tokens(one) == REPLY_PRIMING + MESSAGE_OVERHEAD + 10

    richer = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "name": "alice", "content": [
                {"type": "text", "text": "what is this?" * 10},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}' * 20}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "result " * 30},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {
            "type": "object", "properties": {"q": {"type": "string", "description": "query " * 20}}}}}],
    }  # fmt: skip
    estimate = estimate_prompt_tokens(richer)
    # The image costs a fixed amount, whatever its base64 size (100 kB would be 25,000 "tokens").
    assert IMAGE_PART_TOKENS < estimate < IMAGE_PART_TOKENS + 400
    without_tools = estimate_prompt_tokens({**richer, "tools": None})
    json_quarter = len(orjson.dumps(richer["tools"])) / 4  # what chars/4 of the serialised tools gives
    assert 0.9 * json_quarter < estimate - without_tools < 1.1 * json_quarter


def test_completion_allowance_precedence():
    assert completion_allowance({}, 1024) == 1024
    assert completion_allowance({"max_tokens": 50}, 1024) == 50
    assert completion_allowance({"max_tokens": 50, "max_completion_tokens": 70}, 1024) == 70
    assert completion_allowance({"max_tokens": 50, "n": 3}, 1024) == 150
    # Malformed values fall back to the gateway's estimate rather than reserving nothing.
    assert completion_allowance({"max_tokens": "50"}, 1024) == 1024
    assert completion_allowance({"max_tokens": 0}, 1024) == 1024
    assert completion_allowance({"max_tokens": True}, 1024) == 1024


def test_chat_estimate_is_prompt_plus_allowance():
    request = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 100}
    assert estimate_chat_tokens(request, 1024) == estimate_prompt_tokens(request) + 100


def test_estimate_survives_odd_and_deep_input():
    deep: object = "x"
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = {"k": [deep]}
    assert estimate_prompt_tokens({"messages": [{"role": "user", "content": deep}, "junk", None]}) > 5000
    assert estimate_prompt_tokens({"messages": "not a list"}) == REPLY_PRIMING


def test_embedding_estimate():
    assert estimate_embedding_tokens({"input": "a" * 40}) == 10
    assert estimate_embedding_tokens({"input": ["a" * 40, "b" * 8]}) == 12
    assert estimate_embedding_tokens({"input": [[1, 2, 3], [4, 5]]}) == 5
    assert estimate_embedding_tokens({}) == 1


def test_cost_from_pricing():
    pricing = Pricing(input_per_million=2.5, output_per_million=10)
    assert cost_nano(pricing, 1_000_000, 0) == 2_500_000_000
    assert cost_usd(pricing, 1000, 500) == pytest.approx(0.0075)
    assert cost_usd(None, 1000, 500) == 0.0
    cheap = Pricing(input_per_million=0.15, output_per_million=0.6)
    assert cost_nano(cheap, 1, 1) == 750  # $0.15 + $0.60 per million: 150 + 600 nano-USD
    assert cost_nano(cheap, -5, 0) == 0
    assert format_usd(0.0075) == "0.007500"

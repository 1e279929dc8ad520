"""The OpenAI chat request fields every non-OpenAI table starts from, with their usual fate."""

from __future__ import annotations

from .rules import IGNORED, TRANSLATED, UNSUPPORTED, Support, falsy, one, text_only, unless, zero

# Fields every translated target handles the same way; tables override what differs.
BASE: dict[str, Support] = {
    "model": TRANSLATED, "messages": TRANSLATED, "stream": TRANSLATED,
    "stream_options": IGNORED,  # the gateway always asks the upstream for usage and renders it as asked
    "max_tokens": TRANSLATED, "max_completion_tokens": TRANSLATED,
    "temperature": TRANSLATED, "top_p": TRANSLATED, "stop": TRANSLATED,
    "tools": TRANSLATED, "tool_choice": TRANSLATED,
    "n": unless(one),
    "presence_penalty": unless(zero), "frequency_penalty": unless(zero),
    "logit_bias": unless(falsy),
    "logprobs": unless(lambda v: v is False),
    "top_logprobs": unless(zero),
    "seed": UNSUPPORTED,
    "top_k": UNSUPPORTED,
    "parallel_tool_calls": unless(lambda v: v is True),
    "response_format": unless(lambda v: isinstance(v, dict) and v.get("type") == "text"),
    "reasoning_effort": UNSUPPORTED, "reasoning_budget": unless(zero),
    # advisory: no effect on the answer
    "user": IGNORED, "safety_identifier": IGNORED, "metadata": IGNORED, "prompt_cache_key": IGNORED,
    "prompt_cache_retention": IGNORED,
    "store": unless(lambda v: v is False),
    "service_tier": unless(lambda v: v in ("auto", "default")),
    "modalities": unless(text_only), "audio": UNSUPPORTED, "prediction": UNSUPPORTED,
    "web_search_options": UNSUPPORTED,
    "verbosity": unless(lambda v: v == "medium"),  # OpenAI's default asks for nothing (the Agents SDK sends it)
    "functions": UNSUPPORTED, "function_call": UNSUPPORTED,  # legacy: clients send `tools`
}

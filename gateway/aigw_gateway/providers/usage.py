"""The canonical usage dict, built the same way from every provider's token counts."""

from __future__ import annotations

from typing import Any


def usage_dict(input_tokens: int, output_tokens: int, *, cache_read: int = 0, cache_write: int = 0) -> dict[str, Any]:
    """OpenAI-shaped usage; cached prompt tokens count as prompt tokens and are also itemised."""
    prompt = input_tokens + cache_read + cache_write
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": output_tokens,
                           "total_tokens": prompt + output_tokens}
    if cache_read or cache_write:
        details: dict[str, int] = {"cached_tokens": cache_read}
        if cache_write:  # billed at the cache-write price (the usage ledger and budgets count it)
            details["cache_write_tokens"] = cache_write
        out["prompt_tokens_details"] = details
    return out

"""Cost of one request from its target's pricing and the provider's reported usage.

Spend is kept as an integer count of nano-USD (1e-9 USD) in the stores and in the usage
ledger: integer additions are exact and order-independent, so equal usage always adds equal
spend (a streamed and a non-streamed request with the same usage cost the same, to the last
digit), and a month of small additions does not drift the way float accumulation does. A price
of $0.01 per million tokens is 10 nano-USD per token, so nothing realistic rounds to zero.

Prices are turned into Decimals from their shortest decimal form ("0.15", never the binary
float's 0.1499999...), so a ledger row's `cost_usd` is usage x pricing exactly, rounded once
(half to even) to the nano-dollar, and the Redis spend adds the very same integer.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any

from aigw_config.kinds import Pricing

NANO = 1_000_000_000


_SCALE = 10**9  # prices as integers in 1e-9 nano-USD per token: exact for up to 12 decimals of USD/M


@lru_cache(maxsize=1024)
def _nano_per_token(usd_per_million: float) -> Decimal:
    return Decimal(repr(float(usd_per_million))) * 1000  # USD per million tokens = x 1000 nano-USD per token


@lru_cache(maxsize=1024)
def _scaled(usd_per_million: float) -> int | None:
    """The price as an integer at _SCALE (None when it has more decimals than that holds)."""
    exact = _nano_per_token(usd_per_million) * _SCALE
    return int(exact) if exact == exact.to_integral_value() else None


def cost_nano(pricing: Pricing | None, prompt_tokens: int, completion_tokens: int, *,
              cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> int:
    """Cost in nano-USD. `prompt_tokens` includes cached ones (as OpenAI reports it): cache reads
    and writes are billed at `cacheReadPerMillion`/`cacheWritePerMillion` (default: the input
    price), the rest of the prompt at `inputPerMillion`."""
    if pricing is None:
        return 0
    prompt = max(int(prompt_tokens), 0)
    read = min(max(int(cache_read_tokens), 0), prompt)
    write = min(max(int(cache_write_tokens), 0), prompt - read)
    input_price = pricing.input_per_million
    read_price = pricing.cache_read_per_million if pricing.cache_read_per_million is not None else input_price
    write_price = pricing.cache_write_per_million if pricing.cache_write_per_million is not None else input_price
    completion = max(int(completion_tokens), 0)
    output_price = pricing.output_per_million
    scaled = (_scaled(input_price), _scaled(read_price), _scaled(write_price), _scaled(output_price))
    if None not in scaled:  # integer arithmetic: exact, and several times faster than Decimal
        total = (prompt - read - write) * scaled[0] + read * scaled[1] + write * scaled[2] + completion * scaled[3]
        nano, rest = divmod(total, _SCALE)
        if 2 * rest > _SCALE or (2 * rest == _SCALE and nano % 2):  # half to even, as Decimal rounds
            nano += 1
        return nano
    exact = (
        (prompt - read - write) * _nano_per_token(input_price)
        + read * _nano_per_token(read_price)
        + write * _nano_per_token(write_price)
        + completion * _nano_per_token(output_price)
    )
    return int(exact.to_integral_value(ROUND_HALF_EVEN))


def usage_counts(usage: dict[str, Any] | None) -> tuple[int, int, int, int, int]:
    """(prompt, completion, cache read, cache write, reasoning) tokens of a canonical usage dict."""
    if not usage:
        return 0, 0, 0, 0, 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return (
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(prompt_details.get("cached_tokens") or 0),
        int(prompt_details.get("cache_write_tokens") or 0),
        int(completion_details.get("reasoning_tokens") or 0),
    )


def usage_cost_nano(pricing: Pricing | None, usage: dict[str, Any] | None) -> int:
    """Cost in nano-USD of a canonical usage dict (cache reads and writes priced as such)."""
    if pricing is None or not usage:
        return 0
    prompt, completion, read, write, _ = usage_counts(usage)
    return cost_nano(pricing, prompt, completion, cache_read_tokens=read, cache_write_tokens=write)


def cost_usd(pricing: Pricing | None, prompt_tokens: int, completion_tokens: int) -> float:
    """Cost in USD of one request (0.0 without pricing)."""
    return cost_nano(pricing, prompt_tokens, completion_tokens) / NANO


MAX_REQUEST_USD = 1_000_000.0  # what one request can add to a spend: keeps Redis's 64-bit sums safe


def usd_to_nano(usd: float) -> int:
    """Nano-USD of one request's cost, within [0, MAX_REQUEST_USD] (NaN and negatives: 0)."""
    return round(min(usd, MAX_REQUEST_USD) * NANO) if usd > 0 else 0


def format_usd(usd: float) -> str:
    """USD as a header or report value: six decimals ("0.000150", "499.999850")."""
    return f"{usd:.6f}"

"""Cost of one request from its target's pricing and the provider's reported usage.

Spend is kept as an integer count of nano-USD (1e-9 USD) in the stores: integer additions are
exact and order-independent, so equal usage always adds equal spend (a streamed and a
non-streamed request with the same usage cost the same, to the last digit), and a month of
small additions does not drift the way float accumulation does. A price of $0.01 per million
tokens is 10 nano-USD per token, so nothing realistic rounds to zero.
"""

from __future__ import annotations

from aigw_config.kinds import Pricing

NANO = 1_000_000_000


def cost_nano(pricing: Pricing | None, prompt_tokens: int, completion_tokens: int) -> int:
    """Cost in nano-USD: USD per million tokens is (x 1000) nano-USD per token."""
    if pricing is None:
        return 0
    return round(
        max(prompt_tokens, 0) * pricing.input_per_million * 1000
        + max(completion_tokens, 0) * pricing.output_per_million * 1000
    )


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

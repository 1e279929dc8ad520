"""Budgets per calendar period (UTC), block and warn, and spend from settled cost: both stores."""

from __future__ import annotations

import pytest

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget, Limits, Pricing
from aigw_gateway.errors import BudgetExceeded
from aigw_gateway.limits import Limiter, cost_usd

from .conftest import Clock


def budget_tenant(name: str, amount: float, period: str = "monthly", on_exceeded: str = "block") -> TenantConfig:
    return TenantConfig(name=name, budget=Budget(amount=amount, period=period, on_exceeded=on_exceeded))


@pytest.mark.parametrize(
    ("period", "earlier_same_period", "last_second", "next_period", "reset"),
    [
        ("monthly", "2025-01-01T00:00:00", "2025-01-31T23:59:59", "2025-02-01T00:00:00", "2025-02-01T00:00:00Z"),
        ("monthly", "2024-12-01T00:00:00", "2024-12-31T23:59:59", "2025-01-01T00:00:00", "2025-01-01T00:00:00Z"),
        ("daily", "2025-01-31T00:00:00", "2025-01-31T23:59:59", "2025-02-01T00:00:00", "2025-02-01T00:00:00Z"),
        # 2025-01-05 is a Sunday: the ISO week ran from Monday 2024-12-30.
        ("weekly", "2024-12-30T00:00:00", "2025-01-05T23:59:59", "2025-01-06T00:00:00", "2025-01-06T00:00:00Z"),
    ],
)
async def test_spend_resets_when_the_period_ends(
    limiter: Limiter, clock: Clock, tenant_name: str, period, earlier_same_period, last_second, next_period, reset
):
    t = budget_tenant(tenant_name, amount=1.0, period=period)
    clock.set(earlier_same_period + "+00:00")
    spent = await limiter.admit(t, 0)
    await limiter.settle(spent, 100_000, 10_000, 1.0)  # the whole budget

    clock.set(last_second + "+00:00")
    with pytest.raises(BudgetExceeded) as refused:
        await limiter.admit(t, 0)
    err = refused.value
    assert (err.status_code, err.code, err.type) == (429, "budget_exceeded", "insufficient_quota")
    assert f"spent $1.000000 of $1.000000 in the {period} period" in err.message
    assert f"resets at {reset}" in err.message
    assert err.headers["x-should-retry"] == "false"
    assert err.headers["x-aigw-budget-remaining-usd"] == "0.000000"
    assert err.headers["x-aigw-budget-exceeded"] == "block"

    clock.set(next_period + "+00:00")
    admission = await limiter.admit(t, 0)
    assert not admission.over_budget
    assert limiter.headers(admission)["x-aigw-budget-remaining-usd"] == "1.000000"
    usage = await limiter.usage(t)
    assert usage["budget"]["spend_usd"] == 0.0
    assert usage["budget"]["period_start"] == next_period + "Z"


async def test_block_refuses_only_once_spend_reaches_the_amount(limiter: Limiter, tenant_name: str):
    t = budget_tenant(tenant_name, amount=1.0)
    a = await limiter.admit(t, 0)
    await limiter.settle(a, 0, 0, 0.999_999_999)
    b = await limiter.admit(t, 0)  # spend < amount: served (its own cost may take it over)
    await limiter.settle(b, 0, 0, 0.25)
    with pytest.raises(BudgetExceeded):
        await limiter.admit(t, 0)
    assert (await limiter.usage(t))["budget"]["exceeded"] is True


async def test_warn_serves_and_flags(limiter: Limiter, tenant_name: str):
    t = budget_tenant(tenant_name, amount=0.5, on_exceeded="warn")
    a = await limiter.admit(t, 0)
    assert not a.over_budget and "x-aigw-budget-exceeded" not in limiter.headers(a)
    await limiter.settle(a, 0, 0, 0.6)
    b = await limiter.admit(t, 0)
    assert b.over_budget
    headers = limiter.headers(b)
    assert headers["x-aigw-budget-exceeded"] == "warn"
    assert headers["x-aigw-budget-remaining-usd"] == "0.000000"
    await limiter.settle(b, 0, 0, 0.6)  # spend keeps counting past the amount
    usage = await limiter.usage(t)
    assert usage["budget"]["spend_usd"] == pytest.approx(1.2)
    assert usage["budget"]["remaining_usd"] == 0.0


async def test_budget_and_rate_limits_together(limiter: Limiter, tenant_name: str):
    t = TenantConfig(
        name=tenant_name, limits=Limits(requests_per_minute=100), budget=Budget(amount=0.01, on_exceeded="block")
    )
    a = await limiter.admit(t, 10)
    await limiter.settle(a, 0, 0, 0.02)
    with pytest.raises(BudgetExceeded):  # the budget is the reason, not the (unreached) rate limit
        await limiter.admit(t, 10)
    assert (await limiter.usage(t))["requests"]["used"] == 1


async def test_cost_goes_to_the_period_the_request_was_admitted_in(limiter: Limiter, clock: Clock, tenant_name: str):
    t = budget_tenant(tenant_name, amount=10.0)
    clock.set("2025-01-31T23:59:58+00:00")
    admission = await limiter.admit(t, 0)
    clock.set("2025-02-01T00:00:05+00:00")  # a long stream ends in the next month
    await limiter.settle(admission, 0, 0, 3.0)
    assert (await limiter.usage(t))["budget"]["spend_usd"] == 0.0
    clock.set("2025-01-31T23:59:59+00:00")
    assert (await limiter.usage(t))["budget"]["spend_usd"] == 3.0


async def test_equal_usage_gives_equal_spend(limiter: Limiter, clock: Clock, tenant_name: str):
    """A streamed response settles late (after its last chunk, maybe in a later window) and a
    non-streamed one at once; with the same reported usage they add exactly the same spend."""
    pricing = Pricing(input_per_million=0.15, output_per_million=0.6)
    streamed = budget_tenant(tenant_name + "-s", amount=100)
    whole = budget_tenant(tenant_name + "-w", amount=100)
    usages = [(17, 3), (1234, 567), (1, 0), (40_000, 4096), (7, 7)] * 40

    for prompt, completion in usages:
        clock.set("2025-01-15T12:00:30+00:00")
        in_flight = await limiter.admit(streamed, 500)
        done = await limiter.admit(whole, 500)
        await limiter.settle(done, prompt, completion, cost_usd(pricing, prompt, completion))
        clock.advance(75)  # the stream's last chunk arrives in the next window
        await limiter.settle(in_flight, prompt, completion, cost_usd(pricing, prompt, completion))

    expected_nano = sum(round(p * 150 + c * 600) for p, c in usages)
    spend_streamed = (await limiter.usage(streamed))["budget"]["spend_usd"]
    spend_whole = (await limiter.usage(whole))["budget"]["spend_usd"]
    assert spend_streamed == spend_whole == round(expected_nano / 1e9, 9)

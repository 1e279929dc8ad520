"""Requests and tokens per minute, reservation and settlement: the same semantics on both stores."""

from __future__ import annotations

import pytest

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget, Limits
from aigw_gateway.errors import RateLimitExceeded
from aigw_gateway.limits import Limiter, MemoryStore

from .conftest import Clock


def tenant(name: str, rpm: int | None = None, tpm: int | None = None, budget: Budget | None = None) -> TenantConfig:
    limits = Limits(requests_per_minute=rpm, tokens_per_minute=tpm) if rpm or tpm else None
    return TenantConfig(name=name, limits=limits, budget=budget)


async def test_requests_per_minute_are_exact_per_window(limiter: Limiter, clock: Clock, tenant_name: str):
    t = tenant(tenant_name, rpm=3)
    remaining = []
    for _ in range(3):
        admission = await limiter.admit(t, 10)
        remaining.append(limiter.headers(admission)["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]

    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.admit(t, 10)
    err = refused.value
    assert (err.status_code, err.code, err.type) == (429, "rate_limit_exceeded", "requests")
    assert err.retry_after == pytest.approx(30.0)
    assert err.headers["retry-after"] == "30"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.headers["x-ratelimit-reset-requests"] == "30s"
    assert "requests per minute (RPM): Limit 3, Used 3" in err.message

    clock.advance(29.999)  # still the same window
    with pytest.raises(RateLimitExceeded):
        await limiter.admit(t, 10)
    clock.advance(0.001)  # 12:01:00, a new window
    admission = await limiter.admit(t, 10)
    assert admission.requests_used == 1


async def test_tokens_are_reserved_then_settled(limiter: Limiter, tenant_name: str):
    t = tenant(tenant_name, tpm=1000)
    first = await limiter.admit(t, 600)
    assert limiter.headers(first)["x-ratelimit-remaining-tokens"] == "400"

    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.admit(t, 500)
    assert refused.value.type == "tokens"
    assert "Limit 1000, Used 600, Requested 500" in refused.value.message
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "400"

    await limiter.settle(first, 150, 50, 0.0)  # real usage 200 replaces the 600 reserved
    second = await limiter.admit(t, 500)
    assert second.tokens_used == 700
    third = await limiter.admit(t, 300)  # exactly up to the limit is allowed
    assert third.tokens_used == 1000
    with pytest.raises(RateLimitExceeded):
        await limiter.admit(t, 1)

    usage = await limiter.usage(t)
    assert usage["tokens"] == {"used": 1000, "limit": 1000, "remaining": 0}
    assert usage["requests"] == {"used": 3, "limit": None, "remaining": None}


async def test_a_refused_request_reserves_nothing(limiter: Limiter, tenant_name: str):
    t = tenant(tenant_name, rpm=10, tpm=100)
    await limiter.admit(t, 90)
    with pytest.raises(RateLimitExceeded):
        await limiter.admit(t, 20)
    usage = await limiter.usage(t)
    assert (usage["requests"]["used"], usage["tokens"]["used"]) == (1, 90)


async def test_a_request_larger_than_the_whole_limit_is_refused_as_such(limiter: Limiter, tenant_name: str):
    t = tenant(tenant_name, tpm=1000)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.admit(t, 1001)
    err = refused.value
    assert err.type == "tokens" and err.status_code == 429
    assert "Request too large" in err.message and "can never fit" in err.message
    assert "Limit 1000, Requested 1001" in err.message
    assert err.headers["x-should-retry"] == "false"  # the SDKs must not retry it
    assert (await limiter.usage(t))["tokens"]["used"] == 0
    assert (await limiter.admit(t, 1000)).tokens_used == 1000


async def test_settlement_lands_in_the_window_of_the_reservation(limiter: Limiter, clock: Clock, tenant_name: str):
    t = tenant(tenant_name, tpm=1000)
    clock.set("2025-01-15T12:00:50+00:00")
    admission = await limiter.admit(t, 800)
    clock.set("2025-01-15T12:01:10+00:00")  # the (streamed) response ends in the next window
    await limiter.settle(admission, 100, 200, 0.0)
    assert (await limiter.usage(t))["tokens"]["used"] == 0  # the new window owes nothing
    clock.set("2025-01-15T12:00:59+00:00")
    assert (await limiter.usage(t))["tokens"]["used"] == 300


async def test_settle_is_idempotent_and_release_returns_the_reservation(limiter: Limiter, tenant_name: str):
    t = tenant(tenant_name, tpm=1000)
    a = await limiter.admit(t, 400)
    await limiter.settle(a, 100, 0, 0.0)
    await limiter.settle(a, 100, 0, 0.0)  # a second settle (an error path after success) changes nothing
    b = await limiter.admit(t, 500)
    assert b.tokens_used == 600
    await limiter.release(b)
    assert (await limiter.usage(t))["tokens"]["used"] == 100


class _NoStore:
    """A store that fails the test if it is asked anything."""

    async def admit(self, *a):
        raise AssertionError("store asked for a tenant without limits")

    settle = read = admit


async def test_a_tenant_without_limits_or_budget_never_reaches_the_store(clock: Clock):
    limiter = Limiter(_NoStore(), fail_mode="closed", clock=clock)
    t = tenant("free")
    admission = await limiter.admit(t, 10**9)
    assert not admission.limited and not admission.degraded
    assert limiter.headers(admission) == {}
    await limiter.settle(admission, 10, 10, 1.0)
    usage = await limiter.usage(t)
    assert usage["requests"] == {"used": None, "limit": None, "remaining": None}
    assert usage["budget"] is None


async def test_headers_of_an_admission(limiter: Limiter, clock: Clock, tenant_name: str):
    clock.set("2025-01-15T12:00:30.250+00:00")
    t = tenant(tenant_name, rpm=600, tpm=100_000, budget=Budget(amount=500, period="monthly"))
    first = await limiter.admit(t, 1200)
    await limiter.settle(first, 1000, 200, 0.75)
    second = await limiter.admit(t, 2000)
    assert limiter.headers(second) == {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "598",
        "x-ratelimit-reset-requests": "29.75s",
        "x-ratelimit-limit-tokens": "100000",
        "x-ratelimit-remaining-tokens": "96800",
        "x-ratelimit-reset-tokens": "29.75s",
        "x-aigw-budget-limit-usd": "500.000000",
        "x-aigw-budget-remaining-usd": "499.250000",
        "x-aigw-budget-reset": "2025-02-01T00:00:00Z",
    }
    clock.set("2025-01-15T12:00:59.988+00:00")
    third = await limiter.admit(t, 10)
    assert limiter.headers(third)["x-ratelimit-reset-tokens"] == "12ms"


async def test_only_configured_limits_get_headers(limiter: Limiter, tenant_name: str):
    admission = await limiter.admit(tenant(tenant_name, tpm=5000), 100)
    assert set(limiter.headers(admission)) == {
        "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
    }  # fmt: skip


async def test_usage_report(limiter: Limiter, clock: Clock, tenant_name: str):
    t = tenant(tenant_name, rpm=60, tpm=10_000, budget=Budget(amount=20, period="weekly", on_exceeded="warn"))
    a = await limiter.admit(t, 300)
    await limiter.settle(a, 200, 50, 1.5)
    await limiter.admit(t, 300)
    assert await limiter.usage(t) == {
        "tenant": tenant_name,
        "window": {"start": "2025-01-15T12:00:00Z", "end": "2025-01-15T12:01:00Z", "reset_seconds": 30.0},
        "requests": {"used": 2, "limit": 60, "remaining": 58},
        "tokens": {"used": 550, "limit": 10_000, "remaining": 9450},
        "budget": {
            "amount_usd": 20.0, "currency": "USD", "period": "weekly", "period_label": "2025-W03",
            "period_start": "2025-01-13T00:00:00Z", "period_end": "2025-01-20T00:00:00Z",
            "spend_usd": 1.5, "remaining_usd": 18.5, "exceeded": False, "on_exceeded": "warn",
        },
    }  # fmt: skip


async def test_memory_windows_expire_by_the_callers_clock(clock: Clock, tenant_name: str):
    """The in-memory twin of the Redis TTLs: a settlement arriving after its window expired
    does not resurrect it, and expired windows are swept."""
    store = MemoryStore()
    limiter = Limiter(store, fail_mode="closed", clock=clock)
    t = tenant(tenant_name, tpm=1000)
    late = await limiter.admit(t, 900)
    clock.advance(60 + 121)  # past the window and its grace
    await limiter.settle(late, 10, 10, 0.0)
    assert late.window_key not in store._windows
    clock.advance(60)
    await limiter.admit(t, 10)  # triggers a sweep
    assert list(store._windows) == [f"aigw:{{{tenant_name}}}:w:{int(clock.t) // 60 * 60}"]

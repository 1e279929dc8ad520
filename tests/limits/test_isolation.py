"""One tenant cannot break another's limits: a store error of one call (a script failing on that
tenant's keys or arguments) fails that request only and never trips the limiter; only connection
errors and timeouts do. Real Redis throughout."""

from __future__ import annotations

import pytest

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget, Limits
from aigw_gateway.errors import BudgetExceeded, LimitsUnavailable
from aigw_gateway.limits import Limiter, RedisStore
from aigw_gateway.limits.bounds import MAX_RESERVATION_TOKENS
from tests.fakes.redis_server import RedisServer


def _window_key(limiter: Limiter, tenant: str) -> str:
    from aigw_gateway.limits.windows import window_start

    return f"aigw:{{{tenant}}}:w:{window_start(limiter.clock())}"


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
async def test_a_script_error_of_one_tenant_does_not_trip_the_limiter(
    redis_server: RedisServer, fail_mode: str, tenant_name: str
):
    store = RedisStore.from_url(redis_server.url)
    limiter = Limiter(store, fail_mode=fail_mode, trip_after=2, retry_interval=30)
    broken = TenantConfig(name=tenant_name + "-a", limits=Limits(tokens_per_minute=10**9))
    spent = TenantConfig(name=tenant_name + "-b", budget=Budget(amount=0))
    # A key of the wrong type makes the admission script fail with WRONGTYPE: a reply error, not an outage.
    redis_server.command("SET", _window_key(limiter, broken.name), "not-a-hash")
    try:
        for _ in range(5):
            if fail_mode == "closed":
                with pytest.raises(LimitsUnavailable):
                    await limiter.admit(broken, 100)
            else:
                assert (await limiter.admit(broken, 100)).degraded
        assert limiter.store_healthy and limiter.call_failed_total == 5
        # The other tenant is still checked, and refused for its own budget (not served, not 503).
        for _ in range(3):
            with pytest.raises(BudgetExceeded):
                await limiter.admit(spent, 10)
    finally:
        await store.aclose()


async def test_a_reservation_is_bounded_so_the_script_never_overflows(redis_server: RedisServer, tenant_name: str):
    store = RedisStore.from_url(redis_server.url)
    limiter = Limiter(store, fail_mode="closed")
    tenant = TenantConfig(name=tenant_name, budget=Budget(amount=1000))
    try:
        for _ in range(3):  # 3 x (2**64 - 1) would overflow Redis's 64-bit counters unbounded
            admission = await limiter.admit(tenant, 2**64 - 1)
            assert admission.tokens == MAX_RESERVATION_TOKENS and not admission.degraded
        # An upstream reporting absurd usage and cost cannot make the settlement fail either.
        await limiter.settle(admission, 2**70, 2**70, float("inf"))
        assert limiter.settle_failed_total == 0 and limiter.store_healthy
    finally:
        await store.aclose()


async def test_an_outage_still_trips(redis_server_fn: RedisServer, tenant_name: str):
    store = RedisStore.from_url(redis_server_fn.url, op_timeout=0.3)
    limiter = Limiter(store, fail_mode="open", trip_after=2, retry_interval=30)
    tenant = TenantConfig(name=tenant_name, limits=Limits(requests_per_minute=100))
    try:
        assert not (await limiter.admit(tenant, 1)).degraded
        redis_server_fn.kill()
        for _ in range(2):
            assert (await limiter.admit(tenant, 1)).degraded
        assert not limiter.store_healthy and limiter.call_failed_total == 0
    finally:
        await store.aclose()

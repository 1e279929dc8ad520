"""concurrentRequests: slots in flight per tenant, in one admission call, freed by settlement or by
their lease running out (a crashed pod), renewed while their request lives. Both stores."""

from __future__ import annotations

import pytest

from aigw_config.config import TenantConfig
from aigw_config.kinds import Limits
from aigw_gateway.errors import ConcurrencyLimitExceeded
from aigw_gateway.limits import Limiter
from aigw_gateway.limits.limiter import LEASE_SECONDS


def tenant(name: str, n: int = 2, **limits) -> TenantConfig:
    return TenantConfig(name=name, limits=Limits(concurrent_requests=n, **limits))


async def test_slots_are_taken_refused_and_freed(limiter: Limiter, tenant_name: str):
    t = tenant(tenant_name)
    first, second = await limiter.admit(t, 10), await limiter.admit(t, 10)
    with pytest.raises(ConcurrencyLimitExceeded) as refused:
        await limiter.admit(t, 10)
    err = refused.value
    assert (err.status_code, err.code, err.type) == (429, "concurrency_limit_exceeded", "concurrency_limit_exceeded")
    assert err.headers["retry-after"] == "1" and "2 requests in flight" in err.message
    await limiter.settle(first, 5, 5, 0.0)
    third = await limiter.admit(t, 10)  # the freed slot is free again
    await limiter.release(second)
    await limiter.keep(third)  # served without usage: the slot is freed all the same
    await limiter.admit(t, 10)
    await limiter.admit(t, 10)


async def test_a_refusal_for_concurrency_reserves_nothing(limiter: Limiter, tenant_name: str):
    t = tenant(tenant_name, 1, requests_per_minute=100)
    held = await limiter.admit(t, 10)
    for _ in range(3):
        with pytest.raises(ConcurrencyLimitExceeded):
            await limiter.admit(t, 10)
    await limiter.settle(held, 5, 5, 0.0)
    assert (await limiter.admit(t, 10)).requests_used == 2  # the refusals counted no request


async def test_a_crashed_pods_slots_expire_with_their_lease(limiter: Limiter, clock, tenant_name: str):
    t = tenant(tenant_name, 1)
    crashed = Limiter(limiter.store, fail_mode="closed", clock=clock)  # never settles nor renews
    await crashed.admit(t, 10)
    with pytest.raises(ConcurrencyLimitExceeded):
        await limiter.admit(t, 10)
    clock.advance(LEASE_SECONDS + 1)
    await limiter.admit(t, 10)


async def test_a_live_request_keeps_its_slot_past_the_lease(limiter: Limiter, clock, tenant_name: str):
    t = tenant(tenant_name, 1)
    owner = Limiter(limiter.store, fail_mode="closed", clock=clock)
    await owner.admit(t, 10)
    clock.advance(LEASE_SECONDS - 5)
    await owner.renew_leases()  # the app calls this about every second
    clock.advance(30)  # past the first lease, within the renewed one
    with pytest.raises(ConcurrencyLimitExceeded):
        await limiter.admit(t, 10)


async def test_tenants_and_unlimited_tenants_are_apart(limiter: Limiter, tenant_name: str):
    await limiter.admit(tenant(tenant_name + "-a", 1), 10)
    await limiter.admit(tenant(tenant_name + "-b", 1), 10)  # its own slots
    free = TenantConfig(name=tenant_name + "-free")
    assert not (await limiter.admit(free, 10)).limited  # no limits: no store call, no slot

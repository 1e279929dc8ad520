"""Settlements off the request path (`Limiter.settle_soon`): batched in one round trip, flushed at
shutdown, a concurrency slot freed within one round trip, an outage handled as `settle` does it
(the breaker, the count, and the ledger event handed back so it is never lost)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget, Limits
from aigw_gateway.errors import ConcurrencyLimitExceeded
from aigw_gateway.limits import Limiter, MemoryStore, RedisStore
from aigw_gateway.limits.store import StreamAppend
from tests.fakes.redis_server import RedisServer

from .test_concurrency import RPM, TPM, check_requests, check_tokens, ledger, spawn_drivers, spec_for, store_counters

LIMITS = Limits(requests_per_minute=1000, tokens_per_minute=1_000_000)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


class Counting:
    """Wraps a store: counts round trips of settlements; `gate` (when set) holds each batch."""

    def __init__(self, store) -> None:
        self.store, self.batches, self.gate = store, [], None

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def settle_many(self, batch):
        if self.gate is not None:
            await self.gate.wait()
        self.batches.append(len(batch))
        return await self.store.settle_many(batch)


async def test_settlements_of_one_turn_travel_in_one_round_trip(store, clock, tenant_name: str):
    counting = Counting(store)
    limiter = Limiter(counting, fail_mode="closed", clock=clock)
    tenant = TenantConfig(name=tenant_name, limits=LIMITS, budget=Budget(amount=100))
    admissions = [await limiter.admit(tenant, 500) for _ in range(40)]
    done: list[bool] = []
    for admission in admissions:  # the responses: none of them waits
        assert limiter.settle_soon(admission, 100, 50, 0.001, done=done.append)
    assert not limiter.settle_soon(admissions[0], 100, 50, 0.001)  # settled already: nothing queued
    assert counting.batches == [] and limiter.settlements.queued == 40
    await limiter.flush()
    assert counting.batches == [40] and done == [False] * 40  # no append asked, none happened
    usage = await limiter.usage(tenant)
    assert usage["tokens"]["used"] == 40 * 150 and usage["requests"]["used"] == 40
    assert usage["budget"]["spend_usd"] == pytest.approx(0.04)


async def test_while_a_batch_is_in_flight_the_next_ones_gather(redis_server: RedisServer, tenant_name: str):
    counting = Counting(RedisStore.from_url(redis_server.url))
    counting.gate = asyncio.Event()
    limiter = Limiter(counting, fail_mode="closed")
    tenant = TenantConfig(name=tenant_name, limits=LIMITS)
    try:
        limiter.settle_soon(await limiter.admit(tenant, 10), 5, 5, 0.0)
        await asyncio.sleep(0.01)  # the first batch (of one) is held in flight
        for _ in range(30):
            limiter.settle_soon(await limiter.admit(tenant, 10), 5, 5, 0.0)
        counting.gate.set()
        await limiter.flush()
        assert counting.batches == [1, 30]
        assert (await limiter.usage(tenant))["tokens"]["used"] == 31 * 10
    finally:
        await counting.store.aclose()


async def test_flush_at_shutdown_sends_every_queued_settlement(redis_server: RedisServer, tenant_name: str):
    counting = Counting(RedisStore.from_url(redis_server.url))
    limiter = Limiter(counting, fail_mode="closed")
    limiter.settlements.max_batch = 10
    tenant = TenantConfig(name=tenant_name, limits=LIMITS)
    try:
        admissions = [await limiter.admit(tenant, 100) for _ in range(35)]
        counting.gate = asyncio.Event()
        done: list[bool] = []
        for admission in admissions:
            limiter.settle_soon(admission, 20, 0, 0.0, done=done.append)
        asyncio.get_running_loop().call_later(0.05, counting.gate.set)  # a slow store
        await limiter.flush_for_shutdown(timeout=5)
        assert counting.batches == [10, 10, 10, 5] and len(done) == 35
        assert (await limiter.usage(tenant))["tokens"]["used"] == 35 * 20
    finally:
        await counting.store.aclose()


async def test_a_concurrency_slot_is_freed_within_one_round_trip(redis_server: RedisServer, tenant_name: str):
    store = RedisStore.from_url(redis_server.url)
    limiter = Limiter(store, fail_mode="closed")
    tenant = TenantConfig(name=tenant_name, limits=Limits(concurrent_requests=1))
    loop = asyncio.get_running_loop()
    try:
        holder = await limiter.admit(tenant, 10)
        for _ in range(20):
            limiter.settle_soon(holder, 5, 5, 0.0)  # the response went out; its slot follows at once
            start = loop.time()
            while True:  # the next request polls for the slot, bounded
                try:
                    holder = await limiter.admit(tenant, 10)
                    break
                except ConcurrencyLimitExceeded:
                    assert loop.time() - start < 0.25, "the slot was not freed within a round trip"
                    await asyncio.sleep(0.001)
        assert not limiter.settlements.queued
    finally:
        await store.aclose()


async def test_an_outage_fails_settlements_like_settle_and_hands_back_their_ledger_event(
    redis_server_fn: RedisServer, tenant_name: str
):
    store = RedisStore.from_url(redis_server_fn.url, op_timeout=0.3)
    limiter = Limiter(store, fail_mode="open", trip_after=2, retry_interval=30.0)
    tenant = TenantConfig(name=tenant_name, limits=LIMITS)
    stream = f"aigw:ledger:{tenant_name}"
    appended: list[bool] = []
    try:
        admissions = [await limiter.admit(tenant, 100) for _ in range(4)]
        limiter.settle_soon(admissions[0], 50, 0, 0.0, StreamAppend(stream, 1000, ["v", "1", "e", "[]"]),
                            appended.append)  # fmt: skip
        await wait_for(lambda: appended == [True], 2, "the append rode in the settle script")
        redis_server_fn.kill()
        for admission in admissions[1:3]:  # two failed round trips: the breaker trips, as for settle
            limiter.settle_soon(admission, 50, 0, 0.0, StreamAppend(stream, 1000, ["v", "1"]), appended.append)
            await limiter.flush()
        assert appended == [True, False, False]  # handed back: the caller queues the ledger event
        assert limiter.settle_failed_total == 2 and not limiter.store_healthy
        limiter.settle_soon(admissions[3], 50, 0, 0.0, None, appended.append)
        await asyncio.wait_for(limiter.flush(), 0.1)  # tripped: not asked, failed at once
        assert appended[-1] is False and limiter.settle_failed_total == 3
        redis_server_fn.start()
        limiter.retry_interval = 0.0
        limiter._skip_until = 0.0  # the retry interval has passed
        later = await limiter.admit(tenant, 100)
        assert not later.degraded  # recovered without a restart
        limiter.settle_soon(later, 50, 0, 0.0, StreamAppend(stream, 1000, ["v", "1"]), appended.append)
        await limiter.flush()
        assert appended[-1] is True and limiter.store_healthy
    finally:
        await store.aclose()


async def test_a_cancelled_batch_hands_back_its_settlements(tenant_name: str):
    gate = asyncio.Event()
    counting = Counting(MemoryStore())
    counting.gate = gate
    limiter = Limiter(counting, fail_mode="closed")
    tenant = TenantConfig(name=tenant_name, limits=LIMITS)
    done: list[bool] = []
    limiter.settle_soon(await limiter.admit(tenant, 10), 5, 5, 0.0, done=done.append)
    await asyncio.sleep(0.01)
    drain = limiter.settlements._drain
    assert drain is not None
    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drain
    assert done == [False] and limiter.settle_failed_total == 1  # its ledger event is not lost
    assert limiter.settlements._drain is None


@pytest.mark.parametrize("kind", ["tokens", "requests"])
async def test_batched_settlements_keep_limits_exact_across_two_processes(
    redis_server: RedisServer, tenant_name: str, kind: str
):
    """test_concurrency's load (20 clients, 2 processes), settling the gateway's way: the same checks."""
    limits = {"tpm": TPM} if kind == "tokens" else {"rpm": RPM}
    spec = {**spec_for(tenant_name, **limits), "url": redis_server.url, "clients": 10, "batched": True}
    events = spawn_drivers(spec, processes=2)
    check_tokens(events, TPM) if kind == "tokens" else check_requests(events, RPM)
    store = RedisStore.from_url(redis_server.url)
    try:
        lim = Limits(tokens_per_minute=limits.get("tpm"), requests_per_minute=limits.get("rpm"))
        assert await store_counters(store, tenant_name, lim) == ledger(events)
    finally:
        await store.aclose()


@pytest.mark.parametrize("lean", [True, False], ids=["lean-client", "redis-py"])
async def test_a_batch_after_script_flush_is_sent_again_as_eval(redis_server: RedisServer, tenant_name: str,
                                                                lean: bool):
    from aigw_gateway.limits import limits_client

    store = RedisStore(limits_client(redis_server.url, lean=lean))
    limiter = Limiter(store, fail_mode="closed")
    tenant = TenantConfig(name=tenant_name, limits=LIMITS)
    stream = f"aigw:ledger:{tenant_name}"
    try:
        admissions = [await limiter.admit(tenant, 100) for _ in range(3)]
        redis_server.command("SCRIPT", "FLUSH")  # a restarted or flushed Redis: NOSCRIPT, nothing ran
        done: list[bool] = []
        for admission in admissions:
            limiter.settle_soon(admission, 10, 0, 0.0, StreamAppend(stream, 1000, ["v", "1"]), done.append)
        await limiter.flush()
        assert done == [True] * 3 and limiter.settle_failed_total == 0
        assert (await limiter.usage(tenant))["tokens"]["used"] == 30
        assert redis_server.command("XLEN", stream) == 3
    finally:
        await store.aclose()

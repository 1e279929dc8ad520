"""Redis trouble: killed mid-load, hung, restarted. Fail-open serves and counts, fail-closed
refuses with 503, settlements never raise, and both recover without rebuilding the limiter."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import pytest

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget, Limits
from aigw_gateway.errors import LimitsUnavailable, RateLimitExceeded
from aigw_gateway.limits import Limiter, RedisStore
from tests.fakes.redis_server import RedisServer

BIG = Limits(requests_per_minute=1_000_000, tokens_per_minute=1_000_000_000)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


class CountingStore(RedisStore):
    """The real Redis store, counting how often the limiter actually asks it."""

    admits = 0

    async def admit(self, req):
        self.admits += 1
        return await super().admit(req)


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
async def test_redis_killed_mid_load_then_back(
    redis_server_fn: RedisServer, fail_mode: str, tenant_name: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="aigw.limits")
    store = RedisStore.from_url(redis_server_fn.url, op_timeout=0.3)
    limiter = Limiter(store, fail_mode=fail_mode, retry_interval=0.1)
    tenant = TenantConfig(name=tenant_name, limits=BIG, budget=Budget(amount=1000))
    stats: Counter[tuple[str, str]] = Counter()
    phase = ["up"]
    stop = asyncio.Event()
    failures: list[BaseException] = []

    async def client() -> None:
        while not stop.is_set():
            try:
                admission = await limiter.admit(tenant, 100)
            except LimitsUnavailable as exc:
                assert exc.status_code == 503 and exc.code == "limits_unavailable"
                stats[phase[0], "unavailable"] += 1
                await asyncio.sleep(0.005)
                continue
            except BaseException as exc:  # anything else fails the test
                failures.append(exc)
                raise
            stats[phase[0], "degraded" if admission.degraded else "ok"] += 1
            await asyncio.sleep(0.002)
            await limiter.settle(admission, 60, 40, 0.0001)  # must never raise

    tasks = [asyncio.create_task(client()) for _ in range(8)]
    try:
        await wait_for(lambda: stats["up", "ok"] >= 50, 10, "admissions while Redis is up")
        phase[0] = "down"
        redis_server_fn.kill()
        refused_or_degraded = "degraded" if fail_mode == "open" else "unavailable"
        await wait_for(lambda: stats["down", refused_or_degraded] >= 50, 10, f"{refused_or_degraded} while down")
        redis_server_fn.start()  # same port, empty: the scripts must be loaded again too
        phase[0] = "back"
        await wait_for(lambda: stats["back", "ok"] >= 50, 10, "recovery after Redis is back")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert not failures

    if fail_mode == "open":
        assert stats["down", "unavailable"] == stats["back", "unavailable"] == 0
        degraded = sum(n for (_, kind), n in stats.items() if kind == "degraded")
        assert limiter.fail_open_total == degraded >= 50
        assert limiter.fail_closed_total == 0
        assert limiter.settle_failed_total > 0  # settlements while down are lost, not raised
    else:
        assert sum(n for (_, kind), n in stats.items() if kind == "degraded") == 0
        unavailable = sum(n for (_, kind), n in stats.items() if kind == "unavailable")
        assert limiter.fail_closed_total == unavailable >= 50
        assert limiter.fail_open_total == 0

    # Limits are enforced again by the same limiter.
    strict = TenantConfig(name=tenant_name + "-strict", limits=Limits(requests_per_minute=1))
    assert not (await limiter.admit(strict, 1)).degraded
    with pytest.raises(RateLimitExceeded):
        await limiter.admit(strict, 1)

    # Logged at most once per interval (30 s), however many requests failed.
    outage = [r for r in caplog.records if r.levelno == logging.WARNING and "limits store unavailable" in r.message]
    assert len(outage) == 1, [r.message for r in outage]
    expected = "serving without limits" if fail_mode == "open" else "refusing requests"
    assert expected in outage[0].message
    assert len([r for r in caplog.records if "settlement lost" in r.message]) <= 1
    assert [r for r in caplog.records if "reachable again" in r.message]
    await store.aclose()


async def test_a_hung_redis_delays_few_requests_and_recovers(redis_server_fn: RedisServer, tenant_name: str):
    store = CountingStore.from_url(redis_server_fn.url, op_timeout=0.3)
    limiter = Limiter(store, fail_mode="open", trip_after=2, retry_interval=1.0)
    tenant = TenantConfig(name=tenant_name, limits=BIG)
    await limiter.admit(tenant, 10)
    redis_server_fn.pause()  # SIGSTOP: connections stay open, nothing answers
    try:
        async with asyncio.timeout(5):  # bounded: each store call gives up after op_timeout
            admissions = [await limiter.admit(tenant, 10) for _ in range(20)]
        assert all(a.degraded for a in admissions)
        # After two timeouts in a row the store is left alone for retry_interval: the other
        # 18 requests did not wait for a hung Redis at all.
        assert store.admits == 1 + 2
        assert limiter.fail_open_total == 20
    finally:
        redis_server_fn.resume()
    async with asyncio.timeout(5):  # the store is asked again after retry_interval
        while (await limiter.admit(tenant, 10)).degraded:
            await asyncio.sleep(0.02)
    assert limiter.store_healthy
    await store.aclose()


async def test_fail_closed_on_a_hung_redis_is_bounded(redis_server_fn: RedisServer, tenant_name: str):
    store = RedisStore.from_url(redis_server_fn.url, op_timeout=0.2)
    limiter = Limiter(store, fail_mode="closed")
    tenant = TenantConfig(name=tenant_name, limits=BIG)
    redis_server_fn.pause()
    try:
        async with asyncio.timeout(5):
            with pytest.raises(LimitsUnavailable) as refused:
                await limiter.admit(tenant, 10)
        assert refused.value.headers["retry-after"] == "1"
        with pytest.raises(LimitsUnavailable):
            await limiter.usage(tenant)  # nothing true to report
    finally:
        redis_server_fn.resume()
    await store.aclose()


async def test_a_degraded_admission_still_counts_its_usage_once_redis_is_back(
    redis_server_fn: RedisServer, tenant_name: str
):
    store = RedisStore.from_url(redis_server_fn.url, op_timeout=0.3)
    limiter = Limiter(store, fail_mode="open", retry_interval=0.0)
    tenant = TenantConfig(name=tenant_name, limits=Limits(tokens_per_minute=10_000), budget=Budget(amount=1))
    redis_server_fn.kill()
    admission = await limiter.admit(tenant, 500)
    assert admission.degraded and admission.tokens == 0
    assert limiter.headers(admission) == {}
    redis_server_fn.start()
    async with asyncio.timeout(5):
        await limiter.settle(admission, 300, 200, 0.25)
    assert limiter.settle_failed_total == 0
    usage = await limiter.usage(tenant)
    assert usage["tokens"]["used"] == 500  # nothing was reserved, so the whole usage is added
    assert usage["requests"]["used"] == 0
    assert usage["budget"]["spend_usd"] == 0.25
    await store.aclose()

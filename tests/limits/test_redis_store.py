"""What the Redis store does on the wire: round trips, scripts, keys and their expiry."""

from __future__ import annotations

import time

import pytest

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget, Limits
from aigw_gateway.errors import LimitsUnavailable
from aigw_gateway.limits import Limiter, RedisStore
from aigw_gateway.limits.store import StreamAppend
from tests.fakes.redis_server import RedisServer

from .monitor import Monitor


@pytest.fixture
def monitor(redis_server: RedisServer):
    mon = Monitor(redis_server)
    try:
        yield mon
    finally:
        mon.close()


@pytest.fixture
async def redis_store(redis_server: RedisServer):
    store = RedisStore.from_url(redis_server.url)
    try:
        yield store
    finally:
        await store.aclose()


def limited(name: str) -> TenantConfig:
    return TenantConfig(
        name=name, limits=Limits(requests_per_minute=100, tokens_per_minute=10_000), budget=Budget(amount=5)
    )


async def test_one_round_trip_per_admission_and_per_settlement(
    redis_store: RedisStore, monitor: Monitor, tenant_name: str
):
    limiter = Limiter(redis_store, fail_mode="closed")
    t = limited(tenant_name)
    await limiter.settle(await limiter.admit(t, 10), 5, 5, 0.001)  # connect and load the scripts first

    start = monitor.mark()
    admission = await limiter.admit(t, 100)
    middle = monitor.mark()
    await limiter.settle(admission, 40, 30, 0.002)
    end = monitor.mark()

    admit_cmds = monitor.client_commands_between(start, middle)
    settle_cmds = monitor.client_commands_between(middle, end)
    assert len(admit_cmds) == 1 and '"evalsha"' in admit_cmds[0].lower(), admit_cmds
    assert len(settle_cmds) == 1 and '"evalsha"' in settle_cmds[0].lower(), settle_cmds
    assert f'"aigw:{{{tenant_name}}}:w:' in admit_cmds[0]


async def test_a_usage_event_rides_in_the_settlements_one_round_trip(
    redis_store: RedisStore, redis_server: RedisServer, monitor: Monitor, tenant_name: str
):
    limiter = Limiter(redis_store, fail_mode="closed")
    t = limited(tenant_name)
    await limiter.settle(await limiter.admit(t, 10), 5, 5, 0.001)
    stream = f"aigw:ledger:test:{tenant_name}"
    admission = await limiter.admit(t, 100)
    start = monitor.mark()
    appended = await limiter.settle(admission, 40, 30, 0.002, StreamAppend(stream, 1000, ["request_id", "req_1"]))
    end = monitor.mark()
    assert appended
    settle_cmds = monitor.client_commands_between(start, end)
    assert len(settle_cmds) == 1 and '"evalsha"' in settle_cmds[0].lower(), settle_cmds
    entries = redis_server.command("XRANGE", stream, "-", "+")
    assert len(entries) == 1 and entries[0][1] == [b"request_id", b"req_1"]
    # Nothing to settle (a tenant without limits): nothing appended, the caller queues the event.
    unlimited = await limiter.admit(TenantConfig(name=tenant_name + "-free"), 10)
    assert not await limiter.settle(unlimited, 1, 1, 0.0, StreamAppend(stream, 1000, ["request_id", "req_2"]))
    assert redis_server.command("XLEN", stream) == 1


async def test_tenants_without_limits_cost_no_round_trip(redis_store: RedisStore, monitor: Monitor):
    limiter = Limiter(redis_store, fail_mode="closed")
    free = TenantConfig(name="no-limits")
    start = monitor.mark()
    for _ in range(20):
        admission = await limiter.admit(free, 1000)
        await limiter.settle(admission, 500, 500, 0.5)
        await limiter.usage(free)
    end = monitor.mark()
    assert monitor.client_commands_between(start, end) == []


async def test_scripts_are_reloaded_after_a_flush(
    redis_store: RedisStore, redis_server: RedisServer, monitor: Monitor, tenant_name: str
):
    limiter = Limiter(redis_store, fail_mode="closed")
    t = limited(tenant_name)
    await limiter.admit(t, 10)
    redis_server.command("SCRIPT", "FLUSH")

    start = monitor.mark()
    admission = await limiter.admit(t, 10)
    end = monitor.mark()
    commands = [c.split('"')[1].lower() for c in monitor.client_commands_between(start, end)]
    assert commands == ["evalsha", "eval"]  # NOSCRIPT, then EVAL (which caches the script again)
    assert admission.requests_used == 2

    start = monitor.mark()
    await limiter.admit(t, 10)
    end = monitor.mark()
    assert [c.split('"')[1].lower() for c in monitor.client_commands_between(start, end)] == ["evalsha"]


async def test_keys_are_prefixed_per_tenant_and_expire(
    redis_store: RedisStore, redis_server: RedisServer, tenant_name: str
):
    limiter = Limiter(redis_store, fail_mode="closed")
    admission = await limiter.admit(limited(tenant_name), 10)
    await limiter.settle(admission, 5, 5, 0.001)
    keys = sorted(k.decode() for k in redis_server.command("KEYS", f"aigw:{{{tenant_name}}}:*"))
    assert keys == [admission.spend_key, admission.window_key]
    assert admission.window_key == f"aigw:{{{tenant_name}}}:w:{admission.window_start}"
    assert admission.spend_key == f"aigw:{{{tenant_name}}}:spend:{time.strftime('%Y-%m', time.gmtime())}"

    window_ttl = redis_server.command("TTL", admission.window_key)
    assert 120 < window_ttl <= 180  # the rest of the minute, plus the grace for late settlements
    spend_ttl = redis_server.command("TTL", admission.spend_key)
    assert 7 * 86400 < spend_ttl <= 38 * 86400  # the rest of the month, plus a week


async def test_a_late_settlement_does_not_resurrect_an_expired_window(
    redis_store: RedisStore, redis_server: RedisServer, tenant_name: str
):
    limiter = Limiter(redis_store, fail_mode="closed")
    admission = await limiter.admit(limited(tenant_name), 1000)
    redis_server.command("DEL", admission.window_key)  # what its TTL does after a very long stream
    await limiter.settle(admission, 10, 10, 0.001)
    assert redis_server.command("EXISTS", admission.window_key) == 0
    assert redis_server.command("GET", admission.spend_key) == b"1000000"  # the cost still counts


async def test_the_store_follows_a_replaceable_client(redis_server: RedisServer, tenant_name: str):
    """`RedisStore(callable)` asks for the current client on every call (RedisLink swaps clients
    when the configured URL changes); no client at all is an unavailable store."""
    from aigw_gateway.limits import limits_client

    current = {"client": None}
    limiter = Limiter(RedisStore(lambda: current["client"]), fail_mode="closed")
    with pytest.raises(LimitsUnavailable):
        await limiter.admit(limited(tenant_name), 10)
    current["client"] = limits_client(redis_server.url)
    try:
        assert (await limiter.admit(limited(tenant_name), 10)).requests_used == 1
    finally:
        await current["client"].aclose()


async def test_an_admission_is_on_its_way_before_it_is_awaited(redis_store: RedisStore, redis_server: RedisServer,
                                                               tenant_name: str):
    """Limiter.start_admit sends the admit script at once (the passthrough runs the input
    guardrails while Redis answers); the admission is the same as an awaited `admit`'s."""
    limiter = Limiter(redis_store, fail_mode="closed")
    tenant = limited(tenant_name)
    await limiter.admit(tenant, 100)  # connected; the script is loaded

    def requests_counted() -> bytes | None:  # over a connection of its own
        windows = redis_server.command("KEYS", f"*{tenant_name}*w:*")
        return redis_server.command("HGET", windows[0], "r") if windows else None

    pending = limiter.start_admit(tenant, 100)
    deadline = time.monotonic() + 2
    while requests_counted() != b"2" and time.monotonic() < deadline:
        time.sleep(0.002)  # the event loop is blocked: only a write start_admit made itself counts
    assert requests_counted() == b"2", "the admit script waited until it was awaited"
    admission = await pending
    assert (admission.requests_used, admission.tokens_used) == (2, 200)

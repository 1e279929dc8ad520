"""The limiter's lean Redis client against a real server: replies, errors, one shared connection,
a restarted, killed or hung server, and the connection setup (password, database)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget, Limits
from aigw_gateway.limits import Limiter, RedisStore, limits_client
from aigw_gateway.limits.lean_redis import LeanRedis
from aigw_gateway.limits.redis_store import SETTLE_SHA
from tests.fakes.redis_server import RedisServer


async def test_commands_scripts_and_errors(redis_server: RedisServer, tenant_name: str):
    client = LeanRedis.from_url(redis_server.url)
    try:
        assert await client.execute("SET", f"{tenant_name}:a", 41) == b"OK"
        assert await client.eval("return redis.call('INCR', KEYS[1])", 1, f"{tenant_name}:a") == 42
        assert await client.eval("return {1, 'x', ARGV[1]}", 0, 2.5) == [1, b"x", b"2.5"]
        with pytest.raises(NoScriptError):  # redis-py's classes: RedisStore maps them as before
            await client.evalsha("0" * 40, 0)
        with pytest.raises(ResponseError, match="wrong number of arguments"):
            await client.execute("GET")
        # An error reply fails only its own command, in a batch too.
        replies = await client.execute_many([("INCR", f"{tenant_name}:a"), ("HGET", f"{tenant_name}:a", "f"),
                                             ("INCR", f"{tenant_name}:a")])  # fmt: skip
        assert replies[0] == 43 and isinstance(replies[1], ResponseError) and replies[2] == 44
    finally:
        await client.aclose()


async def test_concurrent_callers_share_one_connection_in_order(redis_server: RedisServer, tenant_name: str):
    client = LeanRedis.from_url(redis_server.url)
    try:
        key = f"{tenant_name}:n"
        replies = await asyncio.gather(*(client.execute("RPUSH", key, i) for i in range(500)))
        assert sorted(replies) == list(range(1, 501))  # every caller got its own reply
        assert await client.execute("LRANGE", key, 0, -1) == [str(i).encode() for i in range(500)]
        names = (await client.execute("CLIENT", "LIST")).decode()
        assert sum(1 for line in names.splitlines() if "cmd=client" in line) == 1
    finally:
        await client.aclose()


async def test_a_restarted_server_is_reached_again_without_an_error(redis_server_fn: RedisServer):
    client = LeanRedis.from_url(redis_server_fn.url)
    try:
        assert await client.execute("PING") == b"PONG"
        redis_server_fn.restart()  # the idle connection died with the old server
        assert await client.execute("PING") == b"PONG"  # retried once on a new connection
        redis_server_fn.kill()
        with pytest.raises(RedisConnectionError):
            async with asyncio.timeout(2):
                await client.execute("PING")
        redis_server_fn.start()
        assert await client.execute("PING") == b"PONG"  # no restart of the client needed
    finally:
        await client.aclose()


async def test_a_hung_server_times_out_and_its_connection_is_replaced(redis_server_fn: RedisServer):
    client = LeanRedis.from_url(redis_server_fn.url, timeout=0.2)
    try:
        assert await client.execute("PING") == b"PONG"
        redis_server_fn.pause()  # SIGSTOP: the socket stays open, nothing answers
        loop = asyncio.get_running_loop()
        try:
            for _ in range(2):  # every waiting call fails, within 1.25 x the timeout, without a timer of its own
                start = loop.time()
                calls = [asyncio.ensure_future(client.execute("PING")) for _ in range(5)]
                for call in calls:
                    with pytest.raises(RedisTimeoutError):
                        await asyncio.wait_for(call, 2)
                assert 0.2 <= loop.time() - start < 0.2 * 1.25 + 0.1
        finally:
            redis_server_fn.resume()
        async with asyncio.timeout(2):  # late replies of the timed-out calls never reach anyone else
            assert await client.execute("ECHO", "after") == b"after"
    finally:
        await client.aclose()


async def test_password_and_database_from_the_url(redis_server_fn: RedisServer, tenant_name: str):
    redis_server_fn.command("CONFIG", "SET", "requirepass", "s3cr:et")
    port = redis_server_fn.port
    client = LeanRedis.from_url(f"redis://:s3cr%3Aet@127.0.0.1:{port}/3")
    wrong = LeanRedis.from_url(f"redis://:nope@127.0.0.1:{port}/0")
    try:
        await client.execute("SET", tenant_name, "in-db-3")
        assert await client.execute("GET", tenant_name) == b"in-db-3"
        assert await client.execute("SELECT", 0) == b"OK"
        assert await client.execute("GET", tenant_name) is None
        with pytest.raises(RedisConnectionError, match="refused the connection setup"):
            await wrong.execute("PING")
    finally:
        await client.aclose()
        await wrong.aclose()


def test_the_limits_client_is_lean_for_plain_urls_only():
    assert isinstance(limits_client("redis://127.0.0.1:6379/0"), LeanRedis)
    assert isinstance(limits_client("rediss://user:pw@redis.example:6380"), LeanRedis)
    assert not isinstance(limits_client("unix:///tmp/redis.sock"), LeanRedis)
    assert not isinstance(limits_client("redis://127.0.0.1:6379/0?protocol=3"), LeanRedis)
    assert SETTLE_SHA  # imported: the store's scripts load with the lean client present


# uvloop runs the timers that are due before it reads its sockets. On a loop busy for longer than
# the timeout (a gateway at 100 % of its core), a timer must not fail a call whose reply is already
# in the socket: a settlement failed that way is usage and spend not recorded although its script
# ran (seen in the soak when the gateway was overloaded). Redis is made to answer during the busy
# spell by a BLPOP that blocks the shared connection for 50 ms.

def _on_uvloop(main) -> None:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_a_reply_that_came_while_the_loop_was_busy_is_not_a_timeout(redis_server: RedisServer, tenant_name: str):
    """The lean client's watchdog (uvloop reads the socket right after a busy callback, before the
    next timers, so this holds without the watchdog's unread-bytes check too; that check covers a
    reply landing between a poll and the timers)."""

    async def main() -> None:
        client = LeanRedis.from_url(redis_server.url, timeout=0.2)
        try:
            assert await client.execute("PING") == b"PONG"
            call = asyncio.ensure_future(client.execute("BLPOP", f"{tenant_name}:empty", "0.05"))
            await asyncio.sleep(0.01)  # sent; Redis answers (nil) 40 ms later
            time.sleep(0.5)  # busy: the reply arrives meanwhile, the watchdog falls due (2.5 x the timeout)
            assert await asyncio.wait_for(call, 2) is None
        finally:
            await client.aclose()

    _on_uvloop(main)


def test_settlements_answered_while_the_loop_was_busy_are_recorded(redis_server: RedisServer, tenant_name: str):
    async def main() -> None:
        client = LeanRedis.from_url(redis_server.url, timeout=0.2)
        try:
            limiter = Limiter(RedisStore(client, op_timeout=0.2), fail_mode="closed")
            tenant = TenantConfig(name=tenant_name, limits=Limits(requests_per_minute=100, tokens_per_minute=100_000),
                                  budget=Budget(amount=100))
            admissions = [await limiter.admit(tenant, 500) for _ in range(5)]
            blocker = asyncio.ensure_future(client.execute("BLPOP", f"{tenant_name}:empty", "0.05"))
            for admission in admissions:
                assert limiter.settle_soon(admission, 100, 50, 0.001)
            await asyncio.sleep(0.01)  # the batch left behind the BLPOP on the one connection
            time.sleep(0.5)  # busy past the store's timeout while Redis runs the scripts
            await asyncio.wait_for(limiter.flush(), 2)
            assert limiter.settle_failed_total == 0
            assert await asyncio.wait_for(blocker, 2) is None
            spend = await client.execute("GET", admissions[0].spend_key)
            assert int(spend) == 5 * 1_000_000  # 5 x $0.001 in nano-USD: every settlement recorded
        finally:
            await client.aclose()

    _on_uvloop(main)


# --- a command leaves when it is made, not at the next loop turn ------------------------------------

def _poll_blocking(check, seconds: float = 2.0) -> bool:
    """Poll `check` with the event loop blocked (no callback of the loop can run meanwhile)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.002)
    return False


async def test_a_command_is_written_when_made_and_the_turn_s_others_together(redis_server: RedisServer,
                                                                                 tenant_name: str):
    """On an idle connection, a request's admit goes to Redis before its caller awaits
    (Limiter.start_admit overlaps the round trip with the request's own work); commands made while
    replies are awaited wait for the turn's end and leave in one write, still in order."""
    key = f"{tenant_name}:n"
    client = LeanRedis.from_url(redis_server.url)
    try:
        sha = await client.execute("SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])")
        first = client.evalsha_started(sha.decode(), 1, key)
        # The loop is blocked: only a write made by evalsha_started itself can reach Redis.
        assert _poll_blocking(lambda: redis_server.command("GET", key) == b"1"), "the command waited for a loop turn"
        later = [client.evalsha_started(sha.decode(), 1, key) for _ in range(3)]
        assert not _poll_blocking(lambda: redis_server.command("GET", key) != b"1", 0.05)  # gathered for the turn's end
        assert await first == 1
        assert await asyncio.gather(*later) == [2, 3, 4]
    finally:
        await client.aclose()

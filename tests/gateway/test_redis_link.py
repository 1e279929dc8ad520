"""RedisLink's readiness ping (ok / unreachable / disabled, back to ok without a restart) with
the lean client and with redis-py, and the lazily made redis-py clients."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aigw_gateway.redis_link import LazyRedis, RedisLink
from tests.fakes.redis_server import RedisServer


async def _ping_until(link: RedisLink, wanted: str, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while (answer := await link.ping()) != wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return answer


async def _outage_and_recovery(link: RedisLink, server: RedisServer, url: str) -> None:
    assert await link.ping() == "disabled"
    await link.use(url)
    try:
        assert await link.ping() == "ok"
        server.stop()
        assert await link.ping() == "unreachable"
        server.start()
        assert await _ping_until(link, "ok") == "ok"  # the same link, no restart
    finally:
        await link.close()
    assert await link.ping() == "disabled"


async def test_ping_with_the_lean_client(redis_server_fn: RedisServer):
    link = RedisLink()
    await _outage_and_recovery(link, redis_server_fn, redis_server_fn.url)


async def test_ping_with_redis_py_for_a_unix_socket(tmp_path: Path):
    sock = tmp_path / "redis.sock"
    server = RedisServer(extra_args=["--unixsocket", str(sock)]).start()
    try:
        await _outage_and_recovery(RedisLink(), server, f"unix://{sock}")
    finally:
        server.stop()


async def test_the_redis_py_client_is_made_on_first_use_and_follows_the_url(redis_server_fn: RedisServer):
    link = RedisLink()
    assert link.client is None  # no URL
    await link.use(redis_server_fn.url)
    try:
        client = link.client
        assert client is link.client and await client.set("aigw-test:link", "1")
        await link.use(redis_server_fn.url_for_db(1))
        assert link.client is not client and await link.client.get("aigw-test:link") is None
    finally:
        await link.close()
    assert link.client is None


async def test_lazy_redis_is_made_on_first_use(redis_server_fn: RedisServer):
    await LazyRedis("redis://127.0.0.1:1/0").aclose()  # never made: nothing to close, nothing to reach
    lazy = LazyRedis(redis_server_fn.url, socket_timeout=1.0)
    try:
        assert await lazy.set("aigw-test:lazy", "v") and await lazy.get("aigw-test:lazy") == b"v"
    finally:
        await lazy.aclose()

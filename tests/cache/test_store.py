import asyncio

import pytest
import redis.asyncio as aioredis

from aigw_gateway.cache.store import CacheUnavailable, MemoryStore, RedisStore


async def test_memory_store_is_bounded_by_bytes_and_expires():
    store = MemoryStore(max_bytes=100)
    await store.put("a", b"x" * 60, 60)
    await store.put("b", b"y" * 60, 60)  # evicts a
    assert await store.get("a") is None
    assert await store.get("b") == b"y" * 60
    assert store.used == 60
    await store.put("c", b"z" * 10, 0)
    assert await store.get("c") is None  # expired at once
    await store.put("huge", b"h" * 1000, 60)
    assert await store.get("huge") is None and store.used <= 100
    await store.put("p:r1:t:a:1", b"1", 60)
    await store.put("p:r2:t:a:1", b"2", 60)
    assert await store.purge("p:r1:*") == 1
    assert await store.get("p:r2:t:a:1") == b"2"


async def test_redis_store_round_trip_and_purge(redis_server):
    client = aioredis.Redis.from_url(redis_server.url_for_db(3))
    store = RedisStore(client)
    await client.flushdb()
    await store.put("aigw:cache:ns/gw:r1:k:t:a:1", b"one", 60)
    await store.put("aigw:cache:ns/gw:r2:k:t:a:1", b"two", 60)
    assert await store.get("aigw:cache:ns/gw:r1:k:t:a:1") == b"one"
    assert 0 < await client.ttl("aigw:cache:ns/gw:r1:k:t:a:1") <= 60
    assert await store.purge("aigw:cache:ns/gw:r1:*") == 1
    assert await store.get("aigw:cache:ns/gw:r2:k:t:a:1") == b"two"
    await client.aclose()


async def test_redis_store_down_or_slow_is_unavailable_within_its_bound(redis_server_fn):
    client = aioredis.Redis.from_url(redis_server_fn.url, socket_connect_timeout=0.5)
    store = RedisStore(client, timeout=0.05)
    await store.put("k", b"v", 60)
    loop = asyncio.get_running_loop()
    redis_server_fn.pause()  # SIGSTOP: a Redis that accepts nothing in time
    try:
        started = loop.time()
        with pytest.raises(CacheUnavailable):
            await store.get("k")
        assert loop.time() - started < 1.0
    finally:
        redis_server_fn.resume()
    redis_server_fn.stop()
    started = loop.time()
    with pytest.raises(CacheUnavailable):
        await store.get("k")
    assert loop.time() - started < 1.0
    await client.aclose()

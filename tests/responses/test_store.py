"""The response store: per-tenant keys with a TTL in a real Redis; a bounded LRU without one;
a Redis outage is a 503 naming the store."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from aigw_gateway.responses.store import ResponseStore, StoreUnavailable, redis_key

RECORD = {"response": {"id": "resp_aigw_1"}, "items": [{"role": "user", "content": "hi"}]}


async def test_redis_keeps_records_per_tenant_with_ttl(redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    store = ResponseStore(ttl=120)
    try:
        await store.put(client, "team", "resp_aigw_1", RECORD)
        assert await store.get(client, "team", "resp_aigw_1") == RECORD
        assert await store.get(client, "other", "resp_aigw_1") is None
        assert 0 < await client.ttl(redis_key("team", "resp_aigw_1")) <= 120
        assert await store.delete(client, "other", "resp_aigw_1") is False
        assert await store.delete(client, "team", "resp_aigw_1") is True
        assert await store.get(client, "team", "resp_aigw_1") is None
    finally:
        await client.aclose()


async def test_memory_is_bounded_and_per_tenant():
    store = ResponseStore(max_entries=3)
    for i in range(5):
        await store.put(None, "team", f"r{i}", {"n": i})
    assert await store.get(None, "team", "r0") is None and await store.get(None, "team", "r4") == {"n": 4}
    assert await store.get(None, "other", "r4") is None


async def test_redis_outage_is_a_503():
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        with pytest.raises(StoreUnavailable) as err:
            await ResponseStore().get(client, "team", "resp_aigw_1")
        assert err.value.status_code == 503 and "response store" in err.value.message
    finally:
        await client.aclose()

"""Conversations of translated responses, so that `previous_response_id` works on every target.

A record holds the response object as the client got it and the conversation items up to and
including its output (Responses items, so a follow-up can go to any target, a native one too).
With Redis: `aigw:{<namespace>/<gateway>/<tenant>}:resp:<id>` with a TTL, so a tenant can only ever read its own
records; shared by every replica. Without Redis: a bounded LRU in this process (single-process
mode, like the limits). Redis errors become a 503 naming the store, never a redis-py exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import orjson

from ..errors import GatewayError
from ..redis_errors import RedisError

log = logging.getLogger("aigw.responses")

TTL_SECONDS = 3 * 24 * 3600
MEMORY_ENTRIES = 2000
OP_TIMEOUT = 1.0


class StoreUnavailable(GatewayError):
    status_code = 503
    type = "server_error"
    code = "response_store_unavailable"


def redis_key(tenant: str, response_id: str) -> str:
    return f"aigw:{{{tenant}}}:resp:{response_id}"


class ResponseStore:
    def __init__(self, max_entries: int = MEMORY_ENTRIES, ttl: int = TTL_SECONDS) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._memory: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    async def _redis(self, op):
        try:
            async with asyncio.timeout(OP_TIMEOUT):
                return await op
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            log.warning("response store: redis failed: %s", type(exc).__name__)
            raise StoreUnavailable("the response store (Redis) is unavailable; try again") from None

    async def put(self, redis, tenant: str, response_id: str, record: dict[str, Any]) -> None:
        data = orjson.dumps(record)
        if redis is not None:
            await self._redis(redis.set(redis_key(tenant, response_id), data, ex=self.ttl))
            return
        self._memory[(tenant, response_id)] = data
        self._memory.move_to_end((tenant, response_id))
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)

    async def get(self, redis, tenant: str, response_id: str) -> dict[str, Any] | None:
        if redis is not None:
            data = await self._redis(redis.get(redis_key(tenant, response_id)))
        else:
            data = self._memory.get((tenant, response_id))
        return orjson.loads(data) if data else None

    async def delete(self, redis, tenant: str, response_id: str) -> bool:
        if redis is not None:
            return bool(await self._redis(redis.delete(redis_key(tenant, response_id))))
        return self._memory.pop((tenant, response_id), None) is not None

"""Where entries live: the gateway's Redis, or process memory (bounded by bytes) without one.

Every call is bounded in time; a failure or a timeout raises CacheUnavailable, which the caller
turns into a bypass for that request. The cache never fails a request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Protocol


class CacheUnavailable(Exception):
    """The store did not answer in time or at all; the request goes on without the cache."""


class EntryStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    async def purge(self, pattern: str) -> int:
        """Delete the entries whose key matches a glob pattern; how many went."""
        ...


class MemoryStore:
    """An LRU map bounded by total bytes, with per-entry expiry (single process only)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (time.monotonic() + ttl_seconds, value)
        self.used += len(value)
        while self.used > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def purge(self, pattern: str) -> int:
        import fnmatch

        doomed = [k for k in self._entries if fnmatch.fnmatchcase(k, pattern)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.used -= len(value)


class RedisStore:
    """Entries as plain Redis strings with an expiry; lookups bounded by `timeout` seconds."""

    def __init__(self, client, timeout: float = 0.02) -> None:
        self.client = client
        self.timeout = timeout

    async def get(self, key: str) -> bytes | None:
        try:
            get = self.client.get  # a LazyRedis makes its client here, outside the few ms of the bound
            async with asyncio.timeout(self.timeout):
                return await get(key)
        except Exception as exc:  # timeouts, connection errors, a read-only replica: all a bypass
            raise CacheUnavailable(type(exc).__name__) from exc

    async def put(self, key: str, value: bytes, ttl_seconds: int) -> None:
        try:
            async with asyncio.timeout(max(self.timeout, 0.25)):  # off the client's path: a little more time
                await self.client.set(key, value, ex=ttl_seconds)
        except Exception as exc:
            raise CacheUnavailable(type(exc).__name__) from exc

    async def purge(self, pattern: str) -> int:
        deleted = 0
        async for key in self.client.scan_iter(match=pattern, count=500):
            deleted += await self.client.unlink(key)
        return deleted

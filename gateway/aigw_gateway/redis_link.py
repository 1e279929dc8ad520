"""The gateway's Redis connection (asyncio client only; the hot path never blocks on Redis)."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

log = logging.getLogger("aigw.redis")


class RedisLink:
    """Holds one client for the configured URL; reconnects by itself when Redis comes back."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.client: aioredis.Redis | None = None

    async def use(self, url: str | None) -> None:
        if url == self.url:
            return
        old, self.client, self.url = self.client, None, url
        if old is not None:
            await old.aclose()
        if url:
            self.client = aioredis.Redis.from_url(
                url, socket_connect_timeout=1.0, socket_timeout=1.0, health_check_interval=10
            )

    async def ping(self, timeout: float = 1.0) -> str:
        if self.client is None:
            return "disabled"
        try:
            async with asyncio.timeout(timeout):
                await self.client.ping()
            return "ok"
        except Exception as exc:  # any failure means the same thing to a probe
            log.debug("redis ping failed: %s", type(exc).__name__)
            return "unreachable"

    async def close(self) -> None:
        await self.use(None)

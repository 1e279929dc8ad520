"""The gateway's Redis connection (asyncio client only; the hot path never blocks on Redis).

redis-py's client is made on the first read of `.client` (the responses store, the ledger): a
gateway that uses Redis for its limits only never imports redis-py (7 MB per worker). The
readiness probe pings with the lean client (limits/lean_redis.py) when it takes the URL, so
Kubernetes' probes every few seconds do not import it either; other URLs ping with redis-py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .redis_errors import redis_py

if TYPE_CHECKING:
    import redis.asyncio as aioredis

try:  # the lean client needs the hiredis parser (the gateway extra installs it)
    from .limits.lean_redis import LeanRedis
except ImportError:  # pragma: no cover - without hiredis, redis-py pings
    LeanRedis = None  # type: ignore[assignment,misc]

log = logging.getLogger("aigw.redis")


class RedisLink:
    """Holds one client for the configured URL; reconnects by itself when Redis comes back."""

    def __init__(self) -> None:
        self.url: str | None = None
        self._client: aioredis.Redis | None = None
        self._probe: Any = None  # a LeanRedis for the readiness ping, made on the first ping

    @property
    def client(self) -> aioredis.Redis | None:
        """redis-py's client for the URL (None without one), made on first use."""
        if self._client is None and self.url:
            self._client = redis_py().Redis.from_url(
                self.url, socket_connect_timeout=1.0, socket_timeout=1.0, health_check_interval=10
            )
        return self._client

    async def use(self, url: str | None) -> None:
        if url == self.url:
            return
        old, probe = self._client, self._probe
        self._client, self._probe, self.url = None, None, url
        for client in (old, probe):
            if client is not None:
                await client.aclose()

    async def ping(self, timeout: float = 1.0) -> str:
        if not self.url:
            return "disabled"
        try:
            async with asyncio.timeout(timeout):
                if LeanRedis is not None and LeanRedis.supports(self.url):
                    if self._probe is None:
                        self._probe = LeanRedis.from_url(self.url, timeout=timeout)
                    await self._probe.execute("PING")
                else:
                    await self.client.ping()  # type: ignore[union-attr]
            return "ok"
        except Exception as exc:  # any failure means the same thing to a probe
            log.debug("redis ping failed: %s", type(exc).__name__)
            return "unreachable"

    async def close(self) -> None:
        await self.use(None)


class LazyRedis:
    """A redis-py client made on first use: stands in for `redis.asyncio.Redis.from_url(url,
    **options)` wherever only method calls reach it (the response cache, used by a route with
    `cache` only). `aclose()` of a client never made is a no-op."""

    def __init__(self, url: str, **options: Any) -> None:
        self._url, self._options = url, options
        self._client: aioredis.Redis | None = None

    def make(self) -> aioredis.Redis:
        """The client, made now if it was not (imports redis-py: best done outside a request)."""
        if self._client is None:
            self._client = redis_py().Redis.from_url(self._url, **self._options)
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.make(), name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

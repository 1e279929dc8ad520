"""Process-wide state shared by the routers: one object on `app.state.gateway`."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from .cache.serve import embedder as cached_embedder
from .cache.service import ResponseCache
from .cache.store import MemoryStore as CacheMemoryStore
from .cache.store import RedisStore as CacheRedisStore
from .errors import NotReady
from .guardrails.registry import PolicyRegistry
from .limits import Limiter, MemoryStore, RedisStore
from .redis_link import RedisLink
from .routing.executor import Executor
from .routing.health import HealthRegistry
from .runtime import Runtime, RuntimeHolder
from .settings import Settings
from .telemetry.recorder import Recorder
from .telemetry.stats import TrafficStats
from .upstream import UpstreamClient


@dataclass
class GatewayState:
    settings: Settings
    holder: RuntimeHolder = field(default_factory=RuntimeHolder)
    client: UpstreamClient | None = None
    redis: RedisLink = field(default_factory=RedisLink)
    health: HealthRegistry = field(default_factory=HealthRegistry)
    stats: TrafficStats = field(default_factory=TrafficStats)
    executor: Executor | None = None
    recorder: Recorder | None = None
    limiter: Limiter = field(default_factory=lambda: Limiter(MemoryStore()))
    guardrails: PolicyRegistry = field(default_factory=PolicyRegistry)
    limits_url: str | None = None
    response_cache: ResponseCache = field(default_factory=lambda: ResponseCache(CacheMemoryStore()))

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.stats, self.health)
        self.response_cache.embed = cached_embedder(self)

    async def use_redis(self, url: str | None) -> None:
        """Point the limiter at Redis (shared by every worker and replica) or at process memory."""
        if url == self.limits_url:
            return
        old = self.limiter.store
        self.limiter.store = RedisStore.from_url(url) if url else MemoryStore()
        self.limits_url = url
        if isinstance(old, RedisStore):
            await old.aclose()
        await self._use_cache_redis(url)

    async def _use_cache_redis(self, url: str | None) -> None:
        """The response cache lives where the limits do: the shared Redis, or this process."""
        old = self.response_cache
        embed = cached_embedder(self)
        if url:
            client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
            self.response_cache = ResponseCache(CacheRedisStore(client), search_client=client, embed=embed)
        else:
            self.response_cache = ResponseCache(CacheMemoryStore(), embed=embed)
        if old.search_client is not None:
            await old.search_client.aclose()

    def start(self, client: UpstreamClient, tracing: bool = False) -> None:
        self.client = client
        self.executor = Executor(client, self.health, self.recorder, tracing=tracing)

    def guardrail_counts(self) -> dict[str, dict[str, int]]:
        return self.guardrails.counts()

    def runtime(self) -> Runtime:
        runtime = self.holder.current
        if runtime is None:
            raise NotReady("the gateway has no valid config loaded yet")
        return runtime

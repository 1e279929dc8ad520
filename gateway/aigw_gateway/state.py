"""Process-wide state shared by the routers: one object on `app.state.gateway`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .cache.serve import embedder as cached_embedder
from .cache.service import ResponseCache
from .cache.store import MemoryStore as CacheMemoryStore
from .cache.store import RedisStore as CacheRedisStore
from .errors import NotReady
from .guardrails.registry import PolicyRegistry
from .ledger import LedgerEmitter
from .limits import Limiter, MemoryStore, RedisStore
from .redis_link import LazyRedis, RedisLink
from .routing.executor import Executor
from .routing.health import HealthRegistry
from .runtime import Runtime, RuntimeHolder
from .settings import Settings
from .telemetry.budget_gauges import BudgetGauges
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
    budget_gauges: BudgetGauges = field(default_factory=BudgetGauges)
    ledger: LedgerEmitter = field(default_factory=LedgerEmitter)
    ledger_reads: object | None = None  # a LedgerDB for /v1/usage/history, when a ledger URL is set
    response_cache: ResponseCache = field(default_factory=lambda: ResponseCache(CacheMemoryStore()))

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.stats, self.health)
        self.limiter.key_scope = self._key_scope
        if self.guardrails.hash_key == b"":  # the default registry: keyed by the loaded credentials
            self.guardrails = PolicyRegistry(self._pii_hash_key)
        self.ledger.enabled = bool(self.settings.ledger_url)
        self.ledger.maxlen = self.settings.ledger_stream_maxlen
        self.response_cache.embed = cached_embedder(self)

    def _pii_hash_key(self) -> bytes:
        runtime = self.holder.current
        return runtime.pii_hash_key if runtime is not None else b""

    def _key_scope(self) -> str:
        runtime = self.holder.current
        return runtime.key_scope if runtime is not None else ""

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
            client = LazyRedis(url, socket_connect_timeout=0.5, socket_timeout=0.5)  # made when a route caches
            self.response_cache = ResponseCache(CacheRedisStore(client), search_client=client, embed=embed)
            self.prepare_cache()
        else:
            self.response_cache = ResponseCache(CacheMemoryStore(), embed=embed)
        if old.search_client is not None:
            await old.search_client.aclose()

    def prepare_cache(self) -> None:
        """With a cached route loaded, make the cache's Redis client (importing redis-py) now, at
        configuration, not within a lookup's few milliseconds."""
        client, runtime = self.response_cache.search_client, self.holder.current
        if isinstance(client, LazyRedis) and runtime is not None and any(
                route.cache is not None and route.cache.mode != "off" for route in runtime.config.routes):
            client.make()

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

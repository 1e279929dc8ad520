"""The response cache as the pipeline sees it: decide, look up, store — and never fail a request.

A request is looked at once (`plan`): the route's and tenant's settings, the client's
Cache-Control, and the request's own content decide whether the cache is read, written, or
bypassed (with a reason, counted). Lookups are bounded in time; any store or search trouble is a
bypass for that request, logged once per kind of trouble, counted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from aigw_config.config import RouteConfig, TenantConfig

from . import entry as entries
from .key import bypass_reason, entry_key, key_prefix, normalize, route_keyspace, scope_id
from .semantic import SemanticIndex, split_conversation, tag
from .store import CacheUnavailable, EntryStore

log = logging.getLogger("aigw.cache")

REQUESTS = Counter("aigw_cache_requests_total", "Cache lookups by route and result (hit, miss, bypass).",
                   ["route", "result"])
BYPASSES = Counter("aigw_cache_bypass_total", "Requests that did not use the cache, by route and reason.",
                   ["route", "reason"])
SAVED = Counter("aigw_cache_saved_usd_total", "Provider cost avoided by cache hits, in USD.", ["route", "tenant"])

Embed = Callable[[str, str], Awaitable[list[float]]]  # (embedding route model, text) -> vector


@dataclass
class Plan:
    """The cache's decision for one request; `read`/`write` may be off by the client's wish."""

    route: RouteConfig
    tenant: str
    api: str
    prefix: str
    read: bool
    write: bool
    key: str = ""
    semantic: tuple[str, str, str, str] | None = None  # (text, scope tag, route tag, ctx tag)
    result: str = "bypass"  # what x-aigw-cache says: hit | miss | bypass
    similarity: float | None = None
    vector: list[float] | None = None  # the miss's embedding, stored with its answer
    recorder: Any = None  # rebuilds a streamed miss's answer when entries are not canonical (cache/serve.py)


def _cache_control(headers) -> tuple[bool, bool]:
    """(may read, may write) from the client's Cache-Control."""
    value = headers.get("cache-control")
    if not value:
        return True, True
    directives = {d.strip().lower() for d in value.split(",")}
    return "no-cache" not in directives, "no-store" not in directives


class ResponseCache:
    def __init__(self, store: EntryStore, search_client=None, embed: Embed | None = None) -> None:
        self.store = store
        self.search_client = search_client  # a Redis client for the semantic index, or None
        self.embed = embed
        self._indexes: dict[str, SemanticIndex] = {}
        self._trouble_logged: set[str] = set()

    def index_for(self, prefix: str) -> SemanticIndex | None:
        if self.search_client is None:
            return None
        index = self._indexes.get(prefix)
        if index is None:
            index = self._indexes[prefix] = SemanticIndex(self.search_client, prefix)
        return index

    def _bypass(self, route: RouteConfig, reason: str) -> None:
        BYPASSES.labels(route.name, reason).inc()

    def trouble(self, route: RouteConfig, reason: str, exc: Exception) -> None:
        """A store/search/embedding problem: this request bypasses; logged once per reason."""
        self._bypass(route, reason)
        if reason not in self._trouble_logged:
            self._trouble_logged.add(reason)
            log.warning("response cache bypassed (%s): %s; requests go on without the cache", reason, exc)

    def plan(self, namespace: str, gateway: str, route: RouteConfig, tenant: TenantConfig, api: str,
             body: dict[str, Any], headers, body_api: str | None = None) -> Plan | None:
        """None when caching is off for this route or tenant (no header, nothing counted). The
        gateway's identity is in every key: gateways sharing one Redis never share entries."""
        settings = route.cache
        if settings is None or settings.mode == "off" or not tenant.cache_enabled:
            return None
        read, write = _cache_control(headers)
        plan = Plan(route, tenant.name, api, key_prefix(namespace, gateway), read, write)
        reason = bypass_reason(body_api or api, body, settings.deterministic_only)
        if reason is None and not (read or write):
            reason = "client_no_cache"
        if reason is not None:
            plan.read = plan.write = False
            self._bypass(route, reason)
            REQUESTS.labels(route.name, "bypass").inc()
        return plan

    def prepare(self, plan: Plan, keyed: dict[str, Any], canonical: dict[str, Any] | None) -> None:
        """Compute the keys from the request as it leaves the input guardrails (masked)."""
        if not (plan.read or plan.write):
            return
        settings = plan.route.cache
        scope = scope_id(settings.scope, plan.tenant)
        plan.key = entry_key(plan.prefix, plan.route, scope, plan.api, normalize(plan.api, keyed))
        if settings.mode == "semantic" and settings.semantic is not None and canonical is not None:
            split = split_conversation(canonical)
            if split is not None:
                text, ctx = split
                # The client API (and entry kind) is in the context: a neighbour found is always
                # an entry of the same shape as the request's own (a stream's bytes, a response).
                plan.semantic = (text, tag(scope), tag(plan.route.name, route_keyspace(plan.route)), tag(plan.api, ctx))

    async def lookup(self, plan: Plan) -> tuple[dict[str, Any], float] | None:
        """The stored answer and what it cost live, or None (a miss or a bypass)."""
        if not plan.read:
            return None
        route = plan.route
        try:
            raw = await self.store.get(plan.key)
        except CacheUnavailable as exc:
            self.trouble(route, "store_unavailable", exc)
            plan.read = plan.write = False
            REQUESTS.labels(route.name, "bypass").inc()
            return None
        if raw is None and plan.semantic is not None:
            raw = await self._semantic_lookup(plan)
        found = entries.unpack(raw) if raw is not None else None
        plan.result = "hit" if found is not None else "miss"
        REQUESTS.labels(route.name, plan.result).inc()
        return found

    async def _semantic_lookup(self, plan: Plan) -> bytes | None:
        assert plan.semantic is not None and plan.route.cache is not None and plan.route.cache.semantic is not None
        index = self.index_for(plan.prefix)
        if index is None or self.embed is None:
            self._bypass(plan.route, "semantic_unavailable")
            return None
        text, scope, route_tag, ctx = plan.semantic
        try:
            vector = await self.embed(plan.route.cache.semantic.embedding_route, text)
        except Exception as exc:
            self.trouble(plan.route, "embedding_failed", exc)
            plan.semantic = None
            return None
        plan.vector = vector
        try:
            nearest = await index.nearest(vector, scope, route_tag, ctx)
            if nearest is None:
                return None
            key, similarity = nearest
            if similarity < plan.route.cache.semantic.threshold:
                return None
            raw = await self.store.get(key)
        except CacheUnavailable as exc:
            self.trouble(plan.route, "search_unavailable", exc)
            plan.semantic = None
            return None
        if raw is not None:
            plan.similarity = similarity
        return raw

    async def save(self, plan: Plan, response: dict[str, Any], cost_usd: float) -> None:
        """Store a live answer (called off the client's path, after the answer went out)."""
        settings = plan.route.cache
        if not plan.write or plan.result != "miss" or settings is None:
            return
        if not entries.storable(response, store_tool_calls=settings.store_tool_calls):
            return
        raw = entries.pack(response, cost_usd)
        if len(raw) > settings.max_entry_bytes:
            self._bypass(plan.route, "too_large")
            return
        try:
            await self.store.put(plan.key, raw, settings.ttl_seconds)
            index = self.index_for(plan.prefix)
            if plan.semantic is not None and plan.vector is not None and index is not None:
                _, scope, route_tag, ctx = plan.semantic
                await index.add(plan.vector, scope, route_tag, ctx, plan.key, settings.ttl_seconds)
        except CacheUnavailable as exc:
            self.trouble(plan.route, "store_failed", exc)

    def saved(self, plan: Plan, cost_usd: float) -> None:
        if cost_usd:
            SAVED.labels(plan.route.name, plan.tenant).inc(cost_usd)

    async def purge(self, namespace: str, gateway: str, route: str, tenant: str | None = None) -> int:
        scope = f"t:{tenant}" if tenant else "*"
        return await self.store.purge(f"{key_prefix(namespace, gateway)}:{route}:*:{scope}:*")

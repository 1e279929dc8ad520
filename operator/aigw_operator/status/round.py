"""The status round: read the pods' reports, write what they say into CR status, post Events.

Run by a kopf daemon per AIGateway (handlers/aigateway.py), so it stops when kopf pauses the
operator for a peer (HA) and when the AIGateway goes. One round covers a whole namespace and
is performed by the daemon of the first AIGateway by name: one writer per object.

Reports are read without holding anything; the objects are then listed and patched under the
reconciler's namespace lock, so the conditions list (Accepted from the renderer, Ready and
Degraded from here) is never written from two stale copies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aigw_config.config import CONFIG_KEY, CREDENTIALS_KEY, GatewayConfig, load_config, load_credentials
from aigw_config.kinds import AIGatewaySpec
from aigw_config.packing import configmap_entries, secret_entries, unpack
from aigw_config.registry import CONTENT_KINDS
from aigw_config.status import LEDGER_READY, REASON_CONFLICT, REASON_LAGGING, now_rfc3339

from .. import translate
from ..kube import Kube
from ..reconciler import Reconciler
from ..settings import OperatorConfig
from ..workloads import Names, owned_by, service_endpoint
from .ledger import LedgerPolicy
from .observe import GatewayView, Thresholds, observe_namespace
from .patch import event_object, status_update, transition_events
from .reports import ReportCollector, ready_endpoints

log = logging.getLogger("aigw.operator.status")


@dataclass
class RoundResult:
    gateways: int = 0
    pods: int = 0
    written: int = 0
    deferred: int = 0  # rate-only changes held back by the per-object write interval
    events: int = 0
    yielded: bool = False  # stopped early for a pending render; the next round writes the rest


@dataclass
class _Cached:
    version: str
    value: Any


@dataclass
class Aggregator:
    kube: Kube
    reconciler: Reconciler
    config: OperatorConfig
    collector: ReportCollector
    identity: str = ""
    clock: Any = time.monotonic
    _last_write: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _configs: dict[tuple[str, str], _Cached] = field(default_factory=dict)
    _tokens: dict[tuple[str, str], _Cached] = field(default_factory=dict)
    rounds: int = 0

    async def run(self, namespace: str, gateway: str, stopped: Any) -> None:
        """The daemon body: a round every interval while this gateway is its namespace's first."""
        while not stopped:
            try:
                names = sorted(g["metadata"]["name"] for g in await self.kube.list_kind("AIGateway", namespace))
                if names and names[0] == gateway:
                    await self.round(namespace)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API or a pod hiccupped: the next round tries again
                log.warning("status round of namespace %s failed: %s", namespace, exc)
            await stopped.wait(self.config.report_interval)

    async def round(self, namespace: str) -> RoundResult:
        self.rounds += 1
        result = RoundResult()
        gateways = await self.kube.list_kind("AIGateway", namespace)
        views = [await self._view(namespace, gw) for gw in gateways]
        views = [v for v in views if v is not None]
        result.gateways, result.pods = len(views), sum(len(v.pods) for v in views)
        async with self.reconciler.lock(namespace):
            objects = {"AIGateway": {g["metadata"]["name"]: g for g in await self.kube.list_kind("AIGateway", namespace)}}
            for kind in CONTENT_KINDS:
                objects[kind] = {o["metadata"]["name"]: o for o in await self.kube.list_kind(kind, namespace)}
            names = {kind: list(items) for kind, items in objects.items() if kind != "AIGateway"}
            observations = observe_namespace(views, names, Thresholds(error_percent=self.config.error_percent))
            now = self.clock()
            for (kind, name), obs in observations.items():
                if self.reconciler.render_pending(namespace):
                    result.yielded = True  # a CR change waits: it goes first, status is recomputed anyway
                    break
                obj = objects[kind].get(name)
                if obj is None:  # deleted since the config was rendered
                    continue
                meta = obj["metadata"]
                patch, significant = status_update(obj.get("status"), obs, meta.get("generation", 1))
                if patch is None:
                    continue
                key = (namespace, kind, name)
                if not significant and now - self._last_write.get(key, -1e9) < self.config.status_min_interval:
                    result.deferred += 1
                    continue
                events = transition_events(kind, obj.get("status"), obs)
                await self.kube.patch_status(kind, namespace, name, patch)
                self._last_write[key] = now
                result.written += 1
                for spec in events:
                    try:
                        await self.kube.create_event(event_object(obj, spec, now_rfc3339(), self.identity))
                        result.events += 1
                    except Exception as exc:  # an Event is a courtesy: never fail the round for one
                        log.info("event %s on %s %s not posted: %s", spec.reason, kind, name, exc)
        present = {(namespace, kind, name) for kind, items in objects.items() for name in items}
        for key in [k for k in self._last_write if k[0] == namespace and k not in present]:
            del self._last_write[key]
        live = {(namespace, g) for g in objects["AIGateway"]}
        for key in [k for k in self._configs if k[0] == namespace and k not in live]:
            self._configs.pop(key, None)
            self._tokens.pop(key, None)
            self.collector.forget(key)
        log.debug("status round %s: %s", namespace, result)
        return result

    async def _view(self, namespace: str, gw: dict[str, Any]) -> GatewayView | None:
        name = gw["metadata"]["name"]
        try:
            spec = AIGatewaySpec.model_validate(gw.get("spec") or {})
        except ValueError:
            return None  # the renderer reports why; there are no pods of an invalid gateway
        key = (namespace, name)
        # Only what this operator rendered for this AIGateway: a foreign `<gw>-credentials` must not
        # hand its token to whoever answers on the endpoints.
        configmap = _owned(await self.kube.get_configmap(namespace, translate.configmap_name(name)), gw)
        config = self._config(key, configmap)
        token = self._token(key, _owned(await self.kube.get_secret(namespace, translate.secret_name(name)), gw))
        endpoints = ready_endpoints(await self.kube.endpoint_slices(namespace, Names(name).service))
        samples = await self.collector.collect(key, endpoints, token)
        return GatewayView(
            name=name,
            replicas=spec.replicas,
            endpoint=service_endpoint(namespace, name, spec.service.port),
            config=config,
            shared_limits=spec.redis is not None,
            ready_pods=tuple(e.pod for e in endpoints),
            pods=tuple(samples),
            conflict=_conflict(gw),
            ledger=LedgerPolicy(spec.ledger.lag_threshold, _lagging(gw)) if spec.ledger is not None else None,
        )

    def _config(self, key: tuple[str, str], configmap: dict | None) -> GatewayConfig | None:
        if configmap is None:
            return None
        version = configmap["metadata"].get("resourceVersion", "")
        cached = self._configs.get(key)
        if cached is None or cached.version != version:
            try:
                doc = unpack(configmap_entries(configmap), CONFIG_KEY)
                cached = _Cached(version, load_config(doc) if doc is not None else None)
            except ValueError as exc:
                log.warning("ConfigMap %s/%s unreadable: %s", key[0], configmap["metadata"]["name"], exc)
                cached = _Cached(version, None)
            self._configs[key] = cached
        return cached.value

    def _token(self, key: tuple[str, str], secret: dict | None) -> str | None:
        if secret is None:
            return None
        version = secret["metadata"].get("resourceVersion", "")
        cached = self._tokens.get(key)
        if cached is None or cached.version != version:
            try:
                doc = unpack(secret_entries(secret), CREDENTIALS_KEY)
                cached = _Cached(version, load_credentials(doc).report_token if doc is not None else None)
            except ValueError:
                cached = _Cached(version, None)
            self._tokens[key] = cached
        return cached.value


def _owned(obj: dict[str, Any] | None, gateway: dict[str, Any]) -> dict[str, Any] | None:
    return obj if obj is not None and owned_by(obj, gateway) else None


def _lagging(gateway: dict[str, Any]) -> bool:
    conditions = (gateway.get("status") or {}).get("conditions") or []
    return any(c.get("type") == LEDGER_READY and c.get("reason") == REASON_LAGGING for c in conditions)


def _conflict(gateway: dict[str, Any]) -> str | None:
    """The renderer's Conflict message when it refused the AIGateway (Ready says it too)."""
    accepted = next((c for c in (gateway.get("status") or {}).get("conditions") or [] if c.get("type") == "Accepted"), {})
    return accepted.get("message", "") if accepted.get("reason") == REASON_CONFLICT else None

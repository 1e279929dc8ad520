"""Render every AIGateway of a namespace after changes settle, and report per-object status.

kopf handlers only *request* a namespace render; one worker performs them, debounced, so a
burst of changes (an `kubectl apply -f dir/`, operator start-up) renders once, and renders of
one namespace never overlap (nor overlap the status round's writes: `lock(namespace)`).

A render writes, per AIGateway: the credentials Secret and the config ConfigMap (generation
bumped only on a content change; the pods' report token kept across renders), then the
workload objects that run the pods (workloads.py), then the Accepted conditions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from aigw_config.kinds import AIGatewaySpec
from aigw_config.packing import DocumentTooLarge
from aigw_config.registry import CONTENT_KINDS
from aigw_config.render import Verdict, render
from aigw_config.resources import ConfigError, Resource
from aigw_config.status import REASON_INVALID, REASON_TOO_LARGE, now_rfc3339

from . import translate, workloads
from .kube import Kube
from .settings import DEFAULT_GATEWAY_IMAGE
from .status.patch import EventSpec, event_object

log = logging.getLogger("aigw.operator")


class Reconciler:
    def __init__(self, kube: Kube, debounce: float = 0.2, retry_delay: float = 2.0,
                 gateway_image: str = DEFAULT_GATEWAY_IMAGE, identity: str = "") -> None:
        self.kube = kube
        self.debounce = debounce
        self.retry_delay = retry_delay
        self.gateway_image = gateway_image
        self.identity = identity
        self.gateway_namespaces: set[str] = set()
        self._dirty: set[str] = set()
        self._wakeup = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: set[str] = set()
        self.renders = 0

    def lock(self, namespace: str) -> asyncio.Lock:
        """Held while a namespace's objects are read and their status written."""
        return self._locks.setdefault(namespace, asyncio.Lock())

    def request(self, namespace: str | None) -> None:
        if namespace:
            self._dirty.add(namespace)
            self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self.debounce)
            self._wakeup.clear()
            batch, self._dirty = self._dirty, set()
            for namespace in sorted(batch):
                try:
                    await self.reconcile(namespace)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the API hiccupped: try this namespace again shortly
                    log.warning("render of namespace %s failed (%s); retrying in %.0fs", namespace, exc, self.retry_delay)
                    asyncio.get_running_loop().call_later(self.retry_delay, self.request, namespace)

    async def missing_secrets(self, kind: str, namespace: str, spec: dict[str, Any]) -> list[str]:
        names = translate.referenced_secrets(kind, spec)
        return sorted([n for n in names if await self.kube.get_secret(namespace, n) is None])

    def render_pending(self, namespace: str) -> bool:
        """A render of the namespace is requested or waits for the lock (status writes yield to it)."""
        return namespace in self._dirty or namespace in self._waiting

    async def reconcile(self, namespace: str) -> None:
        self._waiting.add(namespace)
        try:
            async with self.lock(namespace):
                self._waiting.discard(namespace)
                await self._reconcile(namespace)
        finally:
            self._waiting.discard(namespace)

    async def _reconcile(self, namespace: str) -> None:
        self.renders += 1
        gateways = await self.kube.list_kind("AIGateway", namespace)
        if gateways:
            self.gateway_namespaces.add(namespace)
        else:
            self.gateway_namespaces.discard(namespace)
        content = {kind: await self.kube.list_kind(kind, namespace) for kind in CONTENT_KINDS}
        resources: list[Resource] = []
        secret_names: set[str] = set()
        for kind, items in content.items():
            for obj in items:
                secret_names |= translate.referenced_secrets(kind, obj.get("spec") or {})
                resources.append(Resource.from_object(obj, namespace))
        for gw in gateways:
            secret_names |= translate.referenced_secrets("AIGateway", gw.get("spec") or {})
        for name in sorted(secret_names):
            secret = await self.kube.get_secret(namespace, name)
            if secret is not None:
                try:
                    resources.append(Resource.from_object(secret, namespace))
                except ConfigError as exc:
                    log.warning("%s", exc)

        verdicts: dict[tuple[str, str], Verdict] = {}
        for gw in sorted(gateways, key=lambda g: g["metadata"]["name"]):
            for key, verdict in (await self._render_gateway(namespace, gw, resources)).items():
                verdicts.setdefault(key, verdict)
        for kind, items in content.items():
            for obj in items:
                meta = obj["metadata"]
                condition = translate.accepted_condition(verdicts.get((kind, meta["name"])), meta.get("generation", 1))
                patch = translate.status_patch(obj.get("status"), condition, meta.get("generation", 1))
                if patch is not None:
                    await self.kube.patch_status(kind, namespace, meta["name"], patch)
                    await self._event_if_rejected(obj, condition)

    async def _event_if_rejected(self, obj: dict[str, Any], condition: Any) -> None:
        """A Warning Event when an object turns Invalid (or TooLarge): `kubectl describe` shows why."""
        before = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Accepted"), {})
        if condition.reason not in (REASON_INVALID, REASON_TOO_LARGE) or before.get("reason") == condition.reason:
            return
        try:
            await self.kube.create_event(event_object(
                obj, EventSpec(condition.reason, condition.message, "Warning"), now_rfc3339(), self.identity))
        except Exception as exc:  # an Event is a courtesy: never fail a render for one
            log.info("event on %s %s not posted: %s", obj.get("kind"), obj["metadata"]["name"], exc)

    async def _render_gateway(self, namespace: str, gw: dict[str, Any], resources: list[Resource]) -> dict:
        meta = gw["metadata"]
        gw_res = Resource.from_object(gw, namespace)
        generation = meta.get("generation", 1)
        try:
            spec = gw_res.parse_spec()
        except ConfigError as exc:
            await self._gateway_refused(gw, REASON_INVALID, "; ".join(exc.problems))
            return {}
        cm_name, secret_name = translate.configmap_name(meta["name"]), translate.secret_name(meta["name"])
        current_cm = await self.kube.get_configmap(namespace, cm_name)
        current_secret = await self.kube.get_secret(namespace, secret_name)
        previous = translate.previous_pair(current_cm, current_secret)
        result = render(resources, gateway=gw_res, namespace=namespace, previous=previous)
        config, credentials = translate.seal(result, previous, new_token=lambda: secrets.token_urlsafe(32))
        try:
            configmap, secret = translate.config_objects(gw, config, credentials)
        except DocumentTooLarge as exc:  # never truncated: the pods keep serving the last config
            await self._gateway_refused(gw, REASON_TOO_LARGE, f"{exc}; the pods keep serving the last config")
            return result.verdicts
        if previous is None or previous[0].hash != config.hash or previous[0].credentials_hash != config.credentials_hash:
            # Secret first: a gateway waits for the credentials its config names, never the reverse.
            await self.kube.upsert("secrets", secret, current_secret)
            await self.kube.upsert("configmaps", configmap, current_cm)
            log.info("AIGateway %s/%s: config generation %d (%s)", namespace, meta["name"], config.generation, config.hash[:19])
        await self._apply_workloads(gw, spec)
        condition = translate.accepted_condition(result.verdicts.get(("AIGateway", meta["name"])), generation)
        patch = translate.status_patch(gw.get("status"), condition, generation, translate.gateway_status_extra(result, config))
        if patch:
            await self.kube.patch_status("AIGateway", namespace, meta["name"], patch)
        return result.verdicts

    async def _gateway_refused(self, gw: dict[str, Any], reason: str, message: str) -> None:
        meta = gw["metadata"]
        generation = meta.get("generation", 1)
        condition = translate.accepted_condition(Verdict("AIGateway", meta["name"], generation, False, reason, message),
                                                 generation)
        patch = translate.status_patch(gw.get("status"), condition, generation)
        if patch:
            await self.kube.patch_status("AIGateway", meta["namespace"], meta["name"], patch)
            await self._event_if_rejected(gw, condition)

    async def _apply_workloads(self, gw: dict[str, Any], spec: AIGatewaySpec) -> None:
        """Create or update what runs the pods; remove the optional objects no longer asked for."""
        namespace = gw["metadata"]["namespace"]
        desired = workloads.workload_objects(gw, workloads.WorkloadOptions.from_spec(spec, self.gateway_image))
        for kind, obj in desired:
            name = obj["metadata"]["name"]
            current = await self.kube.get(kind.api_version, kind.plural, namespace, name)
            if workloads.is_current(obj, current):
                continue
            if current is None:
                await self.kube.create(kind.api_version, kind.plural, obj)
                log.info("AIGateway %s/%s: created %s %s", namespace, gw["metadata"]["name"], kind.kind, name)
            elif not workloads.owned_by(current, gw):
                log.warning("%s %s/%s exists and is not owned by AIGateway %s: left alone",
                            kind.kind, namespace, name, gw["metadata"]["name"])
            else:
                await self.kube.replace(kind.api_version, kind.plural, workloads.replace_body(kind, obj, current))
                log.info("AIGateway %s/%s: updated %s %s", namespace, gw["metadata"]["name"], kind.kind, name)
        wanted = {kind for kind, _ in desired}
        for kind in workloads.OPTIONAL_KINDS:
            if kind in wanted:
                continue
            name = workloads.Names(gw["metadata"]["name"]).deployment
            current = await self.kube.get(kind.api_version, kind.plural, namespace, name)
            if current is not None and workloads.owned_by(current, gw):
                await self.kube.delete(kind.api_version, kind.plural, namespace, name)

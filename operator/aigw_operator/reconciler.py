"""Render every AIGateway of a namespace after changes settle, and report per-object status.

kopf handlers only *request* a namespace render; one worker performs them, debounced, so a
burst of changes (an `kubectl apply -f dir/`, operator start-up) renders once, and renders of
one namespace never overlap.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aigw_config.registry import CONTENT_KINDS
from aigw_config.render import Verdict, render
from aigw_config.resources import ConfigError, Resource
from aigw_config.status import REASON_INVALID

from . import translate
from .kube import Kube

log = logging.getLogger("aigw.operator")


class Reconciler:
    def __init__(self, kube: Kube, debounce: float = 0.2, retry_delay: float = 2.0) -> None:
        self.kube = kube
        self.debounce = debounce
        self.retry_delay = retry_delay
        self.gateway_namespaces: set[str] = set()
        self._dirty: set[str] = set()
        self._wakeup = asyncio.Event()
        self.renders = 0

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

    async def reconcile(self, namespace: str) -> None:
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

    async def _render_gateway(self, namespace: str, gw: dict[str, Any], resources: list[Resource]) -> dict:
        meta = gw["metadata"]
        gw_res = Resource.from_object(gw, namespace)
        generation = meta.get("generation", 1)
        try:
            gw_res.parse_spec()
        except ConfigError as exc:
            condition = translate.accepted_condition(
                Verdict("AIGateway", meta["name"], generation, False, REASON_INVALID, "; ".join(exc.problems)), generation
            )
            patch = translate.status_patch(gw.get("status"), condition, generation)
            if patch:
                await self.kube.patch_status("AIGateway", namespace, meta["name"], patch)
            return {}
        cm_name, secret_name = translate.configmap_name(meta["name"]), translate.secret_name(meta["name"])
        current_cm = await self.kube.get_configmap(namespace, cm_name)
        current_secret = await self.kube.get_secret(namespace, secret_name)
        previous = translate.previous_pair(current_cm, current_secret)
        result = render(resources, gateway=gw_res, namespace=namespace, previous=previous)
        config = result.config.sealed(translate.next_generation(previous, result.config))
        configmap, secret = translate.config_objects(gw, config, result.credentials)
        if previous is None or previous[0].hash != config.hash or previous[0].credentials_hash != config.credentials_hash:
            # Secret first: a gateway waits for the credentials its config names, never the reverse.
            await self.kube.upsert("secrets", secret, current_secret)
            await self.kube.upsert("configmaps", configmap, current_cm)
            log.info("AIGateway %s/%s: config generation %d (%s)", namespace, meta["name"], config.generation, config.hash[:19])
        condition = translate.accepted_condition(result.verdicts.get(("AIGateway", meta["name"])), generation)
        patch = translate.status_patch(gw.get("status"), condition, generation, translate.gateway_status_extra(result, config))
        if patch:
            await self.kube.patch_status("AIGateway", namespace, meta["name"], patch)
        return result.verdicts

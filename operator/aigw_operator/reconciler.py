"""Render every AIGateway of a namespace after changes settle, and report per-object status.

kopf handlers only *request* a namespace render; one worker performs them, debounced, so a
burst of changes (an `kubectl apply -f dir/`, operator start-up) renders once, and renders of
one namespace never overlap (nor overlap the status round's writes: `lock(namespace)`).

A render writes, per AIGateway: the credentials Secret and the config ConfigMap (generation
bumped only on a content change; the pods' report token kept across renders), then the
workload objects that run the pods (workloads.py), then the Accepted conditions.

The worker runs inside kopf's lifecycle: a kopf daemon of an AIGateway runs `work()` (one at a
time), so kopf stops it when this replica pauses for a peer (HA) and at exit; a failed render is
retried with capped exponential backoff. Nothing is written for an AIGateway being deleted, nor
retried into a namespace being deleted. Safety rules (policy.py): objects the operator does not
own are never updated or adopted (Conflict), images outside the allow-list are not run
(ImageNotAllowed), private base URLs are refused (Invalid), unlabelled Secrets are not read
(SecretNotLabelled).
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
from aigw_config.status import (
    REASON_CONFLICT,
    REASON_IMAGE_NOT_ALLOWED,
    REASON_INVALID,
    REASON_SECRET_NOT_FOUND,
    REASON_SECRET_NOT_LABELLED,
    REASON_TOO_LARGE,
    now_rfc3339,
)

from . import ledger_workload, translate, workloads
from .kube import Kube, namespace_gone
from .policy import Policy, not_labelled_message
from .settings import DEFAULT_GATEWAY_IMAGE
from .status.patch import EventSpec, event_object

log = logging.getLogger("aigw.operator")


EVENT_REASONS = frozenset({REASON_INVALID, REASON_TOO_LARGE, REASON_IMAGE_NOT_ALLOWED, REASON_SECRET_NOT_LABELLED})


class Reconciler:
    def __init__(self, kube: Kube, debounce: float = 0.2, retry_delay: float = 2.0,
                 gateway_image: str = DEFAULT_GATEWAY_IMAGE, identity: str = "",
                 policy: Policy | None = None, retry_max: float = 300.0) -> None:
        self.kube = kube
        self.debounce = debounce
        self.retry_delay = retry_delay
        self.retry_max = retry_max
        self.gateway_image = gateway_image
        self.identity = identity
        self.policy = policy or Policy()
        self.gateway_namespaces: set[str] = set()
        self._dirty: set[str] = set()
        self._wakeup = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: set[str] = set()
        self._failures: dict[str, int] = {}
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._worker: object | None = None
        self.renders = 0

    def lock(self, namespace: str) -> asyncio.Lock:
        """Held while a namespace's objects are read and their status written."""
        return self._locks.setdefault(namespace, asyncio.Lock())

    def request(self, namespace: str | None) -> None:
        if namespace:
            self._dirty.add(namespace)
            self._wakeup.set()

    @property
    def worker_active(self) -> bool:
        return self._worker is not None

    async def work(self, stopped: Any, poll: float = 1.0) -> None:
        """The render loop, run by kopf daemons (handlers/aigateway.py): one at a time does the
        work, the others wait to take over; every one returns when kopf stops it."""
        while not stopped:
            if self._worker is None:
                self._worker = token = object()
                try:
                    await self._serve(stopped)
                finally:
                    if self._worker is token:
                        self._worker = None
                return
            await stopped.wait(poll)

    async def _serve(self, stopped: Any) -> None:
        while not stopped:
            # Wake for a request or for kopf's stop, whichever comes first: kopf counts on a
            # daemon that exits at once when asked.
            woken = asyncio.ensure_future(self._wakeup.wait())
            halted = asyncio.ensure_future(stopped.wait())
            try:
                await asyncio.wait({woken, halted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                halted.cancel()
            if stopped:
                return
            await asyncio.sleep(self.debounce)
            self._wakeup.clear()
            batch, self._dirty = self._dirty, set()
            for namespace in sorted(batch):
                if stopped:  # paused or exiting: whoever works next renders the rest
                    self._dirty |= {ns for ns in batch if ns >= namespace}
                    return
                await self.render_once(namespace)

    async def render_once(self, namespace: str) -> bool:
        """Render a namespace; on failure (or an unsettled Conflict) schedule a retry with capped
        exponential backoff. True when the namespace settled."""
        handle = self._retries.pop(namespace, None)
        if handle is not None:
            handle.cancel()
        try:
            settled = await self.reconcile(namespace)
        except asyncio.CancelledError:
            self.request(namespace)  # stopped mid-render: whoever works next renders it again
            raise
        except Exception as exc:
            if namespace_gone(exc):  # a namespace being deleted refuses new objects: nothing to retry
                # the API's own words ("... forbidden: ... being terminated") read like an RBAC gap
                # in a log; the condition is expected, so it is named, not quoted
                log.info("namespace %s is being deleted; its render is dropped", namespace)
                self._failures.pop(namespace, None)
                return True
            delay = self._schedule_retry(namespace)
            log.warning("render of namespace %s failed (%s); retrying in %.0fs", namespace, exc, delay)
            return False
        if settled:
            self._failures.pop(namespace, None)
        else:
            delay = self._schedule_retry(namespace)
            log.info("namespace %s: an AIGateway waits for a conflicting object to go; next look in %.0fs",
                     namespace, delay)
        return settled

    async def render_inline(self, namespace: str) -> bool:
        """For a kopf handler when no daemon runs the worker: render, unless a render of the
        namespace already waits for the lock (it lists after this change, so one is enough)."""
        if namespace in self._waiting:
            return True
        return await self.render_once(namespace)

    def _schedule_retry(self, namespace: str) -> float:
        failures = self._failures[namespace] = self._failures.get(namespace, 0) + 1
        delay = min(self.retry_max, self.retry_delay * 2 ** min(failures - 1, 30))
        self._retries[namespace] = asyncio.get_running_loop().call_later(delay, self.request, namespace)
        return delay

    def retry_delay_of(self, namespace: str) -> float | None:
        """The delay of the namespace's pending retry (tests and logs), None when none is due."""
        failures = self._failures.get(namespace)
        return None if not failures else min(self.retry_max, self.retry_delay * 2 ** min(failures - 1, 30))

    async def has_gateways(self, namespace: str) -> bool:
        return any(not g["metadata"].get("deletionTimestamp") for g in await self.kube.list_kind("AIGateway", namespace))

    async def missing_secrets(self, kind: str, namespace: str, spec: dict[str, Any]) -> list[str]:
        """Referenced Secrets the render cannot use yet: missing, or not labelled for the operator."""
        out: list[str] = []
        for name in sorted(translate.referenced_secrets(kind, spec)):
            secret = await self.kube.get_secret(namespace, name)
            if secret is None:
                out.append(name)
            elif not self.policy.secret_readable(secret):
                out.append(f"{name} (not labelled aigw.dev/secret=true)")
        return out

    def render_pending(self, namespace: str) -> bool:
        """A render of the namespace is requested or waits for the lock (status writes yield to it)."""
        return namespace in self._dirty or namespace in self._waiting

    async def reconcile(self, namespace: str) -> bool:
        """Render the namespace now; False when an AIGateway waits for a conflicting object to go."""
        self._waiting.add(namespace)
        try:
            async with self.lock(namespace):
                self._waiting.discard(namespace)
                return await self._reconcile(namespace)
        finally:
            self._waiting.discard(namespace)

    async def _reconcile(self, namespace: str) -> bool:
        self.renders += 1
        # An AIGateway being deleted (also by a namespace deletion) gets nothing written for it:
        # its objects go with it, and re-creating them would race the garbage collector.
        gateways = [g for g in await self.kube.list_kind("AIGateway", namespace)
                    if not g["metadata"].get("deletionTimestamp")]
        if gateways:
            self.gateway_namespaces.add(namespace)
        else:
            self.gateway_namespaces.discard(namespace)
        content = {kind: await self.kube.list_kind(kind, namespace) for kind in CONTENT_KINDS}
        resources: list[Resource] = []
        secret_names: set[str] = set()
        refused: dict[tuple[str, str], Verdict] = {}
        for kind, items in content.items():
            for obj in items:
                meta = obj["metadata"]
                problem = self.policy.base_url_problem(obj.get("spec")) if kind == "ProviderCredential" else None
                if problem:  # never rendered, so its key is never read
                    refused[(kind, meta["name"])] = Verdict(kind, meta["name"], meta.get("generation", 1), False,
                                                            REASON_INVALID, problem)
                    continue
                secret_names |= translate.referenced_secrets(kind, obj.get("spec") or {})
                resources.append(Resource.from_object(obj, namespace))
        for gw in gateways:
            secret_names |= translate.referenced_secrets("AIGateway", gw.get("spec") or {})
        unlabelled: set[str] = set()
        loaded: set[str] = set()
        for name in sorted(secret_names):
            secret = await self.kube.get_secret(namespace, name)
            if secret is None:
                continue
            if not self.policy.secret_readable(secret):
                unlabelled.add(name)
                continue
            try:
                resources.append(Resource.from_object(secret, namespace))
                loaded.add(name)
            except ConfigError as exc:
                log.warning("%s", exc)

        verdicts: dict[tuple[str, str], Verdict] = {}
        settled = True
        for gw in sorted(gateways, key=lambda g: g["metadata"]["name"]):
            rendered, gw_settled = await self._render_gateway(namespace, gw, resources, unlabelled, loaded)
            settled &= gw_settled
            for key, verdict in rendered.items():
                verdicts.setdefault(key, verdict)
        for kind, items in content.items():
            for obj in items:
                meta = obj["metadata"]
                verdict = refused.get((kind, meta["name"])) or verdicts.get((kind, meta["name"]))
                verdict = explain_unlabelled(verdict, unlabelled, namespace)
                condition = translate.accepted_condition(verdict, meta.get("generation", 1))
                patch = translate.status_patch(obj.get("status"), condition, meta.get("generation", 1))
                if patch is not None:
                    await self.kube.patch_status(kind, namespace, meta["name"], patch)
                    await self._event_if_rejected(obj, condition)
        return settled

    async def _event_if_rejected(self, obj: dict[str, Any], condition: Any) -> None:
        """A Warning Event when an object turns Invalid (or TooLarge): `kubectl describe` shows why."""
        before = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Accepted"), {})
        noteworthy = condition.reason in EVENT_REASONS or (condition.reason == REASON_CONFLICT and obj.get("kind") == "AIGateway")
        if not noteworthy or before.get("reason") == condition.reason:
            return
        try:
            await self.kube.create_event(event_object(
                obj, EventSpec(condition.reason, condition.message, "Warning"), now_rfc3339(), self.identity))
        except Exception as exc:  # an Event is a courtesy: never fail a render for one
            if namespace_gone(exc):
                return  # the namespace is being deleted: nobody will read it
            log.info("event on %s %s not posted: %s", obj.get("kind"), obj["metadata"]["name"], exc)

    async def _render_gateway(self, namespace: str, gw: dict[str, Any], resources: list[Resource],
                              unlabelled: set[str], loaded: set[str]) -> tuple[dict, bool]:
        """(verdicts, settled): settled is False while a conflicting object blocks the gateway."""
        meta = gw["metadata"]
        gw_res = Resource.from_object(gw, namespace)
        generation = meta.get("generation", 1)
        try:
            spec = gw_res.parse_spec()
        except ConfigError as exc:
            await self._gateway_refused(gw, REASON_INVALID, "; ".join(exc.problems))
            return {}, True
        image_problem = self.policy.image_problem(spec.image or self.gateway_image)
        if image_problem:
            await self._gateway_refused(gw, REASON_IMAGE_NOT_ALLOWED, image_problem)
            return {}, True
        # The pods would read the Redis Secret themselves (a secretKeyRef): with the label rule, no
        # pod is given a reference to a Secret the operator has not read as labelled.
        pod_secrets = (("spec.redis.urlSecretRef", spec.redis.url_secret_ref.name if spec.redis else None),
                       ("spec.ledger.postgres.urlSecretRef", spec.ledger.postgres.url_secret_ref.name if spec.ledger else None))
        for field, pod_secret in pod_secrets:
            if pod_secret is None or not self.policy.require_secret_label or pod_secret in loaded:
                continue
            if pod_secret in unlabelled:
                await self._gateway_refused(gw, REASON_SECRET_NOT_LABELLED,
                                            f"{field}: " + not_labelled_message(namespace, pod_secret))
            else:
                await self._gateway_refused(gw, REASON_SECRET_NOT_FOUND, f"{field}: Secret {pod_secret!r} not found; "
                                            "nothing is rendered for this AIGateway until it exists (labelled "
                                            "aigw.dev/secret=true)")
            return {}, True
        cm_name, secret_name = translate.configmap_name(meta["name"]), translate.secret_name(meta["name"])
        current_cm = await self.kube.get_configmap(namespace, cm_name)
        current_secret = await self.kube.get_secret(namespace, secret_name)
        desired = workloads.workload_objects(gw, workloads.WorkloadOptions.from_spec(spec, self.gateway_image))
        current_workloads = [await self.kube.get(kind.api_version, kind.plural, namespace, obj["metadata"]["name"])
                             for kind, obj in desired]
        foreign = [f"{what} {namespace}/{name}" for what, name, current in (
            ("ConfigMap", cm_name, current_cm), ("Secret", secret_name, current_secret),
            *((kind.kind, obj["metadata"]["name"], cur) for (kind, obj), cur in zip(desired, current_workloads, strict=True)),
        ) if current is not None and not workloads.owned_by(current, gw)]
        if foreign:  # never updated, never adopted: the owner of those objects decides
            await self._gateway_refused(gw, REASON_CONFLICT, f"{', '.join(foreign)} already exist(s) and "
                                        "is not owned by this AIGateway; left untouched (delete or rename it, or rename "
                                        "the AIGateway)")
            return {}, False
        previous = translate.previous_pair(current_cm, current_secret)
        result = render(resources, gateway=gw_res, namespace=namespace, previous=previous)
        config, credentials = translate.seal(result, previous, new_token=lambda: secrets.token_urlsafe(32))
        try:
            configmap, secret = translate.config_objects(gw, config, credentials)
        except DocumentTooLarge as exc:  # never truncated: the pods keep serving the last config
            await self._gateway_refused(gw, REASON_TOO_LARGE, f"{exc}; the pods keep serving the last config")
            return result.verdicts, True
        if previous is None or previous[0].hash != config.hash or previous[0].credentials_hash != config.credentials_hash:
            # Secret first: a gateway waits for the credentials its config names, never the reverse.
            await self.kube.upsert("secrets", secret, current_secret)
            await self.kube.upsert("configmaps", configmap, current_cm)
            log.info("AIGateway %s/%s: config generation %d (%s)", namespace, meta["name"], config.generation, config.hash[:19])
        await self._apply_workloads(gw, desired, current_workloads)
        verdict = explain_unlabelled(result.verdicts.get(("AIGateway", meta["name"])), unlabelled, namespace)
        condition = translate.accepted_condition(verdict, generation)
        patch = translate.status_patch(gw.get("status"), condition, generation, translate.gateway_status_extra(result, config))
        if patch:
            await self.kube.patch_status("AIGateway", namespace, meta["name"], patch)
        return result.verdicts, True

    async def _gateway_refused(self, gw: dict[str, Any], reason: str, message: str) -> None:
        meta = gw["metadata"]
        generation = meta.get("generation", 1)
        condition = translate.accepted_condition(Verdict("AIGateway", meta["name"], generation, False, reason, message),
                                                 generation)
        patch = translate.status_patch(gw.get("status"), condition, generation)
        if patch:
            await self.kube.patch_status("AIGateway", meta["namespace"], meta["name"], patch)
            await self._event_if_rejected(gw, condition)

    async def _retire_ledger_writer(self, gw: dict[str, Any], desired_names: set[str]) -> None:
        """spec.ledger removed: the writer Deployment is scaled to zero (updated, not deleted)."""
        namespace, name = gw["metadata"]["namespace"], ledger_workload.ledger_name(gw["metadata"]["name"])
        if name in desired_names:
            return
        current = await self.kube.get(workloads.DEPLOYMENT.api_version, workloads.DEPLOYMENT.plural, namespace, name)
        if current is not None and workloads.owned_by(current, gw):
            body = ledger_workload.retired(current)
            if body is not None:
                await self.kube.replace(workloads.DEPLOYMENT.api_version, workloads.DEPLOYMENT.plural, body)
                log.info("AIGateway %s/%s: scaled %s to 0 (no spec.ledger)", namespace, gw["metadata"]["name"], name)

    async def _apply_workloads(self, gw: dict[str, Any], desired: list[tuple[workloads.Kind, dict[str, Any]]],
                               current_objects: list[dict[str, Any] | None]) -> None:
        """Create or update what runs the pods; remove the optional objects no longer asked for."""
        namespace = gw["metadata"]["namespace"]
        for (kind, obj), current in zip(desired, current_objects, strict=True):
            name = obj["metadata"]["name"]
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
        await self._retire_ledger_writer(gw, {obj["metadata"]["name"] for _, obj in desired})
        wanted = {kind for kind, _ in desired}
        for kind in workloads.OPTIONAL_KINDS:
            if kind in wanted:
                continue
            name = workloads.Names(gw["metadata"]["name"]).deployment
            current = await self.kube.get(kind.api_version, kind.plural, namespace, name)
            if current is not None and workloads.owned_by(current, gw):
                await self.kube.delete(kind.api_version, kind.plural, namespace, name)


def explain_unlabelled(verdict: Verdict | None, unlabelled: set[str], namespace: str) -> Verdict | None:
    """A verdict that says "Secret X not found" for a Secret that exists but is not labelled for the
    operator says so, with the command that fixes it (reason SecretNotLabelled)."""
    if verdict is None or not unlabelled:
        return verdict
    message, hit = verdict.message, False
    for name in sorted(unlabelled):
        needle = f"Secret {name!r} not found"
        if needle in message:
            message, hit = message.replace(needle, not_labelled_message(namespace, name)), True
    if not hit:
        return verdict
    reason = REASON_SECRET_NOT_LABELLED if verdict.reason == REASON_SECRET_NOT_FOUND else verdict.reason
    return Verdict(verdict.kind, verdict.name, verdict.generation, verdict.served, reason, message)

"""An in-process Kubernetes API-server emulator for operator tests (no cluster needed).

It serves plain HTTP on 127.0.0.1 from a daemon thread, so a real ``kopf run`` subprocess,
httpx/aiohttp clients and test code can talk to it like to a real API server::

    with KubeEmulator() as emu:
        emu.write_kubeconfig(tmp_path / "kubeconfig")
        httpx.get(f"{emu.url}/api/v1/namespaces/default/configmaps")

What is emulated (honestly, i.e. like a real server):

* Discovery (``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/{g}``, ``/apis/{g}/{v}``)
  for the built-in kinds (see :func:`tests.kube.emulator_core.builtin_types`) and for the kinds
  registered by creating CustomResourceDefinitions (removed again when the CRD is deleted).
* CRUD with server-set metadata (uid, a global resourceVersion counter, creationTimestamp,
  generation, generateName), 409 AlreadyExists/Conflict, optimistic locking via
  resourceVersion in PUT and in patches, no-op writes that change nothing and emit nothing,
  generation bumps on non-metadata/non-status changes, status subresources (CRDs declaring one
  and the built-ins that have one: namespaces, pods, services, deployments, PDBs, HPAs, CRDs).
* Patches: merge (RFC 7386), JSON (RFC 6902; failed ``test`` -> 422), strategic merge
  (approximated as a merge patch for built-ins; 415 for custom resources like the real server).
* Deletion: finalizers (deletionTimestamp, then removal when the last finalizer goes; no new
  finalizers while deleting), propagationPolicy Background/Foreground/Orphan via the
  ``orphan``/``foregroundDeletion`` finalizers, owner-reference garbage collection (dependents
  without other live owners are deleted, dangling references of the others are dropped),
  namespace termination (content deleted first; protected namespaces cannot be deleted),
  CRD deletion (instances deleted first, via the ``customresourcecleanup`` finalizer).
* LIST with label selectors (all operators) and per-kind field selectors; WATCH with initial
  ADDED events, replay from a bounded history by resourceVersion, 410 Expired for too old
  versions, selector transitions (ADDED/DELETED when objects enter/leave a selector),
  bookmarks, ``sendInitialEvents``, ``timeoutSeconds``.
* Custom resources: structural-schema defaulting, pruning of unknown fields (reported in a
  ``Warning`` header) and validation against ``openAPIV3Schema`` (422 Invalid naming the
  field). CEL rules (``x-kubernetes-validations``) are NOT evaluated.
* ObjectMeta validation (names, label keys/values, annotation keys, ownerReferences) and
  pruning of unknown ObjectMeta fields; Secrets' ``stringData`` is folded into base64 ``data``;
  ``dryRun=All``; optional bearer-token auth.

Details that follow the real server and may surprise: creating an object with
``metadata.resourceVersion`` set fails with 500 (uid/creationTimestamp are just overwritten);
PUT of a custom resource needs ``metadata.resourceVersion`` (422 otherwise; built-ins allow
unconditional PUT); marking an object for deletion bumps its ``generation``; the DELETED event of
an object removed by dropping its last finalizer carries its last stored state (finalizer still
listed) with a new resourceVersion, while the PATCH/PUT response shows the finalizers removed
and the old resourceVersion; typed (built-in) lists omit the items' ``apiVersion``/``kind``.
A successful DELETE returns the object (200 when removed, 202 when finalizers hold it).

Deliberately NOT emulated: built-in kinds' own defaulting/validation/pruning (a Deployment is
stored as sent), controllers other than GC/namespace/CRD cleanup (no pods for deployments, no
endpoints, no status updates), admission webhooks, RBAC, server-side apply, CRD conversion
webhooks (all versions share the stored data), ``limit``/``continue`` paging (everything is
returned at once, as a real server may do), LIST/GET at a given resourceVersion, DELETE of a
collection, ``/scale``, ``/log``, ``/exec``, TLS, CRD ``selectableFields``. GC happens
synchronously within the request that removed the owner (a real server does it asynchronously,
shortly after), only reacts to owners being removed (a dependent whose owner never existed is
kept), and Foreground deletion waits for all dependents (not only ``blockOwnerDeletion`` ones).
``v1`` and ``events.k8s.io/v1`` Events are stored separately (a real server shares them).
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.kube.emulator_core import (
    STATUS_VERBS, VERBS, ApiError, ResourceType, bad_request, not_found_path)
from tests.kube.emulator_select import parse_field_selector, parse_label_selector
from tests.kube.emulator_store import Store
from tests.kube.emulator_watch import Watcher

__all__ = ["KubeEmulator"]

logger = logging.getLogger(__name__)
JSON = dict[str, Any]
TRUE = ("true", "1", "True")


def _json_response(body: JSON, status: int = 200, warnings: list[str] | None = None
                   ) -> web.Response:
    response = web.json_response(body, status=status)
    for warning in warnings or []:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


class KubeEmulator:
    """An emulated Kubernetes API server; see the module docstring for the semantics.

    :param token: if set, requests must carry ``Authorization: Bearer <token>`` (else 401).
    :param history_size: how many past events watches can replay (older ones -> 410 Expired).
    :param bookmark_interval: how often idle watches with ``allowWatchBookmarks`` get one.
    """

    def __init__(self, *, token: str | None = None, history_size: int = 1000,
                 bookmark_interval: float = 30.0) -> None:
        self.token = token
        self.bookmark_interval = bookmark_interval
        self._store = Store(history_size=history_size)  # only touched on the loop's thread
        self._log: collections.deque[str] = collections.deque(maxlen=2000)
        self._log_lock = threading.Lock()
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def request_log(self) -> list[str]:
        """Recent requests as "METHOD /path?query -> status" (watches also when opened)."""
        with self._log_lock:
            return list(self._log)

    def _record(self, line: str) -> None:
        with self._log_lock:
            self._log.append(line)

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> KubeEmulator:
        if self._thread is not None:
            raise RuntimeError("the emulator can be started only once")
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the emulator did not start in 10s")
        if self._error is not None:
            raise RuntimeError("the emulator failed to start") from self._error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": self.token or "emulator-token"}}],
            "contexts": [{"name": "emulator", "context": {
                "cluster": "emulator", "user": "emulator", "namespace": "default"}}],
            "current-context": "emulator",
        }))
        return path

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _startup(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, handler_cancellation=True,
                                     access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        self._stopping = True
        for watcher in list(self._store.watchers):
            watcher.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- HTTP plumbing ---------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            if self.token is not None and \
                    request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            response = await handler(request)
        except ApiError as e:
            response = _json_response(e.status(), status=e.code)
        except Exception as e:  # noqa: BLE001 - a bug in the emulator must be visible
            logger.exception("emulator failure on %s %s", request.method, request.path_qs)
            response = _json_response(
                ApiError(500, "InternalError", f"emulator bug: {e!r}").status(), status=500)
        self._record(f"{request.method} {request.path_qs} -> {response.status}")
        return response

    async def _body(self, request: web.Request, required: bool = True) -> Any:
        raw = await request.read()
        if not raw.strip():
            if required:
                raise bad_request("the request body is empty")
            return None
        try:
            if "yaml" in request.content_type and "patch" not in request.content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"the request body is not valid JSON: {e}") from None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        if request.method != "GET" and (len(segs) < 3 or segs[0] not in ("api", "apis")):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        if segs in (["healthz"], ["livez"], ["readyz"]):
            return web.Response(text="ok")
        if segs == ["version"]:
            return _json_response({"major": "1", "minor": "31", "gitVersion": "v1.31.0-emulator",
                                   "gitCommit": "emulator", "gitTreeState": "clean",
                                   "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22",
                                   "compiler": "gc", "platform": "linux/amd64"})
        if segs == ["api"]:
            return _json_response({"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": [
                                       {"clientCIDR": "0.0.0.0/0",
                                        "serverAddress": f"127.0.0.1:{self._port}"}]})
        if segs == ["apis"]:
            return _json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                self._api_group(g, vs) for g, vs in self._store.group_versions().items()]})
        if len(segs) == 2 and segs[0] == "apis":
            versions = self._store.group_versions().get(segs[1])
            if not versions:
                raise not_found_path()
            return _json_response({"kind": "APIGroup", "apiVersion": "v1",
                                   **self._api_group(segs[1], versions)})
        if len(segs) >= 2 and segs[0] == "api" and segs[1] == "v1":
            group, version, rest = "", "v1", segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise not_found_path()
        if not rest:
            return self._resource_list(group, version)
        watch = rest[0] == "watch"
        rest = rest[1:] if watch else rest
        if len(rest) >= 3 and rest[0] == "namespaces" and not (
                group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace: str | None = rest[1]
            plural, name, sub, extra = (rest[2:] + [None, None, None])[:4]
        else:
            namespace = None
            plural, name, sub, extra = (rest + [None, None, None])[:4]
        rtype = self._store.resolve(group, version, plural or "")
        if extra is not None or (namespace is not None and not rtype.namespaced):
            raise not_found_path()
        if sub is not None and (sub != "status" or not rtype.has_status(version)):
            raise not_found_path()
        if name is None or (watch and sub is None):  # the legacy /watch/.../{name} too
            return await self._collection(request, rtype, version, namespace, watch, name)
        return await self._item(request, rtype, version, namespace, name, sub)

    @staticmethod
    def _api_group(group: str, versions: list[str]) -> JSON:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries,
                "preferredVersion": entries[0]}

    def _resource_list(self, group: str, version: str) -> web.Response:
        types = self._store.types_in(group, version)
        if not types:
            raise not_found_path()
        resources: list[JSON] = []
        for rtype in sorted(types, key=lambda t: t.plural):
            entry: JSON = {"name": rtype.plural, "singularName": rtype.singular,
                           "namespaced": rtype.namespaced, "kind": rtype.kind, "verbs": VERBS}
            if rtype.short_names:
                entry["shortNames"] = rtype.short_names
            if rtype.categories:
                entry["categories"] = rtype.categories
            resources.append(entry)
            if rtype.has_status(version):
                resources.append({"name": f"{rtype.plural}/status", "singularName": "",
                                  "namespaced": rtype.namespaced, "kind": rtype.kind,
                                  "verbs": STATUS_VERBS})
        return _json_response({"kind": "APIResourceList", "apiVersion": "v1",
                               "groupVersion": f"{group}/{version}" if group else version,
                               "resources": resources})

    # --- resources -------------------------------------------------------------------------

    async def _collection(self, request: web.Request, rtype: ResourceType, version: str,
                          namespace: str | None, watch: bool, name: str | None = None
                          ) -> web.StreamResponse:
        query = request.query
        dry_run = bool(query.get("dryRun"))
        if request.method == "POST" and not watch:
            body = await self._body(request)
            obj, warnings = self._store.create(rtype, version, namespace, body, dry_run=dry_run)
            return _json_response(self._store.render(rtype, version, obj), 201, warnings)
        if request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported here")
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), rtype)
        if name is not None:
            fields.append(("metadata.name", "=", name))
        watcher = Watcher(rtype, version, namespace, labels, fields)
        if watch or query.get("watch") in TRUE:
            return await self._watch(request, watcher)
        items = self._store.list_objects(rtype, watcher.matches)
        rendered = [self._store.render(rtype, version, o) for o in items]
        if not rtype.custom:  # typed lists omit the items' apiVersion/kind, CR lists have them
            rendered = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")}
                        for o in rendered]
        return _json_response({"kind": f"{rtype.kind}List",
                               "apiVersion": rtype.api_version(version),
                               "metadata": {"resourceVersion": str(self._store.rv)},
                               "items": rendered})

    async def _item(self, request: web.Request, rtype: ResourceType, version: str,
                    namespace: str | None, name: str, sub: str | None) -> web.StreamResponse:
        if rtype.namespaced and namespace is None:
            raise not_found_path()
        dry_run = bool(request.query.get("dryRun"))
        warnings: list[str] = []
        status = 200
        if request.method == "GET":
            obj = self._store.get(rtype, namespace, name)
        elif request.method == "PUT":
            body = await self._body(request)
            obj, warnings = self._store.replace(rtype, version, namespace, name, body, sub,
                                               dry_run=dry_run)
        elif request.method == "PATCH":
            body = await self._body(request)
            content_type = request.content_type
            obj, warnings = self._store.patch(rtype, version, namespace, name, content_type,
                                             body, sub, dry_run=dry_run)
        elif request.method == "DELETE" and sub is None:
            options = await self._body(request, required=False) or {}
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be a JSON object")
            for key in ("propagationPolicy", "orphanDependents"):
                if key in request.query:
                    options[key] = request.query[key] in TRUE if key == "orphanDependents" \
                        else request.query[key]
            obj, removed = self._store.delete(rtype, namespace, name, options, dry_run=dry_run)
            status = 200 if removed else 202
        else:
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported here")
        return _json_response(self._store.render(rtype, version, obj), status, warnings)

    async def _watch(self, request: web.Request, watcher: Watcher) -> web.StreamResponse:
        query = request.query
        try:
            timeout = float(query.get("timeoutSeconds") or 0) or None  # 0: no timeout
        except ValueError:
            raise bad_request("timeoutSeconds must be a number") from None
        bookmarks = query.get("allowWatchBookmarks") in TRUE
        initial_events = query.get("sendInitialEvents") in TRUE
        since = None if initial_events else query.get("resourceVersion")
        rtype, version = watcher.rtype, watcher.version
        initial = self._store.open_watch(watcher, since)
        self._record(f"{request.method} {request.path_qs} -> (watch opened)")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)

            async def send(etype: str, obj: JSON) -> None:
                line = json.dumps({"type": etype, "object": obj}) + "\n"
                await response.write(line.encode())

            def bookmark(annotations: JSON | None = None) -> JSON:
                meta: JSON = {"resourceVersion": str(self._store.rv)}
                if annotations:
                    meta["annotations"] = annotations
                return {"kind": rtype.kind, "apiVersion": rtype.api_version(version),
                        "metadata": meta}

            if initial is None:
                await send("ERROR", ApiError(
                    410, "Expired", f"too old resource version: {query.get('resourceVersion')} "
                                    f"({self._store.compacted_rv + 1})").status())
                return response
            for etype, obj in initial:
                await send(etype, self._store.render(rtype, version, obj))
            if initial_events and bookmarks:
                await send("BOOKMARK", bookmark({"k8s.io/initial-events-end": "true"}))
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            while not self._stopping:
                wait = self.bookmark_interval if bookmarks else None
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    wait = remaining if wait is None else min(wait, remaining)
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and watcher.queue.empty() and (
                            deadline is None or loop.time() < deadline):
                        await send("BOOKMARK", bookmark())
                    continue
                if item is Watcher.CLOSE:
                    break
                etype, obj = item
                await send(etype, self._store.render(watcher.rtype, version, obj))
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            self._store.close_watch(watcher)
        return response

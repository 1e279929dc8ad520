"""The emulator's storage and object lifecycle: versions, events, watchers, deletion, GC.

Everything here is synchronous and runs on the emulator's event-loop thread, so every operation
is atomic. Stored objects are never mutated in place (every change works on a deep copy), so
event snapshots can share them safely.
"""
from __future__ import annotations

import collections
import copy
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from tests.kube.emulator_core import (
    ApiError, ResourceType, bad_request, builtin_types, now_rfc3339, version_priority)
from tests.kube.emulator_kinds import (
    CRD_CLEANUP_FINALIZER, CRDS, NAMESPACES, crd_resource_type, prepare_builtin)
from tests.kube.emulator_patch import (
    PatchError, json_equal, json_patch, merge_patch, strip_strategic_directives)
from tests.kube.emulator_schema import (
    check_kind, invalid, prepare_custom_object, prune_metadata, validate_metadata)
from tests.kube.emulator_watch import Event, Watcher

JSON = dict[str, Any]
Key = tuple[str, str]            # (namespace or "", name)
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                 "deletionGracePeriodSeconds", "generation", "selfLink")

MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def _meta(obj: JSON) -> JSON:
    return obj["metadata"]


def _generate_suffix() -> str:
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _spec_part(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    def __init__(self, history_size: int = 1000) -> None:
        self.types: dict[tuple[str, str], ResourceType] = {}
        self.objects: dict[tuple[str, str], dict[Key, JSON]] = {}
        self.uids: dict[str, tuple[tuple[str, str], Key]] = {}
        self.rv = 0
        self.history: collections.deque[Event] = collections.deque()
        self.history_size = history_size
        self.compacted_rv = 0          # events with rv <= this are gone from the history
        self.watchers: set[Watcher] = set()
        for rtype in builtin_types():
            self._register(rtype)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.types[NAMESPACES], "v1", None, {"metadata": {"name": ns}})

    # --- types & discovery ---------------------------------------------------------------

    def _register(self, rtype: ResourceType) -> None:
        self.types[rtype.key] = rtype
        self.objects.setdefault(rtype.key, {})

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.types.get((group, plural))
        if rtype is None or version not in rtype.versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           details={})
        return rtype

    def group_versions(self) -> dict[str, list[str]]:
        """{group: [served versions, preferred first]} for the non-core groups."""
        groups: dict[str, set[str]] = {}
        for rtype in self.types.values():
            if rtype.group:
                groups.setdefault(rtype.group, set()).update(rtype.versions)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(groups.items())}

    def types_in(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types.values() if t.group == group and version in t.versions]

    # --- reading -------------------------------------------------------------------------

    @staticmethod
    def render(rtype: ResourceType, version: str, obj: JSON) -> JSON:
        rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        return {"apiVersion": rtype.api_version(version), "kind": rtype.kind, **rest}

    def _key(self, rtype: ResourceType, namespace: str | None, name: str) -> Key:
        return ((namespace or "") if rtype.namespaced else "", name)

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> JSON:
        obj = self.objects[rtype.key].get(self._key(rtype, namespace, name))
        if obj is None:
            raise rtype.not_found(name)
        return obj

    def list_objects(self, rtype: ResourceType, match: Callable[[JSON], bool]) -> list[JSON]:
        items = self.objects[rtype.key]
        return [items[k] for k in sorted(items) if match(items[k])]

    def _by_uid(self, uid: str | None) -> tuple[ResourceType, JSON] | None:
        where = self.uids.get(uid or "")
        if where is None:
            return None
        rkey, key = where
        return self.types[rkey], self.objects[rkey][key]

    def _all_objects(self) -> Iterator[tuple[ResourceType, JSON]]:
        for rkey, items in list(self.objects.items()):
            for obj in list(items.values()):
                yield self.types[rkey], obj

    def _dependents(self, uid: str) -> list[tuple[ResourceType, JSON]]:
        return [(t, o) for t, o in self._all_objects()
                if any(r.get("uid") == uid for r in _meta(o).get("ownerReferences") or [])]

    # --- events & watches ----------------------------------------------------------------

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _store(self, rtype: ResourceType, obj: JSON, etype: str, old: JSON | None) -> None:
        meta = _meta(obj)
        meta["resourceVersion"] = self._next_rv()
        key = self._key(rtype, meta.get("namespace"), meta["name"])
        self.objects[rtype.key][key] = obj
        self.uids[meta["uid"]] = (rtype.key, key)
        self._emit(Event(self.rv, etype, rtype.key, obj, old))

    def _emit(self, event: Event) -> None:
        self.history.append(event)
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().rv
        for watcher in list(self.watchers):
            if watcher.rtype.key == event.rkey:
                watcher.offer(event)

    def open_watch(self, watcher: Watcher, since: str | None) -> list[tuple[str, JSON]] | None:
        """Register ``watcher``; return the events to send first, or None if ``since`` is
        too old (HTTP 410 Expired). ``since`` None/""/"0" means "current state first"."""
        if not since or since == "0":
            initial = [("ADDED", o) for o in self.list_objects(watcher.rtype, watcher.matches)]
        else:
            try:
                since_rv = int(since)
            except ValueError:
                raise bad_request(f"invalid resource version: {since!r}") from None
            if since_rv < self.compacted_rv:
                return None
            initial = []
            for event in self.history:
                if event.rv > since_rv and event.rkey == watcher.rtype.key:
                    if (etype := watcher.translate(event)) is not None:
                        initial.append((etype, event.obj))
        self.watchers.add(watcher)
        return initial

    def close_watch(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    # --- custom resource definitions ---------------------------------------------------

    def _register_crd(self, crd: JSON) -> None:
        rtype = crd_resource_type(crd)
        self._register(rtype)
        for watcher in list(self.watchers):  # keep open watches on the (updated) type
            if watcher.rtype.key == rtype.key:
                watcher.rtype = rtype

    def _unregister_crd(self, crd: JSON) -> None:
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        if key in self.types and self.types[key].custom:
            del self.types[key]
            for obj in self.objects.pop(key, {}).values():
                self.uids.pop(_meta(obj)["uid"], None)
            for watcher in list(self.watchers):
                if watcher.rtype.key == key:
                    watcher.close()

    def _crd_of(self, rtype: ResourceType) -> JSON | None:
        return self.objects[CRDS].get(("", rtype.crd_name or ""))

    # --- writing -------------------------------------------------------------------------

    def _validate(self, rtype: ResourceType, version: str, obj: JSON) -> list[str]:
        warnings = prune_metadata(obj)
        validate_metadata(rtype, obj)
        return warnings + (prepare_custom_object(rtype, version, obj) if rtype.custom else [])

    def create(self, rtype: ResourceType, version: str, namespace: str | None, body: Any,
               dry_run: bool = False) -> tuple[JSON, list[str]]:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        obj = body
        check_kind(rtype, version, obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rtype.namespaced:
            if namespace is None:
                raise ApiError(405, "MethodNotAllowed",
                               "create of a namespaced resource needs a namespace in the URL")
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + _generate_suffix()
        if meta.get("resourceVersion"):
            # The real server fails this deep in its storage layer, hence a 500.
            raise ApiError(500, "InternalError",
                           "resourceVersion should not be set on objects to be created")
        for field in SERVER_FIELDS:
            meta.pop(field, None)
        if rtype.status_versions:
            obj.pop("status", None)
        prepare_builtin(self.types, rtype, obj, None)
        warnings = self._validate(rtype, version, obj)
        name = meta["name"]
        if self._key(rtype, namespace, name) in self.objects[rtype.key]:
            raise rtype.already_exists(name)
        if rtype.namespaced:
            ns = self.objects[NAMESPACES].get(("", namespace or ""))
            if ns is not None and _meta(ns).get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", f"unable to create new content in namespace "
                               f"{namespace} because it is being terminated")
        if rtype.custom and (crd := self._crd_of(rtype)) and _meta(crd).get("deletionTimestamp"):
            raise ApiError(405, "MethodNotAllowed", "create not allowed while custom resource "
                                                    "definition is terminating")
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
        if dry_run:
            return obj, warnings
        self._store(rtype, obj, "ADDED", None)
        if rtype.key == CRDS:
            self._register_crd(obj)
        return obj, warnings

    def _merge_for_write(self, rtype: ResourceType, version: str, cur: JSON, new: JSON,
                         subresource: str | None) -> tuple[JSON, list[str]]:
        """Build the object to store from the current one and the client-sent one."""
        cur_meta = _meta(cur)
        if subresource == "status":
            result = copy.deepcopy(cur)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
        else:
            result = new
            meta = _meta(result)
            if rtype.has_status(version):
                if "status" in cur:
                    result["status"] = copy.deepcopy(cur["status"])
                else:
                    result.pop("status", None)
            if meta.get("uid") and meta["uid"] != cur_meta["uid"]:
                raise rtype.conflict(cur_meta["name"], f"Precondition failed: UID in object "
                                     f"meta: {meta['uid']}, does not match {cur_meta['uid']}")
            for field in SERVER_FIELDS:
                meta.pop(field, None)
                if field in cur_meta:
                    meta[field] = cur_meta[field]
            meta["name"] = cur_meta["name"]
            if rtype.namespaced:
                meta["namespace"] = cur_meta["namespace"]
            if cur_meta.get("deletionTimestamp"):
                added = [f for f in meta.get("finalizers") or []
                         if f not in (cur_meta.get("finalizers") or [])]
                if added:
                    raise invalid(rtype, cur_meta["name"], "metadata.finalizers",
                                  "Forbidden: no new finalizers can be added if the object is "
                                  f"being deleted, found new finalizers {added}")
            prepare_builtin(self.types, rtype, result, cur)
        _meta(result)["resourceVersion"] = cur_meta["resourceVersion"]
        return result, self._validate(rtype, version, result)

    def _commit_update(self, rtype: ResourceType, cur: JSON, result: JSON,
                       dry_run: bool = False) -> JSON:
        """Store ``result`` over ``cur``: no-op detection, generation, final deletion."""
        if json_equal({**result, "apiVersion": None}, {**cur, "apiVersion": None}):
            return cur
        meta = _meta(result)
        if not json_equal(_spec_part(result), _spec_part(cur)):
            meta["generation"] = int(_meta(cur).get("generation") or 0) + 1
        if dry_run:
            return result
        if meta.get("deletionTimestamp") and not self._blocked(rtype, result):
            self._remove(rtype, cur)    # the response keeps the last resourceVersion
            return result
        self._store(rtype, result, "MODIFIED", cur)
        if rtype.key == CRDS:
            self._register_crd(result)
        return result

    def _blocked(self, rtype: ResourceType, obj: JSON) -> bool:
        """Whether a deleted object must stay: finalizers, or a namespace's content."""
        meta = _meta(obj)
        if meta.get("finalizers"):
            return True
        return rtype.key == NAMESPACES and any(
            t.namespaced and _meta(o).get("namespace") == meta["name"]
            for t, o in self._all_objects())

    def _check_names(self, rtype: ResourceType, cur: JSON, obj: JSON) -> None:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        cur_meta = _meta(cur)
        if meta.get("name") and meta["name"] != cur_meta["name"]:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the "
                              f"name on the URL ({cur_meta['name']})")
        if rtype.namespaced and meta.get("namespace") and \
                meta["namespace"] != cur_meta["namespace"]:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        rv = meta.get("resourceVersion")
        if rv and rv != cur_meta["resourceVersion"]:
            raise rtype.conflict(cur_meta["name"], "the object has been modified; please apply "
                                 "your changes to the latest version and try again")

    def replace(self, rtype: ResourceType, version: str, namespace: str | None, name: str,
                body: Any, subresource: str | None,
                dry_run: bool = False) -> tuple[JSON, list[str]]:
        cur = self.get(rtype, namespace, name)
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        check_kind(rtype, version, body)
        self._check_names(rtype, cur, body)
        if not body["metadata"].get("resourceVersion") and rtype.custom:
            raise invalid(rtype, name, "metadata.resourceVersion",
                          "Invalid value: 0x0: must be specified for an update")
        result, warnings = self._merge_for_write(rtype, version, cur, body, subresource)
        return self._commit_update(rtype, cur, result, dry_run), warnings

    def patch(self, rtype: ResourceType, version: str, namespace: str | None, name: str,
              content_type: str, patch: Any, subresource: str | None,
              dry_run: bool = False) -> tuple[JSON, list[str]]:
        cur = self.get(rtype, namespace, name)
        doc = copy.deepcopy(self.render(rtype, version, cur))
        try:
            if content_type == MERGE:
                patched = merge_patch(doc, patch)
            elif content_type == STRATEGIC and not rtype.custom:
                patched = merge_patch(doc, strip_strategic_directives(patch))
            elif content_type == JSONPATCH:
                patched = json_patch(doc, patch)
            else:
                accepted = [JSONPATCH, MERGE] + ([] if rtype.custom else [STRATEGIC])
                raise ApiError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted "
                               f"media types include: {', '.join(accepted)}")
        except PatchError as e:
            if e.malformed:
                raise bad_request(str(e)) from None
            raise ApiError(422, "Invalid", str(e)) from None
        if not isinstance(patched, dict):
            raise bad_request("the patched object is not a JSON object")
        check_kind(rtype, version, patched)
        self._check_names(rtype, cur, patched)
        result, warnings = self._merge_for_write(rtype, version, cur, patched, subresource)
        return self._commit_update(rtype, cur, result, dry_run), warnings

    # --- deletion & garbage collection ---------------------------------------------------

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, options: JSON,
               dry_run: bool = False) -> tuple[JSON, bool]:
        """Returns (object, removed_immediately)."""
        cur = self.get(rtype, namespace, name)
        pre = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if pre.get(field) and pre[field] != _meta(cur)[field]:
                raise rtype.conflict(name, f"Precondition failed: {field} in precondition: "
                                     f"{pre[field]}, {field} in object meta: {_meta(cur)[field]}")
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background")
        if policy not in ("Background", "Foreground", "Orphan"):
            raise bad_request(f"unsupported propagationPolicy {policy!r}")
        if rtype.key == NAMESPACES and name in PROTECTED_NAMESPACES:
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace '
                                             "may not be deleted")
        if dry_run:
            return cur, False
        return self._delete(rtype, cur, policy)

    def _delete(self, rtype: ResourceType, cur: JSON, policy: str = "Background"
                ) -> tuple[JSON, bool]:
        found = self._by_uid(_meta(cur)["uid"])   # callers may hold a stale copy
        if found is None:
            return cur, True
        cur = found[1]
        meta = _meta(cur)
        if meta.get("deletionTimestamp"):
            return cur, False
        finalizers = list(meta.get("finalizers") or [])
        extra = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
        if extra and extra not in finalizers:
            finalizers.append(extra)
        if not finalizers and rtype.key != NAMESPACES:
            self._remove(rtype, cur)
            return cur, True
        result = copy.deepcopy(cur)
        rmeta = _meta(result)
        rmeta.update(deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=0,
                     generation=int(rmeta.get("generation") or 0) + 1)
        if finalizers:
            rmeta["finalizers"] = finalizers
        if rtype.key == NAMESPACES:
            result["status"] = {"phase": "Terminating"}
        self._store(rtype, result, "MODIFIED", cur)
        self._after_marked(rtype, result)
        found = self._by_uid(rmeta["uid"])
        return (found[1] if found else result), False

    def _remove(self, rtype: ResourceType, cur: JSON) -> None:
        meta = _meta(cur)
        del self.objects[rtype.key][self._key(rtype, meta.get("namespace"), meta["name"])]
        self.uids.pop(meta["uid"], None)
        gone = copy.deepcopy(cur)
        _meta(gone)["resourceVersion"] = self._next_rv()
        self._emit(Event(self.rv, "DELETED", rtype.key, gone, None))
        self._after_removed(rtype, cur)

    def _update_internal(self, uid: str, mutate: Callable[[JSON], None]) -> None:
        """A change made by an emulated controller (GC, namespace/CRD cleanup)."""
        found = self._by_uid(uid)
        if found is None:
            return
        rtype, cur = found
        result = copy.deepcopy(cur)
        mutate(result)
        self._commit_update(rtype, cur, result)

    def _drop_finalizer(self, uid: str, finalizer: str) -> None:
        def mutate(obj: JSON) -> None:
            _meta(obj)["finalizers"] = [f for f in _meta(obj).get("finalizers") or []
                                        if f != finalizer]
        self._update_internal(uid, mutate)

    def _after_marked(self, rtype: ResourceType, obj: JSON) -> None:
        """Emulated controllers reacting to an object getting a deletionTimestamp."""
        uid = _meta(obj)["uid"]
        finalizers = _meta(obj).get("finalizers") or []
        if "orphan" in finalizers:
            for _, dependent in self._dependents(uid):
                self._update_internal(_meta(dependent)["uid"], lambda o: _meta(o).update(
                    ownerReferences=[r for r in _meta(o)["ownerReferences"]
                                     if r.get("uid") != uid]))
            self._drop_finalizer(uid, "orphan")
        if "foregroundDeletion" in finalizers:
            for dtype, dependent in self._dependents(uid):
                self._delete(dtype, dependent)
            self._maybe_finish_foreground(uid)
        if rtype.key == NAMESPACES:
            namespace = _meta(obj)["name"]
            for otype, item in self._all_objects():
                if otype.namespaced and _meta(item).get("namespace") == namespace:
                    self._delete(otype, item)
            self._maybe_finish_namespace(namespace)
        if rtype.key == CRDS:
            key = (obj["spec"]["group"], obj["spec"]["names"]["plural"])
            for item in list(self.objects.get(key, {}).values()):
                self._delete(self.types[key], item)
            self._maybe_finish_crd(obj)

    def _after_removed(self, rtype: ResourceType, obj: JSON) -> None:
        """Emulated controllers reacting to an object being gone for good."""
        uid = _meta(obj)["uid"]
        # Garbage collector, background propagation: dependents without other live owners go.
        for _, stale in self._dependents(uid):
            found = self._by_uid(_meta(stale)["uid"])
            if found is None:
                continue
            dtype, dependent = found
            refs = _meta(dependent).get("ownerReferences") or []
            alive = [r for r in refs if r.get("uid") in self.uids]
            if alive:
                self._update_internal(_meta(dependent)["uid"],
                                      lambda o, alive=alive: _meta(o).update(ownerReferences=alive))
            else:
                self._delete(dtype, dependent)
        for ref in _meta(obj).get("ownerReferences") or []:
            self._maybe_finish_foreground(ref.get("uid"))
        if rtype.key == CRDS:
            self._unregister_crd(obj)
        if rtype.namespaced:
            self._maybe_finish_namespace(_meta(obj).get("namespace") or "")
        if rtype.custom and (crd := self._crd_of(rtype)) is not None:
            self._maybe_finish_crd(crd)

    def _maybe_finish_foreground(self, uid: str | None) -> None:
        found = self._by_uid(uid)
        if found and "foregroundDeletion" in (_meta(found[1]).get("finalizers") or []) and \
                _meta(found[1]).get("deletionTimestamp") and not self._dependents(uid or ""):
            self._drop_finalizer(uid or "", "foregroundDeletion")

    def _maybe_finish_namespace(self, namespace: str) -> None:
        ns = self.objects[NAMESPACES].get(("", namespace))
        if ns is None or not _meta(ns).get("deletionTimestamp"):
            return
        if not self._blocked(self.types[NAMESPACES], ns):
            self._remove(self.types[NAMESPACES], ns)

    def _maybe_finish_crd(self, crd: JSON) -> None:
        crd = self.objects[CRDS].get(("", _meta(crd)["name"])) or {}
        if not crd or not _meta(crd).get("deletionTimestamp"):
            return
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        if not self.objects.get(key):
            self._drop_finalizer(_meta(crd)["uid"], CRD_CLEANUP_FINALIZER)

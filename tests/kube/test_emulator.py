"""Tests of the Kubernetes API-server emulator itself, including a real kopf operator."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kube.emulator import KubeEmulator
from tests.kube.fixtures import (  # noqa: F401 - the fixture is used by name
    http_client, kube_emulator, object_path, post_object)

JSON = dict[str, Any]
MERGE = {"Content-Type": "application/merge-patch+json"}
JSONPATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
CMS = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


def widget_crd(*, status_subresource: bool = True) -> JSON:
    spec_schema = {
        "type": "object",
        "required": ["size"],
        "properties": {
            "size": {"type": "integer", "minimum": 0},
            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
            "note": {"type": "string", "nullable": True},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "port": {"x-kubernetes-int-or-string": True},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "subresources": {"status": {}} if status_subresource else {},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": spec_schema,
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                }}},
            }],
        },
    }


def widget(name: str, size: int = 1, **spec: Any) -> JSON:
    return {"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"size": size, **spec}}


def configmap(name: str, **meta: Any) -> JSON:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta},
            "data": {"k": "v"}}


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             details: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{details()}")
        time.sleep(0.05)


@pytest.fixture
def api(kube_emulator: KubeEmulator) -> Iterator[httpx.Client]:
    with http_client(kube_emulator.url) as client:
        yield client


@pytest.fixture
def crd(api: httpx.Client) -> JSON:
    response = api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                        json=widget_crd())
    assert response.status_code == 201, response.text
    return response.json()


def assert_status(response: httpx.Response, code: int, reason: str) -> JSON:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    assert body["code"] == code and body["reason"] == reason, body
    return body


def read_events(response: httpx.Response, count: int | None = None) -> list[JSON]:
    """Read watch events (all until the server closes, or the first ``count``)."""
    events = []
    for line in response.iter_lines():
        if line.strip():
            events.append(json.loads(line))
            if count is not None and len(events) >= count:
                break
    return events


def summary(events: list[JSON]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"].get("metadata", {}).get("name", "")) for e in events]


# --- discovery ---------------------------------------------------------------------------

def test_discovery_of_builtins(api: httpx.Client) -> None:
    assert api.get("/version").json()["major"] == "1"
    assert api.get("/api").json()["versions"] == ["v1"]
    core = {r["name"]: r for r in api.get("/api/v1").json()["resources"]}
    assert core["configmaps"]["namespaced"] and core["configmaps"]["shortNames"] == ["cm"]
    assert not core["namespaces"]["namespaced"] and "namespaces/status" in core
    assert "configmaps/status" not in core and "watch" in core["configmaps"]["verbs"]
    groups = {g["name"]: g for g in api.get("/apis").json()["groups"]}
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert "coordination.k8s.io" in groups and "autoscaling" in groups
    assert not any("kopf" in name for name in groups)  # no peering CRDs unless created
    apps = {r["name"]: r for r in api.get("/apis/apps/v1").json()["resources"]}
    assert apps["deployments"]["kind"] == "Deployment" and "deployments/status" in apps
    assert_status(api.get("/apis/kopf.dev/v1"), 404, "NotFound")
    assert_status(api.get("/apis/kopf.dev/v1/clusterkopfpeerings"), 404, "NotFound")
    assert_status(api.get("/api/v1/nothings"), 404, "NotFound")


def test_crd_registers_and_unregisters_a_resource(api: httpx.Client, crd: JSON) -> None:
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"
    assert {c["type"] for c in crd["status"]["conditions"]} == {"NamesAccepted", "Established"}
    groups = {g["name"]: g for g in api.get("/apis").json()["groups"]}
    assert groups["example.com"]["preferredVersion"]["version"] == "v1"
    resources = {r["name"]: r for r in api.get("/apis/example.com/v1").json()["resources"]}
    assert resources["widgets"]["singularName"] == "widget"
    assert resources["widgets"]["shortNames"] == ["wd"] and resources["widgets"]["namespaced"]
    assert "widgets/status" in resources
    assert api.post(WIDGETS, json=widget("w1")).status_code == 201
    assert api.get("/apis/example.com/v1/widgets").json()["items"][0]["kind"] == "Widget"

    response = api.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                          "widgets.example.com")
    assert response.status_code in (200, 202), response.text
    assert_status(api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                          "widgets.example.com"), 404, "NotFound")
    assert_status(api.get("/apis/example.com/v1"), 404, "NotFound")
    assert_status(api.get(f"{WIDGETS}/w1"), 404, "NotFound")
    assert "example.com" not in {g["name"] for g in api.get("/apis").json()["groups"]}


def test_crd_deletion_waits_for_instances_with_finalizers(api: httpx.Client, crd: JSON) -> None:
    obj = widget("w1")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    assert api.post(WIDGETS, json=obj).status_code == 201
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"
    assert api.delete(crd_path).status_code == 202
    assert api.get(crd_path).json()["metadata"]["deletionTimestamp"]
    assert api.get(f"{WIDGETS}/w1").json()["metadata"]["deletionTimestamp"]
    assert_status(api.post(WIDGETS, json=widget("w2")), 405, "MethodNotAllowed")
    api.patch(f"{WIDGETS}/w1", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert_status(api.get(crd_path), 404, "NotFound")


def test_crd_with_several_versions(api: httpx.Client) -> None:
    crd = widget_crd()
    v1 = crd["spec"]["versions"][0]
    crd["spec"]["versions"] = [{**v1, "name": "v1beta1", "storage": False}, v1,
                               {**v1, "name": "v2alpha1", "served": False, "storage": False}]
    assert api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                    json=crd).status_code == 201
    group = next(g for g in api.get("/apis").json()["groups"] if g["name"] == "example.com")
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    assert group["preferredVersion"]["version"] == "v1"
    beta = "/apis/example.com/v1beta1/namespaces/default/widgets"
    obj = {**widget("w1"), "apiVersion": "example.com/v1beta1"}
    assert api.post(beta, json=obj).json()["apiVersion"] == "example.com/v1beta1"
    assert api.get(f"{WIDGETS}/w1").json()["apiVersion"] == "example.com/v1"
    assert_status(api.post(WIDGETS, json=obj), 400, "BadRequest")  # apiVersion mismatch
    assert_status(api.get("/apis/example.com/v2alpha1/namespaces/default/widgets"),
                  404, "NotFound")


def test_invalid_crd_is_rejected(api: httpx.Client) -> None:
    bad = widget_crd()
    bad["metadata"]["name"] = "gadgets.example.com"
    del bad["spec"]["versions"][0]["schema"]
    body = assert_status(api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                  json=bad), 422, "Invalid")
    assert "metadata.name" in body["message"] and "openAPIV3Schema" in body["message"]


# --- CRUD and metadata -------------------------------------------------------------------

def test_create_sets_server_metadata(api: httpx.Client) -> None:
    sent = configmap("a")
    sent["metadata"].update(uid="forged", creationTimestamp="2000-01-01T00:00:00Z",
                            generation=42)
    created = api.post(CMS, json=sent)
    assert created.status_code == 201, created.text
    meta = created.json()["metadata"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}",
                        meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["creationTimestamp"] != "2000-01-01T00:00:00Z"
    assert meta["generation"] == 1 and meta["namespace"] == "default"
    got = api.get(f"{CMS}/a").json()
    assert got["metadata"] == meta and got["kind"] == "ConfigMap" and got["apiVersion"] == "v1"

    second = api.post(CMS, json=configmap("b")).json()
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    generated = api.post(CMS, json={"metadata": {"generateName": "gen-"}}).json()
    assert re.fullmatch(r"gen-[a-z0-9]{5}", generated["metadata"]["name"])

    with_rv = configmap("c", resourceVersion="5")
    assert api.post(CMS, json=with_rv).status_code == 500  # as the real server does


def test_error_statuses(api: httpx.Client) -> None:
    assert api.post(CMS, json=configmap("a")).status_code == 201
    body = assert_status(api.post(CMS, json=configmap("a")), 409, "AlreadyExists")
    assert body["details"] == {"name": "a", "kind": "configmaps"}
    body = assert_status(api.get(f"{CMS}/missing"), 404, "NotFound")
    assert body["details"] == {"name": "missing", "kind": "configmaps"}
    assert_status(api.put(f"{CMS}/missing", json=configmap("missing")), 404, "NotFound")
    assert_status(api.patch(f"{CMS}/missing", json={}, headers=MERGE), 404, "NotFound")
    assert_status(api.delete(f"{CMS}/missing"), 404, "NotFound")
    assert_status(api.post(CMS, content=b"{not json",
                           headers={"Content-Type": "application/json"}), 400, "BadRequest")
    assert_status(api.post(CMS, json=configmap("x", namespace="other")), 400, "BadRequest")
    assert_status(api.post(CMS, json=configmap("Bad_Name")), 422, "Invalid")
    assert_status(api.post(CMS, json=configmap("x", labels={"a": "b c"})), 422, "Invalid")
    assert_status(api.post(CMS, json={"apiVersion": "v1", "kind": "Secret",
                                      "metadata": {"name": "x"}}), 400, "BadRequest")
    assert_status(api.get("/apis/nope.example.com/v1/things"), 404, "NotFound")
    assert_status(api.get(f"{CMS}/a/status"), 404, "NotFound")


def test_objects_in_undeclared_namespaces_are_allowed(api: httpx.Client) -> None:
    path = "/api/v1/namespaces/elsewhere/configmaps"
    assert api.post(path, json=configmap("a")).status_code == 201
    assert api.get(f"{path}/a").json()["metadata"]["namespace"] == "elsewhere"
    names = [i["metadata"]["name"] for i in api.get("/api/v1/namespaces").json()["items"]]
    assert "default" in names and "elsewhere" not in names


def test_resource_version_and_generation_rules(api: httpx.Client) -> None:
    cm = api.post(CMS, json=configmap("a")).json()
    rv0 = int(cm["metadata"]["resourceVersion"])

    labelled = api.patch(f"{CMS}/a", json={"metadata": {"labels": {"x": "y"}}},
                         headers=MERGE).json()
    assert int(labelled["metadata"]["resourceVersion"]) > rv0
    assert labelled["metadata"]["generation"] == 1  # metadata-only change

    changed = api.patch(f"{CMS}/a", json={"data": {"k": "w"}}, headers=MERGE).json()
    assert changed["metadata"]["generation"] == 2
    rv2 = changed["metadata"]["resourceVersion"]

    noop = api.patch(f"{CMS}/a", json={"data": {"k": "w"}}, headers=MERGE).json()
    assert noop["metadata"]["resourceVersion"] == rv2
    noop = api.put(f"{CMS}/a", json=changed).json()
    assert noop["metadata"]["resourceVersion"] == rv2

    stale = dict(changed, data={"k": "z"})
    stale["metadata"] = dict(changed["metadata"], resourceVersion=str(rv0))
    assert_status(api.put(f"{CMS}/a", json=stale), 409, "Conflict")
    assert_status(api.patch(f"{CMS}/a", headers=MERGE, json={
        "metadata": {"resourceVersion": str(rv0)}, "data": {"k": "z"}}), 409, "Conflict")

    replaced = api.put(f"{CMS}/a", json={"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "a", "resourceVersion": rv2},
                                         "data": {"k": "put"}})
    assert replaced.status_code == 200, replaced.text
    meta = replaced.json()["metadata"]
    assert meta["uid"] == cm["metadata"]["uid"] and meta["generation"] == 3
    assert "labels" not in meta  # PUT replaces everything but the server-set fields
    assert_status(api.put(f"{CMS}/a", json=configmap("other")), 400, "BadRequest")


def test_status_subresource_isolation(api: httpx.Client, crd: JSON) -> None:
    sent = widget("w1", size=1)
    sent["status"] = {"phase": "forged"}
    created = api.post(WIDGETS, json=sent).json()
    assert "status" not in created

    main = api.patch(f"{WIDGETS}/w1", headers=MERGE,
                     json={"spec": {"size": 2}, "status": {"phase": "ignored"}}).json()
    assert main["spec"]["size"] == 2 and "status" not in main
    assert main["metadata"]["generation"] == 2

    status = api.patch(f"{WIDGETS}/w1/status", headers=MERGE,
                       json={"spec": {"size": 99}, "status": {"phase": "Ready"},
                             "metadata": {"labels": {"ignored": "yes"}}}).json()
    assert status["status"] == {"phase": "Ready"} and status["spec"]["size"] == 2
    assert status["metadata"]["generation"] == 2 and "labels" not in status["metadata"]
    assert int(status["metadata"]["resourceVersion"]) > int(main["metadata"]["resourceVersion"])
    assert api.get(f"{WIDGETS}/w1/status").json()["status"] == {"phase": "Ready"}

    put = api.put(f"{WIDGETS}/w1/status", json={**status, "status": {"phase": "Put"}})
    assert put.status_code == 200 and put.json()["status"] == {"phase": "Put"}
    unversioned = {**status, "metadata": {"name": "w1"}}
    assert_status(api.put(f"{WIDGETS}/w1", json=unversioned), 422, "Invalid")


def test_status_is_part_of_the_object_without_the_subresource(api: httpx.Client) -> None:
    api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
             json=widget_crd(status_subresource=False))
    resources = [r["name"] for r in api.get("/apis/example.com/v1").json()["resources"]]
    assert resources == ["widgets"]
    sent = widget("w1")
    sent["status"] = {"phase": "kept"}
    assert api.post(WIDGETS, json=sent).json()["status"] == {"phase": "kept"}
    patched = api.patch(f"{WIDGETS}/w1", headers=MERGE, json={"status": {"phase": "x"}}).json()
    assert patched["status"] == {"phase": "x"} and patched["metadata"]["generation"] == 1
    assert_status(api.patch(f"{WIDGETS}/w1/status", headers=MERGE, json={}), 404, "NotFound")


# --- patches ---------------------------------------------------------------------------

def test_json_patch(api: httpx.Client) -> None:
    cm = api.post(CMS, json=configmap("a")).json()
    rv = cm["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/labels", "value": {"a/b": "1"}},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "x/z"},
        {"op": "replace", "path": "/data/k", "value": "v2"},
        {"op": "copy", "from": "/data/k", "path": "/data/copied"},
        {"op": "move", "from": "/data/copied", "path": "/data/moved"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    response = api.patch(f"{CMS}/a", json=ops, headers=JSONPATCH)
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["data"] == {"k": "v2", "moved": "v2"}
    assert patched["metadata"]["labels"] == {"a/b": "1"}
    assert patched["metadata"]["finalizers"] == ["x/z"]

    stale = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
             {"op": "replace", "path": "/data/k", "value": "never"}]
    assert_status(api.patch(f"{CMS}/a", json=stale, headers=JSONPATCH), 422, "Invalid")
    assert_status(api.patch(f"{CMS}/a", headers=JSONPATCH,
                            json=[{"op": "remove", "path": "/data/nope"}]), 422, "Invalid")
    assert_status(api.patch(f"{CMS}/a", headers=JSONPATCH,
                            json=[{"op": "replace", "path": "/spec/x", "value": 1}]),
                  422, "Invalid")
    assert_status(api.patch(f"{CMS}/a", json={"op": "add"}, headers=JSONPATCH),
                  400, "BadRequest")
    assert api.get(f"{CMS}/a").json()["data"] == {"k": "v2", "moved": "v2"}


def test_merge_and_strategic_patches(api: httpx.Client, crd: JSON) -> None:
    api.post(CMS, json=configmap("a", labels={"keep": "1", "drop": "1"}))
    patched = api.patch(f"{CMS}/a", headers=MERGE, json={
        "metadata": {"labels": {"drop": None, "new": "1"}}, "data": {"k": None, "z": "1"}}).json()
    assert patched["metadata"]["labels"] == {"keep": "1", "new": "1"}
    assert patched["data"] == {"z": "1"}
    smp = api.patch(f"{CMS}/a", headers=STRATEGIC, json={"data": {"y": "2"}})
    assert smp.status_code == 200 and smp.json()["data"] == {"z": "1", "y": "2"}
    assert_status(api.patch(f"{CMS}/a", headers={"Content-Type": "text/plain"}, content=b"{}"),
                  415, "UnsupportedMediaType")
    api.post(WIDGETS, json=widget("w1"))
    assert_status(api.patch(f"{WIDGETS}/w1", headers=STRATEGIC, json={"spec": {"size": 3}}),
                  415, "UnsupportedMediaType")
    assert_status(api.patch(f"{CMS}/a", headers=MERGE, content=b"nope"), 400, "BadRequest")


# --- deletion, finalizers, garbage collection ---------------------------------------------

def test_finalizer_deletion_flow(api: httpx.Client) -> None:
    created = api.post(CMS, json=configmap("a", finalizers=["example.com/hold"])).json()
    with api.stream("GET", f"{CMS}?watch=true&resourceVersion="
                    f"{created['metadata']['resourceVersion']}") as watch:
        deleting = api.delete(f"{CMS}/a")
        assert deleting.status_code == 202, deleting.text
        meta = deleting.json()["metadata"]
        assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 0
        assert meta["generation"] == 2  # a real server bumps it when marking for deletion
        assert api.get(f"{CMS}/a").json()["metadata"]["deletionTimestamp"]
        assert api.delete(f"{CMS}/a").status_code == 202  # still there, no change
        assert_status(api.patch(f"{CMS}/a", headers=MERGE, json={
            "metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}),
            422, "Invalid")
        assert api.patch(f"{CMS}/a", headers=MERGE, json={"data": {"k": "x"}}).status_code == 200
        final = api.patch(f"{CMS}/a", headers=MERGE, json={"metadata": {"finalizers": []}})
        assert final.status_code == 200, final.text
        assert_status(api.get(f"{CMS}/a"), 404, "NotFound")
        events = read_events(watch, 3)
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert events[0]["object"]["metadata"]["deletionTimestamp"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3


def test_owner_reference_garbage_collection(api: httpx.Client) -> None:
    owner = api.post(CMS, json=configmap("owner")).json()
    other = api.post(CMS, json=configmap("other")).json()

    def ref(obj: JSON) -> JSON:
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": obj["metadata"]["name"],
                "uid": obj["metadata"]["uid"]}

    child = api.post(CMS, json=configmap("child", ownerReferences=[ref(owner)])).json()
    api.post(CMS, json=configmap("grandchild", ownerReferences=[ref(child)]))
    api.post(CMS, json=configmap("shared", ownerReferences=[ref(owner), ref(other)]))
    api.post(CMS, json=configmap("held", ownerReferences=[ref(owner)],
                                 finalizers=["example.com/hold"]))
    api.post(CMS, json=configmap("unrelated"))

    assert api.delete(f"{CMS}/owner").status_code == 200
    for name in ("owner", "child", "grandchild"):
        assert_status(api.get(f"{CMS}/{name}"), 404, "NotFound")
    shared = api.get(f"{CMS}/shared").json()
    assert shared["metadata"]["ownerReferences"] == [ref(other)]
    assert api.get(f"{CMS}/held").json()["metadata"]["deletionTimestamp"]
    assert api.get(f"{CMS}/unrelated").status_code == 200


def test_orphan_and_foreground_propagation(api: httpx.Client) -> None:
    owner = api.post(CMS, json=configmap("owner")).json()
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
           "uid": owner["metadata"]["uid"]}
    api.post(CMS, json=configmap("kept", ownerReferences=[ref]))
    assert api.request("DELETE", f"{CMS}/owner",
                       json={"propagationPolicy": "Orphan"}).status_code in (200, 202)
    assert_status(api.get(f"{CMS}/owner"), 404, "NotFound")
    assert "ownerReferences" not in api.get(f"{CMS}/kept").json()["metadata"] or \
        api.get(f"{CMS}/kept").json()["metadata"]["ownerReferences"] == []

    owner = api.post(CMS, json=configmap("owner2")).json()
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2",
           "uid": owner["metadata"]["uid"]}
    api.post(CMS, json=configmap("dep", ownerReferences=[ref], finalizers=["example.com/h"]))
    response = api.request("DELETE", f"{CMS}/owner2", json={"propagationPolicy": "Foreground"})
    assert response.status_code == 202
    assert "foregroundDeletion" in api.get(f"{CMS}/owner2").json()["metadata"]["finalizers"]
    api.patch(f"{CMS}/dep", headers=MERGE, json={"metadata": {"finalizers": None}})
    assert_status(api.get(f"{CMS}/dep"), 404, "NotFound")
    assert_status(api.get(f"{CMS}/owner2"), 404, "NotFound")


def test_namespace_deletion(api: httpx.Client) -> None:
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": "tmp"}}).status_code == 201
    ns = api.get("/api/v1/namespaces/tmp").json()
    assert ns["status"]["phase"] == "Active"
    path = "/api/v1/namespaces/tmp/configmaps"
    api.post(path, json=configmap("a"))
    api.post(path, json=configmap("b", finalizers=["example.com/hold"]))
    assert api.delete("/api/v1/namespaces/tmp").status_code == 202
    assert api.get("/api/v1/namespaces/tmp").json()["status"]["phase"] == "Terminating"
    assert_status(api.get(f"{path}/a"), 404, "NotFound")
    assert_status(api.post(path, json=configmap("c")), 403, "Forbidden")
    api.patch(f"{path}/b", headers=MERGE, json={"metadata": {"finalizers": None}})
    assert_status(api.get("/api/v1/namespaces/tmp"), 404, "NotFound")
    assert_status(api.delete("/api/v1/namespaces/default"), 403, "Forbidden")


def test_secret_string_data(api: httpx.Client) -> None:
    path = "/api/v1/namespaces/default/secrets"
    created = api.post(path, json={"metadata": {"name": "s"}, "stringData": {"a": "hi"}}).json()
    assert created["data"] == {"a": "aGk="} and "stringData" not in created
    assert created["type"] == "Opaque"
    assert_status(api.post(path, json={"metadata": {"name": "t"}, "data": {"a": "%%%"}}),
                  400, "BadRequest")


# --- list & selectors --------------------------------------------------------------------

def test_list_with_label_and_field_selectors(api: httpx.Client) -> None:
    other = "/api/v1/namespaces/other/configmaps"
    api.post(CMS, json=configmap("b", labels={"app": "web", "tier": "front"}))
    api.post(CMS, json=configmap("a", labels={"app": "db"}))
    api.post(CMS, json=configmap("c"))
    api.post(other, json=configmap("a", labels={"app": "web"}))

    def names(path: str, **params: str) -> list[str]:
        response = api.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["kind"] == "ConfigMapList" and body["apiVersion"] == "v1"
        assert int(body["metadata"]["resourceVersion"]) > 0
        return [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in body["items"]]

    everything = "/api/v1/configmaps"
    assert names(CMS) == ["default/a", "default/b", "default/c"]
    assert names(everything) == ["default/a", "default/b", "default/c", "other/a"]
    assert names(everything, labelSelector="app=web") == ["default/b", "other/a"]
    assert names(everything, labelSelector="app==web,tier") == ["default/b"]
    assert names(everything, labelSelector="app!=web") == ["default/a", "default/c"]
    assert names(everything, labelSelector="app in (db, web),!tier") == ["default/a", "other/a"]
    assert names(everything, labelSelector="app notin (web)") == ["default/a", "default/c"]
    assert names(everything, labelSelector="!app") == ["default/c"]
    assert names(everything, fieldSelector="metadata.name=a") == ["default/a", "other/a"]
    assert names(everything, fieldSelector="metadata.namespace!=default") == ["other/a"]
    assert names(everything, fieldSelector="metadata.name=a,metadata.namespace=other",
                 labelSelector="app") == ["other/a"]
    assert_status(api.get(everything, params={"fieldSelector": "data.k=v"}), 400, "BadRequest")
    assert_status(api.get(everything, params={"labelSelector": "a in (b"}), 400, "BadRequest")
    assert "apiVersion" not in api.get(CMS).json()["items"][0]  # like typed lists


# --- watches -----------------------------------------------------------------------------

def test_watch_sends_current_state_then_live_events(api: httpx.Client) -> None:
    api.post(CMS, json=configmap("a"))
    api.post(CMS, json=configmap("b"))
    with api.stream("GET", CMS, params={"watch": "true"}) as watch:
        assert watch.status_code == 200
        api.patch(f"{CMS}/a", headers=MERGE, json={"data": {"k": "2"}})
        api.patch(f"{CMS}/a", headers=MERGE, json={"data": {"k": "2"}})  # a no-op: no event
        api.post(CMS, json=configmap("c"))
        api.post("/api/v1/namespaces/other/configmaps", json=configmap("x"))  # not watched
        api.post("/api/v1/namespaces/default/secrets", json={"metadata": {"name": "s"}})
        api.delete(f"{CMS}/b")
        events = read_events(watch, 5)
    assert summary(events) == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"),
                               ("ADDED", "c"), ("DELETED", "b")]
    assert events[0]["object"]["kind"] == "ConfigMap"
    live_rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events[2:]]
    assert live_rvs == sorted(live_rvs)


def test_watch_replays_history_and_expires_old_versions() -> None:
    with KubeEmulator(history_size=5) as emu, http_client(emu.url) as api:
        first = api.post(CMS, json=configmap("a")).json()
        rv1 = first["metadata"]["resourceVersion"]
        api.patch(f"{CMS}/a", headers=MERGE, json={"data": {"k": "2"}})
        api.post(CMS, json=configmap("b"))
        with api.stream("GET", CMS, params={"watch": "1", "resourceVersion": rv1}) as watch:
            api.delete(f"{CMS}/a")
            events = read_events(watch, 3)
        assert summary(events) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]

        for i in range(6):
            api.post(CMS, json=configmap(f"n{i}"))
        with api.stream("GET", CMS, params={"watch": "true", "resourceVersion": rv1}) as watch:
            events = read_events(watch)  # the server closes right after the error
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        status = events[0]["object"]
        assert status["kind"] == "Status" and status["code"] == 410
        assert status["reason"] == "Expired"


def test_watch_timeout_and_bookmarks() -> None:
    with KubeEmulator(bookmark_interval=0.2) as emu, http_client(emu.url) as api:
        started = time.monotonic()
        with api.stream("GET", CMS, params={"watch": "true", "timeoutSeconds": "1",
                                            "allowWatchBookmarks": "true"}) as watch:
            events = read_events(watch)
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 5, elapsed
        assert events and {e["type"] for e in events} == {"BOOKMARK"}
        assert events[-1]["object"]["metadata"]["resourceVersion"]

        params = {"watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true",
                  "resourceVersionMatch": "NotOlderThan", "timeoutSeconds": "1"}
        api.post(CMS, json=configmap("a"))
        with api.stream("GET", CMS, params=params) as watch:
            events = read_events(watch, 2)
        assert summary(events)[0] == ("ADDED", "a") and events[1]["type"] == "BOOKMARK"
        annotations = events[1]["object"]["metadata"]["annotations"]
        assert annotations == {"k8s.io/initial-events-end": "true"}


def test_watch_with_selector_sees_objects_enter_and_leave(api: httpx.Client) -> None:
    with api.stream("GET", CMS, params={"watch": "true", "labelSelector": "app=web"}) as watch:
        api.post(CMS, json=configmap("a"))
        api.patch(f"{CMS}/a", headers=MERGE, json={"metadata": {"labels": {"app": "web"}}})
        api.patch(f"{CMS}/a", headers=MERGE, json={"data": {"k": "2"}})
        api.patch(f"{CMS}/a", headers=MERGE, json={"metadata": {"labels": {"app": "db"}}})
        api.delete(f"{CMS}/a")
        api.post(CMS, json=configmap("b", labels={"app": "web"}))
        events = read_events(watch, 4)
    assert summary(events) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a"),
                               ("ADDED", "b")]
    assert events[2]["object"]["metadata"]["labels"] == {"app": "db"}


def test_watch_ends_when_the_emulator_stops() -> None:
    emu = KubeEmulator().start()
    api = http_client(emu.url)
    try:
        with api.stream("GET", CMS, params={"watch": "true"}) as watch:
            timer = threading.Timer(0.3, emu.stop)
            timer.start()
            started = time.monotonic()
            try:
                events = read_events(watch)
            except httpx.HTTPError:
                events = []
            assert time.monotonic() - started < 5
            assert events == []
            timer.join(timeout=10)
    finally:
        api.close()
        emu.stop()
    assert not emu._thread or not emu._thread.is_alive()


# --- schema validation, defaulting and pruning -------------------------------------------

def test_custom_resource_schema(api: httpx.Client, crd: JSON) -> None:
    created = api.post(WIDGETS, json=widget("w1", size=1, unknown=1, note=None, port="http",
                                            extra={"any": {"thing": [1]}}))
    assert created.status_code == 201, created.text
    spec = created.json()["spec"]
    assert spec == {"size": 1, "color": "red", "note": None, "port": "http",
                    "extra": {"any": {"thing": [1]}}}
    assert "spec.unknown" in created.headers.get("Warning", "")
    meta = created.json()["metadata"]
    assert "bogus" not in api.patch(f"{WIDGETS}/w1", headers=MERGE, json={
        "metadata": {"bogus": 1}}).json()["metadata"]
    assert api.get(f"{WIDGETS}/w1").json()["metadata"]["resourceVersion"] == \
        meta["resourceVersion"]  # pruned to a no-op

    body = assert_status(api.post(WIDGETS, json=widget("w2", size="big")), 422, "Invalid")
    assert "spec.size" in body["message"]
    assert body["details"]["causes"][0]["field"] == "spec.size"
    body = assert_status(api.post(WIDGETS, json=widget("w3", size=-1, color="green",
                                                       tags=["ok", 5])), 422, "Invalid")
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {"spec.size", "spec.color", "spec.tags[1]"}
    no_size = {"apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "w4"}, "spec": {}}
    body = assert_status(api.post(WIDGETS, json=no_size), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.size"
    assert "Required value" in body["message"]
    assert_status(api.patch(f"{WIDGETS}/w1", headers=MERGE, json={"spec": {"size": "x"}}),
                  422, "Invalid")
    assert_status(api.patch(f"{WIDGETS}/w1", headers=JSONPATCH,
                            json=[{"op": "remove", "path": "/spec/size"}]), 422, "Invalid")
    assert api.get(f"{WIDGETS}/w1").json()["spec"]["size"] == 1
    assert_status(api.post(WIDGETS, json={"metadata": {"name": "w5"}, "spec": {"size": 1}}),
                  400, "BadRequest")  # custom resources need apiVersion/kind


def test_bearer_token_is_enforced() -> None:
    with KubeEmulator(token="s3cret") as emu:
        with http_client(emu.url) as anonymous:
            assert_status(anonymous.get("/api/v1/namespaces"), 401, "Unauthorized")
        with http_client(emu.url, token="s3cret") as authorized:
            assert authorized.get("/api/v1/namespaces").status_code == 200
        assert post_object(emu.url, configmap("a"), token="s3cret")["metadata"]["uid"]


def test_fixture_helpers(kube_emulator: KubeEmulator, tmp_path: Path) -> None:
    import yaml
    config = yaml.safe_load(kube_emulator.write_kubeconfig(tmp_path / "kc").read_text())
    assert config["clusters"][0]["cluster"]["server"] == kube_emulator.url
    assert config["contexts"][0]["context"]["namespace"] == "default"
    post_object(kube_emulator.url, widget_crd())
    assert object_path(kube_emulator.url, "example.com/v1", "Widget", "ns", "w") == \
        "/apis/example.com/v1/namespaces/ns/widgets/w"
    assert post_object(kube_emulator.url, widget("w"))["metadata"]["namespace"] == "default"


# --- a real kopf operator ----------------------------------------------------------------

OPERATOR = '''
import json
import os
import urllib.request

import kopf

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(path, body):
    request = urllib.request.Request(
        os.environ["EMULATOR_URL"] + path, method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with _opener.open(request, timeout=10) as response:
        return json.load(response)


@kopf.on.startup()
def configure(settings, **_):
    settings.watching.connect_timeout = 5
    settings.networking.request_timeout = 10


@kopf.on.create("example.com", "v1", "widgets")
def create_widget(name, namespace, uid, spec, patch, body, **_):
    _post(f"/api/v1/namespaces/{namespace}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config", "ownerReferences": [{
            "apiVersion": "example.com/v1", "kind": "Widget", "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}]},
        "data": {"size": str(spec["size"])},
    })
    patch.status["phase"] = "Created"
    kopf.info(body, reason="Configured", message="the configmap is created")


@kopf.on.update("example.com", "v1", "widgets", field="spec")
def update_widget(spec, meta, patch, **_):
    patch.status["phase"] = "Updated"
    patch.status["seenGeneration"] = meta["generation"]
    patch.status["size"] = spec["size"]


@kopf.on.delete("example.com", "v1", "widgets")
def delete_widget(name, namespace, **_):
    _post(f"/api/v1/namespaces/{namespace}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-deleted"}})
'''


def test_real_kopf_operator(kube_emulator: KubeEmulator, api: httpx.Client,
                            tmp_path: Path) -> None:
    assert api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                    json=widget_crd()).status_code == 201
    operator = tmp_path / "operator.py"
    operator.write_text(textwrap.dedent(OPERATOR))
    log_path = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(kube_emulator.write_kubeconfig(tmp_path / "kc")),
           "EMULATOR_URL": kube_emulator.url, "PYTHONUNBUFFERED": "1"}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(var, None)

    def log() -> str:
        text = log_path.read_text(errors="replace")
        requests = "\n".join(list(kube_emulator.request_log)[-40:])
        return f"--- kopf output ---\n{text[-6000:]}\n--- last API requests ---\n{requests}"

    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", "default",
             str(operator)], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        assert api.post(WIDGETS, json=widget("w1", size=1)).status_code == 201

        def widget_state() -> JSON:
            return api.get(f"{WIDGETS}/w1").json()

        wait_for(lambda: (widget_state().get("status") or {}).get("phase") == "Created",
                 what="the create handler's status", details=log)
        config = api.get(f"{CMS}/w1-config")
        assert config.status_code == 200, log()
        owner_uid = widget_state()["metadata"]["uid"]
        assert config.json()["metadata"]["ownerReferences"][0]["uid"] == owner_uid
        assert widget_state()["metadata"].get("finalizers"), log()
        events = wait_for(lambda: api.get("/api/v1/namespaces/default/events", params={
            "fieldSelector": "involvedObject.name=w1,reason=Configured"}).json()["items"],
            what="kopf to post an event", details=log)
        assert events[0]["involvedObject"]["uid"] == owner_uid
        assert events[0]["metadata"]["name"].startswith("kopf-event-")

        patched = api.patch(f"{WIDGETS}/w1", headers=MERGE, json={"spec": {"size": 2}}).json()
        assert patched["metadata"]["generation"] == 2
        wait_for(lambda: (widget_state().get("status") or {}).get("seenGeneration") == 2,
                 what="the update handler's status", details=log)
        assert widget_state()["status"]["size"] == 2

        assert api.delete(f"{WIDGETS}/w1").status_code == 202, log()
        wait_for(lambda: api.get(f"{WIDGETS}/w1").status_code == 404,
                 what="kopf to release the finalizer", details=log)
        assert api.get(f"{CMS}/w1-config").status_code == 404, log()  # garbage-collected
        assert api.get(f"{CMS}/w1-deleted").status_code == 200, log()  # the handler ran

        output = log_path.read_text(errors="replace")
        problems = [line for line in output.splitlines()
                    if re.search(r"\[(ERROR|CRITICAL)\s*\]|Traceback|inconsistencies", line)]
        assert not problems, log()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

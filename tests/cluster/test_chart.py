"""The chart and its operator on the real API server (acceptance).

helm install -> the operator under the chart's ServiceAccount (real RBAC) -> apply
manifests/examples -> every object Accepted, the rendered ConfigMap and Secret owned by the
AIGateway -> helm upgrade -> owner-reference garbage collection -> namespace deletion with the
operator's finalizers released -> helm uninstall: the CRDs stay, everything else of the release goes.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from .chart import chart_operator, forbidden_lines, gateway_like_its_pod, helm, install, operator_deployment
from .conftest import HELM_NAMESPACE, HELM_RELEASE
from .support import ROOT, Cluster, wait_for

AIGW = "aigw.dev/v1alpha1"
KINDS = ("aigateways", "modelroutes", "providercredentials", "tenantquotas", "guardrailpolicies")
FINALIZER = "aigw.dev/finalizer"


def examples() -> list[dict]:
    docs: list[dict] = []
    for path in sorted((ROOT / "manifests" / "examples").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def aigw_objects(cluster: Cluster, namespace: str) -> list[dict]:
    return cluster.get_json(",".join(KINDS), "-n", namespace)["items"]


def condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def all_accepted(cluster: Cluster, namespace: str, expected: int) -> list[dict] | None:
    objects = aigw_objects(cluster, namespace)
    if len(objects) == expected and all(condition(o, "Accepted").get("status") == "True" for o in objects):
        return objects
    return None


def release_objects(cluster: Cluster, release: str) -> list[str]:
    """Every object the release labelled, cluster-wide (CRDs aside)."""
    kinds = "deployments,serviceaccounts,services,configmaps,secrets,roles,rolebindings,clusterroles,clusterrolebindings"
    out = cluster.kubectl("get", kinds, "-A", "-l", f"app.kubernetes.io/instance={release}", "-o", "name")
    return [line for line in out.stdout.split() if line]


@pytest.fixture
def installed(cluster: Cluster, crds: list[str]):
    install(cluster, HELM_RELEASE, HELM_NAMESPACE)
    yield HELM_RELEASE
    helm(cluster, "uninstall", HELM_RELEASE, "-n", HELM_NAMESPACE, "--ignore-not-found", check=False)


def test_install_examples_accepted_upgrade_gc_uninstall(cluster: Cluster, installed: str, new_namespace, tmp_path: Path):
    assert release_objects(cluster, installed), "helm install created nothing"
    operator = chart_operator(cluster, installed, HELM_NAMESPACE, tmp_path)
    try:
        # --- every example object is Accepted ------------------------------------------------
        app = new_namespace()
        docs = examples()
        cluster.apply(docs, namespace=app)
        expected = sum(1 for d in docs if d["apiVersion"] == AIGW)
        objects = wait_for(lambda: all_accepted(cluster, app, expected), timeout=60,
                           what=f"{expected} aigw objects Accepted in {app}")
        # kopf puts its finalizer only on kinds with deletion handlers; whatever is there is ours,
        # and the namespace deletion below waits for it to be released.
        assert {f for o in objects for f in o["metadata"].get("finalizers", [])} <= {FINALIZER}
        (gateway,) = [o for o in objects if o["kind"] == "AIGateway"]
        gw_name, uid = gateway["metadata"]["name"], gateway["metadata"]["uid"]

        # --- the rendered ConfigMap and Secret, owned by the AIGateway ------------------------
        rendered = wait_for(lambda: cluster.exists(f"configmap/{gw_name}-config", "-n", app)
                            and cluster.exists(f"secret/{gw_name}-credentials", "-n", app), timeout=30,
                            what="rendered ConfigMap and Secret")
        assert rendered
        for ref in (f"configmap/{gw_name}-config", f"secret/{gw_name}-credentials", f"deployment/{gw_name}"):
            owners = cluster.get_json(ref, "-n", app)["metadata"].get("ownerReferences") or []
            assert [o["uid"] for o in owners] == [uid], (ref, owners)
        config = json.loads(cluster.get_json(f"configmap/{gw_name}-config", "-n", app)["data"]["config.json"])
        assert {r["model"] for r in config["routes"]} >= {"llama-3.1-8b"}
        gateway = cluster.get_json(f"aigateway/{gw_name}", "-n", app)
        assert gateway["status"].get("observedGeneration") == gateway["metadata"]["generation"]

        # --- a gateway process loads that config through the API, as the gateway's ServiceAccount --
        proc, url, log_path = gateway_like_its_pod(cluster, app, gw_name, tmp_path)
        try:
            def ready() -> dict | None:
                assert proc.poll() is None, log_path.read_text()
                try:
                    r = httpx.get(url + "/readyz", timeout=1)
                except httpx.HTTPError:
                    return None
                return r.json() if r.status_code == 200 else None

            readyz = wait_for(ready, timeout=30, what="the gateway ready with the rendered config")
            assert readyz["generation"] == config["generation"], readyz
            # a change reaches the running gateway through its watch
            cluster.kubectl("patch", "modelroute", "llama-3-1-8b", "-n", app, "--type=merge",
                            "-p", '{"spec": {"aliases": ["llama-small"]}}')
            wait_for(lambda: (ready() or {}).get("generation", 0) > readyz["generation"], timeout=30,
                     what="the gateway serving the next generation")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        gateway_log = log_path.read_text()
        assert proc.returncode != 97 and "FORBIDDEN IMPORT" not in gateway_log, gateway_log
        assert not forbidden_lines(gateway_log), gateway_log
        assert "failed" not in gateway_log, gateway_log

        # --- helm upgrade changes the operator's Deployment ------------------------------------
        helm(cluster, "upgrade", installed, str(ROOT / "helm" / "aigw"), "-n", HELM_NAMESPACE, "--reuse-values",
             "--set", "operator.watchTimeoutSeconds=240")
        env = operator_deployment(cluster, installed, HELM_NAMESPACE)["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "AIGW_OPERATOR_WATCH_TIMEOUT", "value": "240"} in env

        # --- owner-reference garbage collection: the AIGateway goes, its objects follow --------
        cluster.kubectl("delete", "aigateway", gw_name, "-n", app, "--wait=false")
        wait_for(lambda: not cluster.exists(f"configmap/{gw_name}-config", "-n", app)
                 and not cluster.exists(f"secret/{gw_name}-credentials", "-n", app)
                 and not cluster.exists(f"deployment/{gw_name}", "-n", app)
                 and not cluster.exists(f"aigateway/{gw_name}", "-n", app), timeout=60,
                 what="the AIGateway and its rendered objects garbage-collected")

        # --- namespace deletion: the operator releases its finalizers ---------------------------
        cluster.kubectl("delete", "namespace", app, "--wait=false")
        wait_for(lambda: not cluster.exists(f"namespace/{app}"), timeout=90, what=f"namespace {app} deleted")

        assert operator.alive(), operator.log()[-3000:]
    finally:
        operator.stop()
    log = operator.log_path.read_text(errors="replace")
    assert not forbidden_lines(log), "\n".join(forbidden_lines(log)[:20])
    assert "Activity 'login' succeeded" in log  # kopf logged in through the official client

    # --- helm uninstall: the CRDs stay, the rest of the release goes ---------------------------
    helm(cluster, "uninstall", installed, "-n", HELM_NAMESPACE, "--wait")
    assert release_objects(cluster, installed) == []
    kept = {c["metadata"]["name"] for c in cluster.get_json("crd")["items"] if c["spec"]["group"] == "aigw.dev"}
    assert len(kept) == 5


def test_namespaced_mode_runs_without_a_403(cluster: Cluster, crds: list[str], new_namespace, tmp_path: Path):
    """watchNamespaces: a Role per watched namespace and no cluster-wide reads; the operator must
    not ask for more (kopf lists namespaces cluster-wide unless it is given plain names)."""
    team_a, team_b, elsewhere = new_namespace(), new_namespace(), new_namespace()
    release, home = "aigw-ns", new_namespace()
    install(cluster, release, home, "--set", "crds.enabled=false", "--set", "aggregateClusterRoles=false",
            "--set-json", f'operator.watchNamespaces=["{team_a}","{team_b}"]')
    operator = chart_operator(cluster, release, home, tmp_path)
    try:
        docs = examples()
        expected = sum(1 for d in docs if d["apiVersion"] == AIGW)
        for namespace in (team_a, team_b, elsewhere):
            cluster.apply(docs, namespace=namespace)
        for namespace in (team_a, team_b):
            wait_for(lambda: all_accepted(cluster, namespace, expected), timeout=60,
                     what=f"{expected} aigw objects Accepted in {namespace}")
        # the operator stays out of namespaces it does not watch
        assert not any(condition(o, "Accepted") for o in aigw_objects(cluster, elsewhere))
        assert not cluster.exists("configmap/aigw-config", "-n", elsewhere)
        assert operator.alive(), operator.log()[-3000:]
    finally:
        operator.stop()
        helm(cluster, "uninstall", release, "-n", home, "--ignore-not-found", check=False)
    log = operator.log_path.read_text(errors="replace")
    assert not forbidden_lines(log), "\n".join(forbidden_lines(log)[:20])

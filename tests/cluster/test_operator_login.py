"""The operator logs in through the official client: a kubeconfig whose user is an exec plugin
(as `aws eks get-token` or `gke-gcloud-auth-plugin` are) works for kopf and for the operator's own
calls. The plugin here prints a TokenRequest token as an ExecCredential."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import yaml

from tests.operator.support import OperatorProcess

from .chart import forbidden_lines
from .support import Cluster, wait_for

G = "aigw.dev/v1alpha1"


def exec_kubeconfig(cluster: Cluster, token: str, directory: Path, namespace: str) -> Path:
    plugin = directory / "token-plugin"
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}
    plugin.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(credential))})\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "exec",
        "clusters": [{"name": "local", "cluster": {"server": cluster.server,
                                                   "certificate-authority-data": cluster.ca_data}}],
        "users": [{"name": "exec", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
            "interactiveMode": "Never"}}}],
        "contexts": [{"name": "exec", "context": {"cluster": "local", "user": "exec", "namespace": namespace}}],
    }
    path = directory / "exec.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_operator_with_an_exec_plugin_kubeconfig(cluster: Cluster, crds: list[str], namespace: str, tmp_path: Path):
    sa = "operator-exec"
    cluster.apply([  # everything in this namespace: the test is about logging in, not about RBAC
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": sa},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": sa},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]},
    ], namespace=namespace)
    kubeconfig = exec_kubeconfig(cluster, cluster.token(sa, namespace), tmp_path, namespace)
    cluster.apply([
        {"apiVersion": G, "kind": "ProviderCredential", "metadata": {"name": "up"},
         "spec": {"provider": "openai-compatible", "baseURL": "https://llm.example/v1"}},
        {"apiVersion": G, "kind": "ModelRoute", "metadata": {"name": "chat"},
         "spec": {"model": "chat", "targets": [{"credentialRef": "up"}]}},
        {"apiVersion": G, "kind": "AIGateway", "metadata": {"name": "gw"}, "spec": {}},
    ], namespace=namespace)
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", ["--standalone", "--namespace", namespace])
    try:
        def accepted() -> bool:
            status = cluster.get_json("modelroute/chat", "-n", namespace).get("status") or {}
            return any(c["type"] == "Accepted" and c["status"] == "True" for c in status.get("conditions") or [])

        wait_for(lambda: cluster.exists("configmap/gw-config", "-n", namespace) and accepted(), timeout=60,
                 what="the operator rendering gw-config and accepting the route, with exec-plugin credentials")
    finally:
        operator.stop()
    log = operator.log_path.read_text(errors="replace")
    assert "Activity 'login' succeeded" in log
    assert not forbidden_lines(log), "\n".join(forbidden_lines(log)[:20])

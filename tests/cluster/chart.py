"""The Helm chart on the real API server, and its operator run as the chart would run it.

There is no kubelet, so the operator's pod stays Pending; `chart_operator` runs the same command
(`aigw operator` + the Deployment's args and environment) as a local process that authenticates
with a TokenRequest token of the chart's ServiceAccount: real RBAC, exactly the chart's.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.helm.support import CHART, find_helm
from tests.operator.support import OperatorProcess

from .support import Cluster

# an HTTP 403 in any wording kopf, the client or our code use; not a timestamp's ",403" milliseconds
FORBIDDEN = re.compile(r"(?<![,.:\d])\b403\b|Forbidden|forbidden")


def helm(cluster: Cluster, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HELM_CACHE_HOME": "/tmp/aigw-helm-cache",
           "HELM_CONFIG_HOME": "/tmp/aigw-helm-config", "HELM_DATA_HOME": "/tmp/aigw-helm-data"}
    out = subprocess.run([find_helm(), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{out.stderr}{out.stdout}")
    return out


def install(cluster: Cluster, release: str, namespace: str, *values: str) -> None:
    helm(cluster, "uninstall", release, "-n", namespace, "--ignore-not-found", "--wait")
    helm(cluster, "install", release, str(CHART), "-n", namespace, "--create-namespace", *values)


def operator_deployment(cluster: Cluster, release: str, namespace: str) -> dict[str, Any]:
    (deployment,) = [d for d in cluster.get_json("deployments", "-n", namespace)["items"]
                     if d["metadata"]["labels"].get("app.kubernetes.io/instance") == release
                     and d["metadata"]["name"].endswith("operator")]
    return deployment


def chart_operator(cluster: Cluster, release: str, namespace: str, workdir: Path) -> OperatorProcess:
    """`aigw operator` with the chart Deployment's args and env, as its ServiceAccount."""
    pod = operator_deployment(cluster, release, namespace)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    env["POD_ID"] = f"{release}-operator-test"
    token = cluster.token(pod["serviceAccountName"], namespace)
    kubeconfig = cluster.token_kubeconfig(token, workdir, namespace, name=f"{release}-operator")
    return OperatorProcess(kubeconfig, workdir / f"{release}-operator.log", args=list(container["args"]), env=env)


# ...except the API's refusal to write into a namespace being deleted: a 403 too, but no RBAC gap
# (the chart's operator watches every namespace, and other tests delete theirs while it runs)
TERMINATING = "because it is being terminated"


def forbidden_lines(log: str) -> list[str]:
    """The log lines that show the operator or gateway refused by RBAC."""
    return [line for line in log.splitlines() if FORBIDDEN.search(line) and TERMINATING not in line]


def gateway_like_its_pod(cluster: Cluster, namespace: str, gateway: str, workdir: Path):
    """`aigw serve` with the args of the operator's gateway Deployment, as the gateway's
    ServiceAccount (TokenRequest token), on a free loopback port, under an import guard that
    stops the process at any import of kopf, kubernetes or aigw_operator. Returns (process, url)."""
    from tests.gateway.harness import free_port
    from tests.test_packaging import OPERATOR_ONLY, aigw_guarded

    pod = cluster.get_json(f"deployment/{gateway}", "-n", namespace)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = list(container["args"])
    port = free_port()
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    token = cluster.token(pod["serviceAccountName"], namespace)
    kubeconfig = cluster.token_kubeconfig(token, workdir, namespace, name=f"{gateway}-gateway")
    log = open(workdir / f"{gateway}-gateway.log", "w")
    proc = aigw_guarded(args, forbidden=(*OPERATOR_ONLY, "aigw_operator"),
                        env={"KUBECONFIG": str(kubeconfig), "POD_NAME": f"{gateway}-test"},
                        stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", workdir / f"{gateway}-gateway.log"

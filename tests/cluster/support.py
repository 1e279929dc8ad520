"""A real Kubernetes API server for the cluster tier, and small helpers to drive it.

Where the API server comes from, in this order:
1. `AIGW_TEST_KUBECONFIG`: any real cluster (kind, a dev cluster); nothing is started or stopped.
2. `../shared/k8s/up` beside the repository root (developers' machines and CI; for a git worktree,
   beside the nearest ancestor that has it): a control plane
   of its own per checkout (state in /tmp/aigw-k8s-<hash of the checkout path>, free loopback
   ports chosen once and kept in that folder), so two checkouts never share CRDs. It is stopped
   at the end of the session when the session started it (AIGW_TEST_K8S_KEEP=1 keeps it running;
   an already running one is reused and left running).
3. Neither: the tier skips with one line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _shared_k8s() -> Path:
    """shared/k8s beside the repository root (CI, the main checkout), else beside an ancestor
    (a git worktree under a folder of the checkout's parent)."""
    for parent in ROOT.parents:
        if (parent / "shared" / "k8s" / "up").is_file():
            return parent / "shared" / "k8s"
    return ROOT.parent / "shared" / "k8s"


UP_SCRIPT = _shared_k8s() / "up"
DOWN_SCRIPT = _shared_k8s() / "down"
PORT_VARS = ("AIGW_K8S_API_PORT", "AIGW_K8S_ETCD_PORT", "AIGW_K8S_ETCD_PEER_PORT", "AIGW_K8S_KCM_PORT")


class NoCluster(Exception):
    """No API server for this session; the message is the one skip line."""


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll until condition() returns something truthy (returned), or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _local_env() -> dict[str, str]:
    """AIGW_K8S_DIR and the four ports of this checkout's control plane (chosen once, then kept)."""
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
    k8s_dir = Path(os.environ.get("AIGW_TEST_K8S_DIR") or f"{tempfile.gettempdir()}/aigw-k8s-{digest}")
    k8s_dir.mkdir(parents=True, exist_ok=True)
    ports_file = k8s_dir / "ports.json"
    if ports_file.exists():
        ports = json.loads(ports_file.read_text())
    else:
        ports = dict(zip(PORT_VARS, map(str, _free_ports(len(PORT_VARS)))))
        ports_file.write_text(json.dumps(ports))
    return {"AIGW_K8S_DIR": str(k8s_dir), **ports}


@dataclass
class Cluster:
    """The API server of the session: its admin kubeconfig and a kubectl that speaks to it."""

    kubeconfig: Path
    kubectl_bin: str | None
    stop: Callable[[], None] | None = None
    server: str = field(init=False)
    ca_data: str = field(init=False)  # base64 PEM, as kubeconfig carries it

    def __post_init__(self) -> None:
        config = yaml.safe_load(self.kubeconfig.read_text())
        ctx_name = config["current-context"]
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        self.server = cluster["server"]
        if cluster.get("certificate-authority-data"):
            self.ca_data = cluster["certificate-authority-data"]
        elif cluster.get("certificate-authority"):
            self.ca_data = base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
        else:
            self.ca_data = ""

    # --- kubectl -----------------------------------------------------------------------------
    def kubectl(self, *args: str, kubeconfig: Path | None = None, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if not self.kubectl_bin:
            import pytest

            pytest.skip("no kubectl for this cluster (AIGW_K8S_DIR/bin/kubectl, .tools/bin/kubectl or PATH)")
        out = subprocess.run([self.kubectl_bin, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
                             capture_output=True, text=True, input=input, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({out.returncode}):\n{out.stderr}{out.stdout}")
        return out

    def apply(self, docs: list[dict[str, Any]] | dict[str, Any], namespace: str | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        """Server-side apply (field manager aigw-tests), like `kubectl apply --server-side`."""
        docs = docs if isinstance(docs, list) else [docs]
        args = ["apply", "--server-side", "--force-conflicts", "--field-manager=aigw-tests", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        return self.kubectl(*args, input=yaml.safe_dump_all(docs), check=check)

    def get_json(self, *args: str, kubeconfig: Path | None = None) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def exists(self, *args: str) -> bool:
        out = self.kubectl("get", *args, "--ignore-not-found", "-o", "name", check=False)
        return out.returncode == 0 and bool(out.stdout.strip())

    # --- identities ----------------------------------------------------------------------------
    def token(self, service_account: str, namespace: str, seconds: int = 3600, bound_secret: str | None = None) -> str:
        """A TokenRequest token of a ServiceAccount (what a pod's projected volume holds). With
        bound_secret, the token dies with that Secret: how a test revokes one token of several
        (TokenRequest's shortest lifetime is 10 minutes, too long to wait for an expiry)."""
        bound = ["--bound-object-kind=Secret", f"--bound-object-name={bound_secret}"] if bound_secret else []
        return self.kubectl("create", "token", service_account, "-n", namespace, f"--duration={seconds}s",
                            *bound).stdout.strip()

    def token_kubeconfig(self, token: str, directory: Path, namespace: str = "default", name: str = "sa") -> Path:
        """A kubeconfig that authenticates with nothing but this bearer token."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": "local", "cluster": {"server": self.server,
                                                       "certificate-authority-data": self.ca_data}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "local", "user": name, "namespace": namespace}}],
        }
        path = directory / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    # --- namespaces ----------------------------------------------------------------------------
    def create_namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        return name

    def delete_namespace(self, name: str, wait: bool = False) -> None:
        self.kubectl("delete", "namespace", name, "--ignore-not-found", f"--wait={'true' if wait else 'false'}",
                     check=False)


def _find_kubectl(k8s_dir: Path | None) -> str | None:
    for candidate in ((k8s_dir / "bin" / "kubectl") if k8s_dir else None, ROOT / ".tools" / "bin" / "kubectl"):
        if candidate and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("kubectl")


def start_cluster() -> Cluster:
    """The session's cluster (see the module docstring); NoCluster when there is none."""
    given = os.environ.get("AIGW_TEST_KUBECONFIG")
    if given:
        path = Path(given)
        if not path.is_file():
            raise NoCluster(f"AIGW_TEST_KUBECONFIG={given} is not a file")
        return Cluster(path, _find_kubectl(None))
    if not UP_SCRIPT.is_file():
        raise NoCluster(f"no API server: set AIGW_TEST_KUBECONFIG or provide {UP_SCRIPT} (cluster tier skipped)")
    env = {**os.environ, **_local_env()}
    k8s_dir = Path(env["AIGW_K8S_DIR"])
    was_running = (k8s_dir / "run" / "kube-apiserver.pid").exists() and _ready(k8s_dir)
    out = subprocess.run(["bash", str(UP_SCRIPT)], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{UP_SCRIPT} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    kubeconfig = Path(out.stdout.strip().splitlines()[-1])

    def stop() -> None:
        subprocess.run(["bash", str(DOWN_SCRIPT)], capture_output=True, env=env, timeout=120)

    keep = was_running or os.environ.get("AIGW_TEST_K8S_KEEP") == "1"
    return Cluster(kubeconfig, _find_kubectl(k8s_dir), stop=None if keep else stop)


def _ready(k8s_dir: Path) -> bool:
    kubectl = k8s_dir / "bin" / "kubectl"
    if not kubectl.exists():
        return False
    out = subprocess.run([str(kubectl), "--kubeconfig", str(k8s_dir / "kubeconfig"), "--request-timeout=3s",
                          "get", "--raw", "/readyz"], capture_output=True, timeout=10)
    return out.returncode == 0


def namespaces(cluster: Cluster, prefix: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh namespaces, all deleted (without waiting) at the end."""
    made: list[str] = []

    def make() -> str:
        made.append(cluster.create_namespace(prefix))
        return made[-1]

    yield make
    for name in made:
        cluster.delete_namespace(name)

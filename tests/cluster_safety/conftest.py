"""A real kube-apiserver for the operator's safety tests (folded into tests/cluster at merge).

Where the API server comes from, first match wins:
1. AIGW_TEST_KUBECONFIG: any cluster (kind, a real one);
2. ../shared/k8s/up beside the repository root (or beside an ancestor, for a git worktree): a
   control plane of this test folder's own (AIGW_K8S_DIR under the temp dir, free ports chosen
   once and kept there), started for the session and stopped after it if it was not running;
3. neither: every test here is skipped with one line saying so.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import ROOT, Api

PORT_VARS = ("AIGW_K8S_API_PORT", "AIGW_K8S_ETCD_PORT", "AIGW_K8S_ETCD_PEER_PORT", "AIGW_K8S_KCM_PORT")


def _shared_k8s() -> Path | None:
    for parent in ROOT.parents:
        if (parent / "shared" / "k8s" / "up").is_file():
            return parent / "shared" / "k8s"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment() -> dict[str, str]:
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
    k8s_dir = Path(tempfile.gettempdir()) / f"aigw-k8s-safety-{digest}"
    k8s_dir.mkdir(parents=True, exist_ok=True)
    ports_file = k8s_dir / "ports.env"
    if not ports_file.exists():
        ports_file.write_text("".join(f"{var}={_free_port()}\n" for var in PORT_VARS))
    ports = dict(line.split("=", 1) for line in ports_file.read_text().split())
    return {**os.environ, "AIGW_K8S_DIR": str(k8s_dir), **ports}


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    given = os.environ.get("AIGW_TEST_KUBECONFIG")
    if given:
        yield Path(given)
        return
    shared = _shared_k8s()
    if shared is None:
        pytest.skip("no Kubernetes API server: set AIGW_TEST_KUBECONFIG or provide ../shared/k8s/up")
    env = _environment()
    running = (Path(env["AIGW_K8S_DIR"]) / "run" / "kube-apiserver.pid").exists()
    out = subprocess.run(["bash", str(shared / "up")], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        pytest.fail(f"../shared/k8s/up failed:\n{out.stderr[-3000:]}")
    yield Path(out.stdout.strip().splitlines()[-1])
    if not running:
        subprocess.run(["bash", str(shared / "down")], capture_output=True, env=env, timeout=120)


@pytest.fixture(scope="session")
def api(kubeconfig: Path) -> Iterator[Api]:
    client = Api(kubeconfig)
    client.install_crds()
    yield client
    client.close()


@pytest.fixture
def namespace(api: Api, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"safe-{request.node.name.removeprefix('test_')[:30].replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    api.create_namespace(name)
    yield name
    api.delete_namespace(name)

"""aigw_gateway.kube_watch without an API server: how it reads kubeconfigs and token files.
(Against a real API server, with a token rotated while it watches: tests/cluster/test_kube_watch.py.)"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
import yaml

from aigw_gateway.kube_watch import BearerAuth, Connection, FileToken


def _kubeconfig(path: Path, user: dict) -> Path:
    path.write_text(yaml.safe_dump({
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443/",
                                               "certificate-authority-data": base64.b64encode(b"PEM").decode()}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "team"}}],
    }))
    return path


def test_kubeconfig_token_file_is_read_relative_to_the_kubeconfig_and_again_when_old(tmp_path: Path):
    (tmp_path / "token").write_text("one\n")
    conn = Connection.from_kubeconfig(_kubeconfig(tmp_path / "config", {"tokenFile": "token"}))
    assert (conn.server, conn.namespace, conn.ca_data) == ("https://127.0.0.1:6443", "team", b"PEM")
    assert isinstance(conn.token, FileToken)
    conn.token.max_age = 0.05
    assert conn.token.get() == "one"
    (tmp_path / "token").write_text("two\n")
    assert conn.token.get() == "one"  # cached for max_age
    deadline = time.monotonic() + 5
    while conn.token.get() != "two":
        assert time.monotonic() < deadline, "the token file was not read again"
        time.sleep(0.01)


def test_a_401_reads_the_token_file_again_and_retries_once(tmp_path: Path):
    import httpx

    (tmp_path / "token").write_text("old")
    token = FileToken(tmp_path / "token", max_age=3600)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200 if request.headers["authorization"] == "Bearer new" else 401)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=BearerAuth(token)) as client:
        assert client.get("https://k/api").status_code == 401  # the file still holds the dead token
        (tmp_path / "token").write_text("new")
        assert client.get("https://k/api").status_code == 200
    assert seen == ["Bearer old", "Bearer old", "Bearer old", "Bearer new"]


def test_exec_plugins_are_refused_with_a_way_out(tmp_path: Path):
    path = _kubeconfig(tmp_path / "config", {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}})
    with pytest.raises(ValueError, match="kubectl create token"):
        Connection.from_kubeconfig(path)

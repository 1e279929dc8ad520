"""A small async Kubernetes REST client on httpx: connection loading, CRUD, patch and watch.

Enough for the gateway's ConfigMap/Secret watch and the operator's writes, without the weight
of the official client. Authentication: the pod's service account, or a kubeconfig with a
token or client certificate (exec and auth-provider plugins are out of scope).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Connection:
    server: str
    token: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    namespace: str = "default"


def _materialize(data_b64: str | None, suffix: str) -> str | None:
    if not data_b64:
        return None
    fd, path = tempfile.mkstemp(prefix="aigw-kube-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(data_b64))
    return path


def load_connection() -> Connection:
    """In a pod: the service account. Elsewhere: $KUBECONFIG or ~/.kube/config (current context)."""
    token_path = SA_DIR / "token"
    if token_path.exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        ns_path = SA_DIR / "namespace"
        return Connection(
            server=f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}",
            token=token_path.read_text().strip(),
            ca_file=str(SA_DIR / "ca.crt"),
            namespace=ns_path.read_text().strip() if ns_path.exists() else "default",
        )
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config")
    config = yaml.safe_load(Path(path).read_text()) or {}
    ctx_name = config.get("current-context")
    ctx = next(c["context"] for c in config.get("contexts", []) if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in config.get("clusters", []) if c["name"] == ctx["cluster"])
    user = next((u.get("user") or {} for u in config.get("users", []) if u["name"] == ctx.get("user")), {})
    return Connection(
        server=cluster["server"].rstrip("/"),
        token=user.get("token"),
        ca_file=cluster.get("certificate-authority") or _materialize(cluster.get("certificate-authority-data"), ".crt"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=user.get("client-certificate") or _materialize(user.get("client-certificate-data"), ".crt"),
        key_file=user.get("client-key") or _materialize(user.get("client-key-data"), ".key"),
        namespace=ctx.get("namespace") or "default",
    )


def resource_path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class KubeAPI:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        verify: ssl.SSLContext | bool = True
        if conn.server.startswith("https"):
            ctx = ssl.create_default_context(cafile=conn.ca_file) if conn.ca_file else ssl.create_default_context()
            if conn.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if conn.cert_file and conn.key_file:
                ctx.load_cert_chain(conn.cert_file, conn.key_file)
            verify = ctx
        headers = {"accept": "application/json"}
        if conn.token:
            headers["authorization"] = f"Bearer {conn.token}"
        self.http = httpx.AsyncClient(base_url=conn.server, headers=headers, verify=verify,
                                      timeout=httpx.Timeout(30.0, connect=10.0), trust_env=False)

    async def close(self) -> None:
        await self.http.aclose()

    @staticmethod
    def _raise(resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        try:
            body = resp.json()
            raise KubeError(resp.status_code, body.get("reason", ""), body.get("message", ""))
        except ValueError:
            raise KubeError(resp.status_code, "", resp.text[:300]) from None

    async def request(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
                      content_type: str = "application/json") -> dict:
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": content_type} if content is not None else None
        resp = await self.http.request(method, path, params=params, content=content, headers=headers)
        self._raise(resp)
        return resp.json()

    async def get(self, path: str) -> dict | None:
        try:
            return await self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str, **params: str) -> dict:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, obj: dict) -> dict:
        return await self.request("POST", path, body=obj)

    async def replace(self, path: str, obj: dict) -> dict:
        return await self.request("PUT", path, body=obj)

    async def merge_patch(self, path: str, patch: dict) -> dict:
        return await self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    async def watch(self, path: str, resource_version: str, timeout_seconds: int = 300, **params: str) -> AsyncIterator[tuple[str, dict]]:
        """Yield (type, object) until the server ends the watch. An ERROR event raises KubeError (410: relist)."""
        query = {"watch": "true", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds),
                 "allowWatchBookmarks": "true", **params}
        timeout = httpx.Timeout(timeout_seconds + 30.0, connect=10.0)
        async with self.http.stream("GET", path, params=query, timeout=timeout) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                self._raise(resp)
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event = orjson.loads(line)
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    raise KubeError(int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", ""))
                yield event["type"], event["object"]

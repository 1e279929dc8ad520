"""The gateway's own Kubernetes client: list and watch, nothing else, on httpx.

The gateway reads two objects (its ConfigMap and Secret) and writes nothing, so it keeps this
small client instead of the official one (about 35 MB of RSS per worker) and never imports kopf
or `kubernetes`; the operator uses the official client.

Authentication:
- in a pod, the service account. Its projected token rotates (the kubelet renews it at 80 % of its
  lifetime, one hour by default), so the file is re-read when the cached copy is a minute old, as
  client-go does, and at once when the API server answers 401;
- elsewhere, a kubeconfig (current context) with a bearer token (`token` or `tokenFile`, re-read
  the same way) or a client certificate. The CA is loaded from memory; a certificate and key given
  inline are written to a private temporary folder only for the moment `load_cert_chain` reads
  them, and removed at once. Exec and auth-provider plugins are the operator's business.
"""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_MAX_AGE = 60.0  # seconds a token read from a file is used before the file is read again


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def gone(self) -> bool:  # 410: the resourceVersion is too old; list again
        return self.status == 410


class FileToken:
    """A bearer token kept in a file that someone else rotates (a projected service-account token)."""

    def __init__(self, path: Path, max_age: float = TOKEN_MAX_AGE) -> None:
        self.path = path
        self.max_age = max_age
        self._token = ""
        self._read_at = float("-inf")

    def get(self, force: bool = False) -> str:
        if force or time.monotonic() - self._read_at >= self.max_age:
            self._token = self.path.read_text().strip()
            self._read_at = time.monotonic()
        return self._token


class BearerAuth(httpx.Auth):
    """The current token on every request; on a 401, the token file once more and one retry."""

    def __init__(self, token: str | FileToken) -> None:
        self.token = token

    def _header(self, force: bool = False) -> str:
        token = self.token if isinstance(self.token, str) else self.token.get(force)
        return f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["authorization"] = self._header()
        response = yield request
        if response.status_code == 401 and isinstance(self.token, FileToken):
            request.headers["authorization"] = self._header(force=True)
            yield request


@dataclass
class Connection:
    server: str
    token: str | FileToken | None = None
    ca_data: bytes | None = None  # PEM
    insecure: bool = False
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    namespace: str = "default"

    @classmethod
    def in_cluster(cls, sa_dir: Path = SA_DIR, host: str | None = None, port: str | None = None) -> Connection:
        host = host or os.environ["KUBERNETES_SERVICE_HOST"]
        port = port or os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        ns_path = sa_dir / "namespace"
        return cls(
            server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
            token=FileToken(sa_dir / "token"),
            ca_data=(sa_dir / "ca.crt").read_bytes(),
            namespace=ns_path.read_text().strip() if ns_path.exists() else "default",
        )

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Connection:
        config = yaml.safe_load(path.read_text()) or {}
        base = path.parent

        def data(entry: dict, key: str) -> bytes | None:
            if entry.get(f"{key}-data"):
                return base64.b64decode(entry[f"{key}-data"])
            if entry.get(key):
                return (base / entry[key]).read_bytes()
            return None

        ctx_name = config.get("current-context")
        ctx = next(c["context"] for c in config.get("contexts", []) if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in config.get("clusters", []) if c["name"] == ctx["cluster"])
        user = next((u.get("user") or {} for u in config.get("users", []) if u["name"] == ctx.get("user")), {})
        if user.get("exec") or user.get("auth-provider"):
            raise ValueError(f"{path}: the gateway supports token and client-certificate users only "
                             "(exec and auth-provider plugins: use a token, e.g. `kubectl create token`)")
        token: str | FileToken | None = user.get("token")
        if not token and user.get("tokenFile"):
            token = FileToken(base / user["tokenFile"])
        return cls(
            server=cluster["server"].rstrip("/"),
            token=token,
            ca_data=data(cluster, "certificate-authority"),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            cert_pem=data(user, "client-certificate"),
            key_pem=data(user, "client-key"),
            namespace=ctx.get("namespace") or "default",
        )


def load_connection() -> Connection:
    """In a pod: the service account. Elsewhere: $KUBECONFIG or ~/.kube/config (current context)."""
    if (SA_DIR / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return Connection.in_cluster()
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config")
    return Connection.from_kubeconfig(Path(path))


def ssl_context(conn: Connection) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=conn.ca_data.decode()) if conn.ca_data else ssl.create_default_context()
    if conn.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if conn.cert_pem and conn.key_pem:
        # ssl reads a certificate chain from files only: a private folder, gone right after.
        folder = tempfile.mkdtemp(prefix="aigw-kube-")
        try:
            cert, key = Path(folder, "client.crt"), Path(folder, "client.key")
            for p, content in ((cert, conn.cert_pem), (key, conn.key_pem)):
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
            ctx.load_cert_chain(str(cert), str(key))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return ctx


def resource_path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return base + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}" + (f"/{name}" if name else "")


class KubeWatch:
    """list and watch over one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        verify: ssl.SSLContext | bool = ssl_context(conn) if conn.server.startswith("https") else False
        self.http = httpx.AsyncClient(base_url=conn.server, headers={"accept": "application/json"}, verify=verify,
                                      auth=BearerAuth(conn.token) if conn.token else None,
                                      timeout=httpx.Timeout(30.0, connect=10.0), trust_env=False)

    async def close(self) -> None:
        await self.http.aclose()

    @staticmethod
    def _error(status: int, body: bytes) -> KubeError:
        try:
            doc = orjson.loads(body)
            return KubeError(status, doc.get("reason", ""), doc.get("message", ""))
        except (ValueError, AttributeError):
            return KubeError(status, "", body[:300].decode(errors="replace"))

    async def list(self, path: str, **params: str) -> dict[str, Any]:
        resp = await self.http.get(path, params=params or None)
        if resp.status_code >= 400:
            raise self._error(resp.status_code, resp.content)
        return resp.json()

    async def watch(self, path: str, resource_version: str, timeout_seconds: int = 300,
                    **params: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield (type, object), BOOKMARKs included (they carry the resourceVersion to resume from),
        until the server ends the watch. An ERROR event raises KubeError (410: list again)."""
        query = {"watch": "true", "resourceVersion": resource_version, "timeoutSeconds": str(timeout_seconds),
                 "allowWatchBookmarks": "true", **params}
        timeout = httpx.Timeout(timeout_seconds + 30.0, connect=10.0)
        async with self.http.stream("GET", path, params=query, timeout=timeout) as resp:
            if resp.status_code >= 400:
                raise self._error(resp.status_code, await resp.aread())
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event = orjson.loads(line)
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    raise KubeError(int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", ""))
                yield event["type"], event["object"]

"""The operator's connection to Kubernetes, through the official `kubernetes` client.

Login is the client's own (the same that kopf uses through `kopf.login_via_client`): the pod's
service account, with the projected token re-read as it rotates, or a kubeconfig with any of its
authentication methods (client certificate, token, exec plugins such as `aws eks get-token` or
`gke-gcloud-auth-plugin`, OIDC), with the client's token refresh.

Objects travel as plain JSON dicts, never as the client's models: the operator reads and writes
custom resources and keeps unknown fields. The client is synchronous; every call runs in a worker
thread (`asyncio.to_thread`), so the event loop never blocks on the API. Its errors are mapped
once, here, into `KubeError` with the HTTP status.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

log = logging.getLogger("aigw.operator.kube")

# (connect, read) seconds of one API request; list and write calls only (the operator's watches
# are kopf's).
REQUEST_TIMEOUT = (10.0, 30.0)


class KubeError(Exception):
    """A failed API call: the HTTP status (0 when the server was not reached), reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}" if status else f"{reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:  # 409: exists already, or a stale resourceVersion
        return self.status == 409


def _mapped(exc: ApiException) -> KubeError:
    reason, message = str(exc.reason or ""), ""
    try:
        body = json.loads(exc.body or "{}")
        reason = body.get("reason") or reason
        message = body.get("message") or ""
    except (TypeError, ValueError):
        message = str(exc.body or "")[:300]
    return KubeError(int(exc.status or 0), reason, message)


def load_configuration() -> k8s.Configuration:
    """In a pod: the service account (token re-read when it rotates). Elsewhere: $KUBECONFIG or
    ~/.kube/config, current context, with every authentication method the client knows."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration, try_refresh_token=True)
        log.debug("Kubernetes API: in-cluster service account")
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=configuration, persist_config=False)
        log.debug("Kubernetes API: kubeconfig")
    return configuration


def resource_path(api_version: str, plural: str, namespace: str, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "") + \
        (f"/{subresource}" if subresource else "")


class KubeClient:
    """Namespaced CRUD on any kind by apiVersion and plural, as dicts, off the event loop.

    Requests go through the client's ApiClient (its authentication, TLS, token refresh and
    connection pool) by path, not through its generated per-kind API classes: those would turn
    every object into a model and back, and importing them costs seconds at start-up."""

    def __init__(self, configuration: k8s.Configuration | None = None) -> None:
        self.api_client = k8s.ApiClient(configuration or load_configuration())

    async def close(self) -> None:
        await asyncio.to_thread(self.api_client.close)

    async def request(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        return await asyncio.to_thread(self._request, method, path, query, body, content_type)

    def _request(self, method: str, path: str, query: dict[str, str] | None, body: Any,
                 content_type: str) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            serialized = self.api_client.param_serialize(
                method, path, query_params=list((query or {}).items()), header_params=headers, body=body,
                auth_settings=["BearerToken"])
            resp = self.api_client.call_api(*serialized, _request_timeout=REQUEST_TIMEOUT)
            data = resp.read()
        except ApiException as exc:
            raise _mapped(exc) from None
        except Urllib3Error as exc:  # connection refused, TLS, timeout: the server was not reached
            raise KubeError(0, type(exc).__name__, str(exc)) from None
        if not 200 <= resp.status <= 299:
            raise _mapped(ApiException(status=resp.status, reason=resp.reason,
                                       body=data.decode("utf-8", "replace") if data else ""))
        return json.loads(data) if data else {}

    async def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", resource_path(api_version, plural, namespace, name))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def list(self, api_version: str, plural: str, namespace: str, *, label_selector: str | None = None,
                   field_selector: str | None = None) -> dict[str, Any]:
        query = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        return await self.request("GET", resource_path(api_version, plural, namespace), query=query)

    async def create(self, api_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", resource_path(api_version, plural, obj["metadata"]["namespace"]), body=obj)

    async def replace(self, api_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return await self.request("PUT", resource_path(api_version, plural, meta["namespace"], meta["name"]), body=obj)

    async def delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        await self.request("DELETE", resource_path(api_version, plural, namespace, name))

    async def merge_patch_status(self, api_version: str, plural: str, namespace: str, name: str,
                                 patch: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", resource_path(api_version, plural, namespace, name, "status"), body=patch,
                                  content_type="application/merge-patch+json")

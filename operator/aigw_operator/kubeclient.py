"""The operator's connection to Kubernetes, through the official `kubernetes` client.

Login is the client's own (the same that kopf uses through `kopf.login_via_client`): the pod's
service account, with the projected token re-read as it rotates, or a kubeconfig with any of its
authentication methods (client certificate, token, exec plugins such as `aws eks get-token` or
`gke-gcloud-auth-plugin`, OIDC), with the client's token refresh.

Objects travel as plain JSON dicts (`_preload_content=False`), never as the client's models: the
operator reads and writes custom resources and keeps unknown fields. The client is synchronous;
every call runs in a worker thread (`asyncio.to_thread`), so the event loop never blocks on the API.
Its errors are mapped once, here, into `KubeError` with the HTTP status.
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

# Core-group (`v1`) plurals the operator touches -> the CoreV1Api method suffix.
_CORE = {"secrets": "secret", "configmaps": "config_map", "services": "service", "events": "event",
         "serviceaccounts": "service_account", "pods": "pod"}


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


def _split(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class KubeClient:
    """Namespaced CRUD on any kind by apiVersion and plural, as dicts, off the event loop."""

    def __init__(self, configuration: k8s.Configuration | None = None) -> None:
        self.api_client = k8s.ApiClient(configuration or load_configuration())
        self.core = k8s.CoreV1Api(self.api_client)
        self.custom = k8s.CustomObjectsApi(self.api_client)

    async def close(self) -> None:
        await asyncio.to_thread(self.api_client.close)

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            try:
                resp = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            except ApiException as exc:
                raise _mapped(exc) from None
            except Urllib3Error as exc:  # connection refused, TLS, timeout: the server was not reached
                raise KubeError(0, type(exc).__name__, str(exc)) from None
            data = resp.data
            return json.loads(data) if data else {}

        return await asyncio.to_thread(call)

    def _core(self, verb: str, plural: str) -> Any:
        return getattr(self.core, f"{verb}_namespaced_{_CORE[plural]}")

    async def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            if api_version == "v1":
                return await self._call(self._core("read", plural), name, namespace)
            group, version = _split(api_version)
            return await self._call(self.custom.get_namespaced_custom_object, group, version, namespace, plural, name)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def list(self, api_version: str, plural: str, namespace: str, *, label_selector: str | None = None,
                   field_selector: str | None = None) -> dict[str, Any]:
        selectors = {k: v for k, v in (("label_selector", label_selector), ("field_selector", field_selector)) if v}
        if api_version == "v1":
            return await self._call(self._core("list", plural), namespace, **selectors)
        group, version = _split(api_version)
        return await self._call(self.custom.list_namespaced_custom_object, group, version, namespace, plural,
                                **selectors)

    async def create(self, api_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        namespace = obj["metadata"]["namespace"]
        if api_version == "v1":
            return await self._call(self._core("create", plural), namespace, obj)
        group, version = _split(api_version)
        return await self._call(self.custom.create_namespaced_custom_object, group, version, namespace, plural, obj)

    async def replace(self, api_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        if api_version == "v1":
            return await self._call(self._core("replace", plural), meta["name"], meta["namespace"], obj)
        group, version = _split(api_version)
        return await self._call(self.custom.replace_namespaced_custom_object, group, version, meta["namespace"],
                                plural, meta["name"], obj)

    async def delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        if api_version == "v1":
            await self._call(self._core("delete", plural), name, namespace)
            return
        group, version = _split(api_version)
        await self._call(self.custom.delete_namespaced_custom_object, group, version, namespace, plural, name)

    async def merge_patch_status(self, api_version: str, plural: str, namespace: str, name: str,
                                 patch: dict[str, Any]) -> dict[str, Any]:
        group, version = _split(api_version)
        return await self._call(self.custom.patch_namespaced_custom_object_status, group, version, namespace, plural,
                                name, patch, _content_type="application/merge-patch+json")

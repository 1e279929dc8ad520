"""The operator's one module that talks to the Kubernetes API (reads and writes)."""

from __future__ import annotations

import logging
from typing import Any

from aigw_config.base import API_VERSION
from aigw_config.registry import KINDS

from .kubeclient import KubeClient, KubeError

__all__ = ["Kube", "KubeError"]

log = logging.getLogger("aigw.operator.kube")


def namespace_gone(exc: BaseException) -> bool:
    """A write refused because its namespace is being deleted (403, "...because it is being
    terminated") or is gone (404 on a create into it): retrying cannot help."""
    if not isinstance(exc, KubeError):
        return False
    text = exc.message.lower()
    if exc.status == 403:
        return "being terminated" in text or "namespaceterminating" in text
    return exc.status == 404 and "namespaces" in text and "not found" in text


class Kube:
    def __init__(self, api: KubeClient) -> None:
        self.api = api

    async def list_kind(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        listing = await self.api.list(API_VERSION, KINDS[kind].plural, namespace)
        items = listing.get("items") or []
        for item in items:  # list items carry no kind/apiVersion
            item.setdefault("apiVersion", API_VERSION)
            item.setdefault("kind", kind)
        return items

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        obj = await self.api.get("v1", "secrets", namespace, name)
        if obj is not None:
            obj.setdefault("apiVersion", "v1")
            obj.setdefault("kind", "Secret")
        return obj

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.api.get("v1", "configmaps", namespace, name)

    async def upsert(self, plural: str, obj: dict[str, Any], current: dict[str, Any] | None) -> None:
        """Create, or replace guarded by the resourceVersion we read (409 on a concurrent writer)."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        if current is None:
            try:
                await self.api.create("v1", plural, obj)
                return
            except KubeError as exc:
                if not exc.conflict:
                    raise
                current = await self.api.get("v1", plural, ns, name)
                if current is None:
                    raise
        body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
        await self.api.replace("v1", plural, body)

    async def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.api.get(api_version, plural, namespace, name)

    async def create(self, api_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.api.create(api_version, plural, obj)

    async def replace(self, api_version: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.api.replace(api_version, plural, obj)

    async def delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        try:
            await self.api.delete(api_version, plural, namespace, name)
        except KubeError as exc:
            if not exc.not_found:
                raise

    async def endpoint_slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        listing = await self.api.list("discovery.k8s.io/v1", "endpointslices", namespace,
                                      label_selector=f"kubernetes.io/service-name={service},"
                                                     "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io")
        return listing.get("items") or []

    async def create_event(self, event: dict[str, Any]) -> None:
        await self.api.create("v1", "events", event)

    async def patch_status(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        try:
            await self.api.merge_patch_status(API_VERSION, KINDS[kind].plural, namespace, name, patch)
        except KubeError as exc:
            if not exc.not_found:  # deleted meanwhile: nothing to report on
                raise

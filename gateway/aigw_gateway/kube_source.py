"""Config from the rendered ConfigMap and Secret, watched through the Kubernetes API.

Mounted volumes update a minute or more after a change; a watch sees it at once. The two
objects are separate, so the pair is only offered when the Secret's content matches the hash
the config names: a gateway never serves a config with the previous generation's credentials.
A document too large for one object arrives gzip-compressed (`aigw_config.packing`); both
forms are read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aigw_config.config import CONFIG_KEY, CREDENTIALS_KEY, load_config, load_credentials
from aigw_config.packing import configmap_entries, secret_entries, unpack

from .kube_watch import KubeError, KubeWatch, load_connection, resource_path
from .runtime import RuntimeHolder
from .settings import KubeTarget

log = logging.getLogger("aigw.config")


@dataclass
class _Watched:
    plural: str
    name: str
    key: str
    data: bytes | None = None  # the document, unpacked; None: object (or key) absent
    resource_version: str = ""


class KubeSource:
    def __init__(self, target: KubeTarget, holder: RuntimeHolder, api: KubeWatch | None = None,
                 watch_timeout: int = 300) -> None:
        self.target = target
        self.watch_timeout = watch_timeout  # seconds; the server ends each watch after this
        self.holder = holder
        self.api = api
        self.configmap = _Watched("configmaps", target.configmap, CONFIG_KEY)
        self.secret = _Watched("secrets", target.secret, CREDENTIALS_KEY)

    async def run(self) -> None:
        if self.api is None:
            self.api = KubeWatch(load_connection())
        try:
            await asyncio.gather(self._follow(self.configmap), self._follow(self.secret))
        finally:
            await self.api.close()

    async def _follow(self, watched: _Watched) -> None:
        """List, then watch from the list's resourceVersion; when a watch ends, watch again from the
        last resourceVersion seen (bookmarks included); list again only after a 410 or an error."""
        path = resource_path("v1", watched.plural, self.target.namespace)
        selector = f"metadata.name={watched.name}"
        backoff = 0.5
        rv = ""
        while True:
            try:
                if not rv:
                    listing = await self.api.list(path, fieldSelector=selector)
                    items = listing.get("items") or []
                    self._update(watched, items[0] if items else None)
                    rv = listing["metadata"]["resourceVersion"]
                async for kind, obj in self.api.watch(path, rv, timeout_seconds=self.watch_timeout,
                                                      fieldSelector=selector):
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if kind != "BOOKMARK":
                        self._update(watched, None if kind == "DELETED" else obj)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving the last config; list again, with backoff
                rv = ""
                if not (isinstance(exc, KubeError) and exc.gone):
                    log.warning("watch of %s %s failed (%s); retrying in %.1fs", watched.plural, watched.name, exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)

    def _update(self, watched: _Watched, obj: dict | None) -> None:
        if obj is None:
            if watched.data is not None:
                log.warning("%s %s/%s is gone; still serving the last config", watched.plural, self.target.namespace, watched.name)
            watched.data = None
            return
        try:
            entries = configmap_entries(obj) if watched.plural == "configmaps" else secret_entries(obj)
            watched.data = unpack(entries, watched.key)
        except ValueError as exc:
            self.holder.reject(f"{type(exc).__name__}: {exc}", f"{watched.plural} {self.target.namespace}/{watched.name}")
            return
        self._try_offer()

    def _try_offer(self) -> None:
        cm, sec = self.configmap.data, self.secret.data
        if cm is None or sec is None:
            return
        source = f"ConfigMap {self.target.namespace}/{self.target.configmap}"
        try:
            config = load_config(cm)
            credentials = load_credentials(sec)
        except ValueError as exc:
            self.holder.reject(f"{type(exc).__name__}: {exc}", source)
            return
        if config.credentials_hash != credentials.content_hash():
            log.info("config generation %d waits for its matching Secret", config.generation)
            return
        self.holder.offer(config, credentials, source)

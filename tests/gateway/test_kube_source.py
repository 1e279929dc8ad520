"""KubeSource's watch loop: it resumes each watch from the last resourceVersion it saw (bookmarks
included) and lists again only after a 410. On the API emulator, which can expire its history on
demand (a real API server expires it on etcd compaction, every few minutes)."""

from __future__ import annotations

import asyncio

import pytest

from aigw_gateway.kube_source import KubeSource
from aigw_gateway.kube_watch import Connection, KubeWatch
from aigw_gateway.runtime import RuntimeHolder
from aigw_gateway.settings import KubeTarget
from tests.kube.emulator import KubeEmulator
from tests.kube.fixtures import http_client, post_object


def _configmap(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"config.json": value}}


def _lists(emulator: KubeEmulator) -> int:
    return sum(1 for line in emulator.request_log
               if line.startswith("GET /api/v1/namespaces/default/configmaps?") and "watch=true" not in line)


async def _churn(emulator: KubeEmulator, n: int) -> None:
    with http_client(emulator.url) as client:
        for i in range(n):  # other objects advance the resourceVersion past the emulator's history
            r = await asyncio.to_thread(client.put, "/api/v1/namespaces/default/configmaps/other",
                                        json=_configmap("other", str(i)))
            assert r.status_code == 200, r.text


async def _wait(condition, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("bookmarks, relists", [(True, False), (False, True)], ids=["bookmarks", "expired"])
async def test_watches_resume_from_bookmarks_and_list_again_after_a_410(bookmarks: bool, relists: bool):
    emulator = KubeEmulator(history_size=5, bookmark_interval=0.2 if bookmarks else 3600).start()
    try:
        post_object(emulator.url, _configmap("gw-config", "v1"))
        post_object(emulator.url, _configmap("other", "0"))
        source = KubeSource(KubeTarget("default", "gw-config", "gw-credentials"), RuntimeHolder(),
                            KubeWatch(Connection(server=emulator.url)), watch_timeout=1)
        task = asyncio.create_task(source._follow(source.configmap))
        try:
            await _wait(lambda: source.configmap.data == b"v1", "the first list")
            assert _lists(emulator) == 1
            await asyncio.sleep(0.5)  # a bookmark (when on) carries the current resourceVersion
            await _churn(emulator, 20)
            await asyncio.sleep(0.5)
            await _churn(emulator, 20)
            await asyncio.sleep(1.5)  # the 1 s watch ends and is opened again
            with http_client(emulator.url) as client:
                await asyncio.to_thread(client.put, "/api/v1/namespaces/default/configmaps/gw-config",
                                        json=_configmap("gw-config", "v2"))
            await _wait(lambda: source.configmap.data == b"v2", "the change after the churn")
            assert (_lists(emulator) > 1) == relists, emulator.request_log[-20:]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await source.api.close()
    finally:
        emulator.stop()

"""The render worker's retry policy: capped exponential backoff, against a real refused connection."""

from __future__ import annotations

import socket

from aigw_gateway.kubeapi import Connection, KubeAPI
from aigw_operator.kube import Kube
from aigw_operator.reconciler import Reconciler


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connections are refused


async def test_failed_renders_back_off_exponentially_up_to_the_cap():
    api = KubeAPI(Connection(server=f"http://127.0.0.1:{closed_port()}"))
    reconciler = Reconciler(Kube(api), retry_delay=2.0, retry_max=10.0)
    try:
        delays = []
        for _ in range(5):
            assert await reconciler.render_once("ns") is False
            delays.append(reconciler.retry_delay_of("ns"))
        assert delays == [2.0, 4.0, 8.0, 10.0, 10.0]
        assert len(reconciler._retries) == 1  # one pending retry per namespace, not one per failure
    finally:
        for handle in reconciler._retries.values():
            handle.cancel()
        await api.close()

"""The render worker's retry policy: capped exponential backoff, against a real refused connection."""

from __future__ import annotations

import asyncio
import socket

from aigw_operator.reconciler import Reconciler


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connections are refused


async def test_failed_renders_back_off_exponentially_up_to_the_cap():
    from tests.operator.support import in_process_kube

    kube, api = in_process_kube(f"http://127.0.0.1:{closed_port()}")
    reconciler = Reconciler(kube, retry_delay=2.0, retry_max=10.0)
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


async def test_the_worker_renders_while_kopf_runs_it_and_stops_at_once_when_paused(kube_emulator):
    """kopf passes its daemons a stop flag (pause for a peer, exit); the render loop ends at once on
    it, renders nothing while none runs, and the next daemon picks up what waited."""
    from kopf._core.intents.stoppers import DaemonStopper, DaemonStoppingReason

    from tests.operator.support import Cluster, cr, in_process_kube

    cluster = Cluster(kube_emulator.url)
    cluster.install_crds()
    cluster.apply(cr("AIGateway", "gw", {}))
    kube, api = in_process_kube(cluster.url)
    reconciler = Reconciler(kube, debounce=0.01)
    loop = asyncio.get_running_loop()
    try:
        stopper = DaemonStopper()
        worker = asyncio.create_task(reconciler.work(stopper.async_waiter))
        reconciler.request("default")
        await wait_until(lambda: reconciler.renders == 1)
        assert reconciler.worker_active

        # A second daemon waits for the slot instead of rendering beside the first.
        other_stopper = DaemonStopper()
        other = asyncio.create_task(reconciler.work(other_stopper.async_waiter))
        await asyncio.sleep(0.05)
        assert not other.done()
        other_stopper.set(reason=DaemonStoppingReason.RESOURCE_DELETED)
        await asyncio.wait_for(other, 2)

        started = loop.time()
        stopper.set(reason=DaemonStoppingReason.OPERATOR_PAUSING)
        await asyncio.wait_for(worker, 2)
        assert loop.time() - started < 0.5 and not reconciler.worker_active

        reconciler.request("default")  # arrives while paused: nothing renders
        await asyncio.sleep(0.3)
        assert reconciler.renders == 1

        resumed = DaemonStopper()
        worker = asyncio.create_task(reconciler.work(resumed.async_waiter))
        await wait_until(lambda: reconciler.renders == 2)
        resumed.set(reason=DaemonStoppingReason.OPERATOR_EXITING)
        await asyncio.wait_for(worker, 2)
    finally:
        await api.close()


async def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)

"""Report fetches trust only the Service controller's EndpointSlices, on a real kube-apiserver.

The real server has no kubelet, so no pod ever becomes ready and the endpoint-slice controller
writes empty slices; what matters here is that a slice written by hand with the Service's name
label (which a namespace editor may be able to create) never makes the operator send the report
token anywhere. The bounded fetch itself (deadline over the whole fetch, byte limit) is tested
against slow and huge real HTTP servers in tests/operator/status/test_reports.py.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from aigw_operator.settings import OperatorConfig
from aigw_operator.status.reports import ReportCollector
from aigw_operator.status.round import Aggregator

from .support import Api, cr, operator_kube
from .test_safety import reconcile


def host_address() -> str | None:
    """This machine's non-loopback IPv4 address (EndpointSlices refuse loopback); no packet is sent."""
    for probe in ("10.255.255.254", "192.0.2.1", "8.8.8.8"):  # any route will do: UDP connect sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))
            except OSError:
                continue
            address = s.getsockname()[0]
            if not address.startswith("127."):
                return address
    return None


async def test_a_hand_written_endpoint_slice_gets_no_report_request(api: Api, kubeconfig, namespace):
    address = host_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this machine for a report server")
    seen: list[str] = []

    async def report(request: web.Request) -> web.Response:
        seen.append(request.headers.get("authorization", ""))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/internal/report", report)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, address, 0)
    await site.start()
    port = runner.addresses[0][1]

    api.create(cr("AIGateway", "gw", {}, namespace))
    await reconcile(kubeconfig, namespace)
    assert api.get("Service", "gw", namespace) is not None
    base = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "ports": [{"name": "ops", "port": port, "protocol": "TCP"}],  # the report lives on the ops port
            "endpoints": [{"addresses": [address], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "name": "gw-fake", "namespace": namespace}}]}
    api.create({**base, "metadata": {"name": "gw-by-hand", "namespace": namespace,
                                     "labels": {"kubernetes.io/service-name": "gw"}}})

    kube, client = operator_kube(kubeconfig)
    collector = ReportCollector(timeout=1.0, grace=0.0)
    try:
        from aigw_operator.reconciler import Reconciler

        aggregator = Aggregator(kube, Reconciler(kube), OperatorConfig(), collector, identity="safety-test")
        result = await aggregator.round(namespace)
        assert result.gateways == 1 and result.pods == 0
        await asyncio.sleep(0)  # nothing in flight: the collector asked no one
        assert seen == []
        # The same slice as the Service controller labels it is asked (the test can fail).
        api.patch("EndpointSlice", "gw-by-hand", namespace, {"metadata": {"labels": {
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}}})
        await aggregator.round(namespace)
        # (Unless the real controller already removed a slice it does not want, which it may.)
        assert (len(seen) == 1 and seen[0].startswith("Bearer ")) or api.get("EndpointSlice", "gw-by-hand", namespace) is None
    finally:
        await collector.close()
        await client.close()
        await runner.cleanup()

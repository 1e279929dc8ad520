"""Finding the pods (EndpointSlices) and reading their reports (timeouts, tokens, grace)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from aigw_config.report import PodReport
from aigw_operator.status.reports import Endpoint, ReportCollector, ready_endpoints

TOKEN = "report-token-1"


MANAGED = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}


def test_ready_endpoints_follow_the_slices():
    slices = [
        {"metadata": {"labels": MANAGED}, "addressType": "IPv4",
         "ports": [{"name": "metrics", "port": 9100}, {"name": "http", "port": 8080}, {"name": "ops", "port": 9091}],
         "endpoints": [
             {"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "gw-a"}},
             {"addresses": ["10.0.0.2"], "conditions": {"ready": False}, "targetRef": {"kind": "Pod", "name": "gw-b"}},
             {"addresses": ["10.0.0.3"], "conditions": {}, "targetRef": {"kind": "Pod", "name": "gw-c"}},
             {"addresses": [], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "gw-e"}},
         ]},
        {"metadata": {"labels": MANAGED}, "addressType": "IPv6", "ports": [{"name": "http", "port": 8080}],
         "endpoints": [{"addresses": ["fd00::7"], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "gw-d"}}]},
        {"metadata": {"labels": MANAGED}, "addressType": "IPv4", "ports": [{"name": "other", "port": 1}, {"name": "x", "port": 2}],
         "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "gw-x"}}]},
    ]
    # The report lives on the ops port: the slice's port named `ops`, else the pods' fixed 9090.
    assert ready_endpoints(slices) == [
        Endpoint("gw-a", "http://10.0.0.1:9091"),
        Endpoint("gw-c", "http://10.0.0.3:9091"),  # an unset `ready` reads as ready
        Endpoint("gw-d", "http://[fd00::7]:9090"),
        Endpoint("gw-x", "http://10.0.0.9:9090"),
    ]


def test_only_slices_of_the_service_controller_pointing_at_pods_are_trusted():
    def slc(labels: dict, ref: dict | None, address: str = "10.0.0.1") -> dict:
        return {"metadata": {"labels": {"kubernetes.io/service-name": "gw", **labels}}, "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}, **({"targetRef": ref} if ref else {})}]}

    pod = {"kind": "Pod", "name": "gw-a"}
    assert ready_endpoints([slc(MANAGED, pod)]) == [Endpoint("gw-a", "http://10.0.0.1:9090")]  # the ops port
    # Written by hand (or by another controller) with the Service's name label: not trusted.
    assert ready_endpoints([slc({}, pod, "169.254.169.254")]) == []
    assert ready_endpoints([slc({"endpointslice.kubernetes.io/managed-by": "someone"}, pod)]) == []
    # The controller's slices of a selector-less Service name no pod: nothing to ask.
    assert ready_endpoints([slc(MANAGED, None)]) == []
    assert ready_endpoints([slc(MANAGED, {"kind": "Node", "name": "n1"})]) == []


class StubPods:
    """Report servers on loopback: each answers with a PodReport, or stalls, or fails."""

    def __init__(self) -> None:
        self.behaviour: dict[str, str] = {}
        self.seen_auth: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.sent = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{pod}/internal/report", self.report)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def report(self, request: web.Request) -> web.Response:
        pod = request.match_info["pod"]
        self.seen_auth.append(request.headers.get("authorization", ""))
        behaviour = self.behaviour.get(pod, "ok")
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if behaviour == "stall":
            await asyncio.sleep(5)
        if behaviour in ("drip", "huge", "huge-declared"):
            return await self.stream(request, behaviour)
        if behaviour == "fail":
            return web.json_response({"error": "boom"}, status=500)
        if behaviour == "future":
            return web.json_response({"schemaVersion": 99, "pod": pod})
        return web.json_response(PodReport(pod=pod, generation=7).model_dump(mode="json", by_alias=True))

    async def stream(self, request: web.Request, behaviour: str) -> web.StreamResponse:
        """drip: a byte every 0.1 s (each read is quick, the whole never ends); huge: 64 MiB."""
        resp = web.StreamResponse(headers={"content-type": "application/json"})
        if behaviour == "huge-declared":
            resp.content_length = 64 * 1024 * 1024
        await resp.prepare(request)
        self.sent = 0
        try:
            if behaviour == "drip":
                await resp.write(b'{"pod": "')
                for _ in range(300):
                    await asyncio.sleep(0.1)
                    await resp.write(b"x")
                    self.sent += 1
            else:
                chunk = b" " * 65536
                for _ in range(1024):
                    await resp.write(chunk)
                    self.sent += len(chunk)
        except (ConnectionResetError, RuntimeError):
            pass  # the reader went away: what the bound is for
        return resp

    def endpoint(self, pod: str) -> Endpoint:
        return Endpoint(pod, f"{self.url}/{pod}")


@pytest.fixture
async def pods():
    stub = StubPods()
    await stub.start()
    yield stub
    await stub.runner.cleanup()


async def test_reports_are_read_with_the_token_and_a_timeout(pods):
    clock = [100.0]
    collector = ReportCollector(timeout=0.5, grace=0.0, clock=lambda: clock[0])
    pods.behaviour = {"slow": "stall", "broken": "fail", "newer": "future"}
    endpoints = [pods.endpoint(p) for p in ("a", "slow", "broken", "newer")]
    try:
        samples = await asyncio.wait_for(collector.collect(("ns", "gw"), endpoints, TOKEN), 5)
        assert [(s.name, s.report.generation) for s in samples] == [("a", 7)]
        assert set(pods.seen_auth) == {f"Bearer {TOKEN}"}
        assert await collector.collect(("ns", "gw"), endpoints, "wrong-token") == []
        assert await collector.collect(("ns", "gw"), endpoints, None) == []  # nothing rendered yet
    finally:
        await collector.close()


async def test_a_silent_pod_keeps_its_last_report_for_the_grace_period_then_drops_out(pods):
    clock = [100.0]
    collector = ReportCollector(timeout=0.5, grace=10.0, clock=lambda: clock[0])
    endpoints = [pods.endpoint("a"), pods.endpoint("b")]
    try:
        assert [s.name for s in await collector.collect(("ns", "gw"), endpoints, TOKEN)] == ["a", "b"]
        pods.behaviour["b"] = "fail"
        clock[0] = 105.0
        assert [s.name for s in await collector.collect(("ns", "gw"), endpoints, TOKEN)] == ["a", "b"]
        clock[0] = 111.0
        assert [s.name for s in await collector.collect(("ns", "gw"), endpoints, TOKEN)] == ["a"]
        pods.behaviour["b"] = "ok"
        assert [s.name for s in await collector.collect(("ns", "gw"), endpoints, TOKEN)] == ["a", "b"]
        # An endpoint that leaves the slices drops out at once, whatever the grace.
        pods.behaviour["b"] = "fail"
        assert [s.name for s in await collector.collect(("ns", "gw"), endpoints[:1], TOKEN)] == ["a"]
        assert [s.name for s in await collector.collect(("ns", "gw"), endpoints, TOKEN)] == ["a"]
    finally:
        await collector.close()


async def test_a_report_fetch_is_bounded_in_total_time_and_bytes(pods):
    """Per-read timeouts let a slow drip run forever and a huge answer fill memory: one deadline
    over the whole fetch, and a byte limit, stop both."""
    loop = asyncio.get_running_loop()
    collector = ReportCollector(timeout=1.0, grace=0.0, max_bytes=1024 * 1024)
    try:
        pods.behaviour = {"drip": "drip"}
        started = loop.time()
        assert await collector.collect(("ns", "gw"), [pods.endpoint("drip")], TOKEN) == []
        assert loop.time() - started < 2.5  # the drip would last 30 s
        for behaviour in ("huge", "huge-declared"):
            pods.behaviour = {"big": behaviour}
            started = loop.time()
            assert await collector.collect(("ns", "gw"), [pods.endpoint("big")], TOKEN) == []
            assert loop.time() - started < 2.5
        # A normal report still reads.
        assert [s.name for s in await collector.collect(("ns", "gw"), [pods.endpoint("a")], TOKEN)] == ["a"]
    finally:
        await collector.close()

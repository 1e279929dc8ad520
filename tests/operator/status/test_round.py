"""One status round in process, against the API emulator and report servers on loopback:
what is written, what is held back by the per-object write interval, and which Events are posted."""

from __future__ import annotations

import base64

import orjson
import pytest
from aiohttp import web

from aigw_config.report import LedgerReport, LedgerWriterReport, PodReport, RouteReport, TargetReport, TenantReport
from aigw_operator.status.round import Aggregator
from aigw_operator.status.reports import ReportCollector
from aigw_operator.reconciler import Reconciler
from aigw_operator.settings import OperatorConfig
from tests.operator.support import LOCAL_POLICY, G, Cluster, cr, endpoint_slice, in_process_kube, secret


class Pods:
    """Report servers on loopback; `reports[pod]` is what the pod says (checked against the token)."""

    def __init__(self) -> None:
        self.reports: dict[str, PodReport] = {}
        self.token = ""
        self.runners: dict[str, web.AppRunner] = {}
        self.ports: dict[str, int] = {}

    async def start(self, pod: str) -> int:
        async def handler(request: web.Request) -> web.Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return web.json_response({}, status=401)
            return web.json_response(self.reports[pod].model_dump(mode="json", by_alias=True))

        app = web.Application()
        app.router.add_get("/internal/report", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.runners[pod] = runner
        self.ports[pod] = runner.addresses[0][1]
        return self.ports[pod]

    async def stop(self) -> None:
        for runner in self.runners.values():
            await runner.cleanup()


@pytest.fixture
async def pods():
    p = Pods()
    yield p
    await p.stop()


def report(pod: str, generation: int, requests: int, circuit: str = "closed", spend: float = 0.0) -> PodReport:
    route = RouteReport(name="chat", window_requests=requests, latency_p95_ms=12.0, targets=(
        TargetReport(credential="up", model="m", window_requests=requests, circuit=circuit),))
    tenant = TenantReport(name="team", spend_this_period_usd=spend, period_start="2025-01-01T00:00:00Z")
    return PodReport(pod=pod, generation=generation, now=1.0, routes=(route,), tenants=(tenant,))


async def test_a_round_writes_changes_holds_back_rate_churn_and_posts_events(kube_emulator, pods):
    cluster = Cluster(kube_emulator.url)
    cluster.install_crds()
    cluster.apply(cr("ProviderCredential", "up", {"provider": "openai-compatible", "baseURL": "http://127.0.0.1:9/v1"}))
    cluster.apply(cr("ModelRoute", "chat", {"model": "gpt", "targets": [{"credentialRef": "up", "model": "m"}]}))
    cluster.apply(cr("ModelRoute", "unselected", {"model": "other", "targets": [{"credentialRef": "up"}]},
                     labels={"tier": "b"}))
    cluster.apply(secret("team-key", apiKey="sk-team"))
    cluster.apply(cr("TenantQuota", "team", {"apiKeySecretRefs": [{"name": "team-key"}], "budget": {"amount": 1}}))
    cluster.apply(cr("AIGateway", "gw", {"replicas": 2, "selector": {"matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["b"]}]}}))
    kube, api = in_process_kube(cluster.url)
    clock = [1000.0]
    config = OperatorConfig(status_min_interval=30.0, report_timeout=2.0, report_grace=0.0)
    reconciler = Reconciler(kube, policy=LOCAL_POLICY)
    collector = ReportCollector(timeout=2.0, grace=0.0)
    aggregator = Aggregator(kube, reconciler, config, collector, identity="op-test", clock=lambda: clock[0])
    try:
        await reconciler.reconcile("default")
        sec = cluster.get("v1", "Secret", "gw-credentials")
        pods.token = orjson.loads(base64.b64decode(sec["data"]["credentials.json"]))["reportToken"]
        pods.reports = {"gw-a": report("gw-a", 1, 4, spend=0.25), "gw-b": report("gw-b", 1, 2, spend=0.25)}
        for pod in ("gw-a", "gw-b"):
            port = await pods.start(pod)
            cluster.apply(endpoint_slice("gw", {pod: port}, ops_port=port))

        # A pending render goes first: the round stops writing and leaves the rest to the next one.
        reconciler.request("default")
        held = await aggregator.round("default")
        assert held.yielded and held.written == 0
        reconciler._dirty.discard("default")  # what the render worker does when it takes the request

        first = await aggregator.round("default")
        assert (first.gateways, first.pods) == (1, 2) and first.written == 5  # gw, chat, unselected, up, team
        chat = cluster.status("ModelRoute", "chat")
        assert (chat["served"], chat["requestsPerMinute"]) == ("2/2", 6.0)
        assert cluster.condition("ModelRoute", "unselected", "Ready")["reason"] == "NotServed"
        assert cluster.status("TenantQuota", "team")["spendThisPeriod"] == 0.5
        assert cluster.condition("ModelRoute", "chat", "Accepted")["status"] == "True"  # the renderer's, kept

        # Nothing new: nothing written.
        again = await aggregator.round("default")
        assert again.written == 0 and again.deferred == 0

        # Busier traffic only: held back until the object's write interval has passed.
        pods.reports["gw-a"] = report("gw-a", 1, 10, spend=0.25)
        clock[0] += 5
        busier = await aggregator.round("default")
        assert busier.written == 0 and busier.deferred >= 1
        assert cluster.status("ModelRoute", "chat")["requestsPerMinute"] == 6.0
        clock[0] += 30
        assert (await aggregator.round("default")).written >= 1
        assert cluster.status("ModelRoute", "chat")["requestsPerMinute"] == 12.0

        # A circuit opening and the budget running out are written at once, with Events.
        pods.reports["gw-b"] = report("gw-b", 1, 2, circuit="open", spend=0.8)
        clock[0] += 1
        changed = await aggregator.round("default")
        assert changed.written >= 3 and changed.events == 2
        assert cluster.condition("ModelRoute", "chat", "Degraded")["reason"] == "CircuitOpen"
        assert cluster.condition("TenantQuota", "team", "Degraded")["reason"] == "BudgetExceeded"
        reasons = {(e["involvedObject"]["name"], e["reason"], e["type"]) for e in cluster.events()}
        assert {("chat", "CircuitOpened", "Warning"), ("team", "BudgetExceeded", "Warning")} <= reasons
        assert (await aggregator.round("default")).events == 0  # said once
    finally:
        await collector.close()
        await api.close()


async def test_a_round_writes_ledger_ready_from_the_reports_and_drops_it_with_the_ledger(kube_emulator, pods):
    cluster = Cluster(kube_emulator.url)
    cluster.install_crds()
    cluster.apply(secret("redis", url="redis://redis.default:6379/0"))
    cluster.apply(secret("pg", uri="postgresql://aigw:pw@pg.default:5432/aigw"))
    ledger = {"postgres": {"urlSecretRef": {"name": "pg", "key": "uri"}}, "lagThreshold": 5}
    cluster.apply(cr("AIGateway", "gw", {"redis": {"urlSecretRef": {"name": "redis", "key": "url"}}, "ledger": ledger}))
    kube, api = in_process_kube(cluster.url)
    config = OperatorConfig(status_min_interval=30.0, report_timeout=2.0, report_grace=0.0)
    reconciler = Reconciler(kube, policy=LOCAL_POLICY)
    collector = ReportCollector(timeout=2.0, grace=0.0)
    aggregator = Aggregator(kube, reconciler, config, collector, identity="op-test", clock=lambda: 1000.0)

    def with_ledger(backlog: int, postgres: str = "ok", error: str | None = None) -> PodReport:
        writer = LedgerWriterReport(consumer="gw-ledger-x", postgres=postgres, error=error, rows_written=3)
        return PodReport(pod="gw-a", generation=1, now=1.0, ledger=LedgerReport(backlog=backlog, writer=writer))

    try:
        await reconciler.reconcile("default")
        sec = cluster.get("v1", "Secret", "gw-credentials")
        pods.token = orjson.loads(base64.b64decode(sec["data"]["credentials.json"]))["reportToken"]
        pods.reports = {"gw-a": with_ledger(2)}
        port = await pods.start("gw-a")
        cluster.apply(endpoint_slice("gw", {"gw-a": port}, ops_port=port))

        await aggregator.round("default")
        assert cluster.condition("AIGateway", "gw", "LedgerReady")["reason"] == "Writing"
        assert cluster.status("AIGateway", "gw")["ledger"] == {
            "backlog": 2, "lagThreshold": 5, "postgres": "ok", "writer": "gw-ledger-x", "rowsWritten": 3}

        pods.reports["gw-a"] = with_ledger(40, "failing", "OperationalError: connection refused")
        assert (await aggregator.round("default")).events == 1
        down = cluster.condition("AIGateway", "gw", "LedgerReady")
        assert (down["status"], down["reason"]) == ("False", "PostgresUnreachable")
        assert "connection refused" in down["message"]
        assert ("gw", "PostgresUnreachable", "Warning") in {
            (e["involvedObject"]["name"], e["reason"], e["type"]) for e in cluster.events()}

        pods.reports["gw-a"] = with_ledger(40)
        await aggregator.round("default")
        assert cluster.condition("AIGateway", "gw", "LedgerReady")["reason"] == "Lagging"
        pods.reports["gw-a"] = with_ledger(4)  # below the threshold (5), above half of it: still Lagging
        await aggregator.round("default")
        assert cluster.condition("AIGateway", "gw", "LedgerReady")["reason"] == "Lagging"
        pods.reports["gw-a"] = with_ledger(2)
        await aggregator.round("default")
        assert cluster.condition("AIGateway", "gw", "LedgerReady")["reason"] == "Writing"

        gw = cluster.get(G, "AIGateway", "gw")
        del gw["spec"]["ledger"]
        cluster.replace(gw)
        await reconciler.reconcile("default")
        await aggregator.round("default")
        assert cluster.condition("AIGateway", "gw", "LedgerReady") == {}
        assert "ledger" not in cluster.status("AIGateway", "gw")
        assert cluster.condition("AIGateway", "gw", "Ready")["status"] == "True"
    finally:
        await collector.close()
        await api.close()

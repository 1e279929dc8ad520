"""Pod reports -> status: SERVED, rates, health, conditions, transitions (pure, no cluster)."""

from __future__ import annotations

from aigw_config.config import GatewayConfig, ProviderConfig, RouteConfig, TargetConfig, TenantConfig
from aigw_config.kinds import Budget, GuardrailPolicySpec
from aigw_config.report import GuardrailReport, PodReport, RouteReport, TargetReport, TenantReport
from aigw_operator.status.observe import GatewayView, PodSample, Thresholds, observe_namespace
from aigw_operator.status.patch import event_object, status_update, transition_events

CONFIG = GatewayConfig(
    providers=(ProviderConfig(name="up", provider="openai", baseURL="http://a"),
               ProviderConfig(name="backup", provider="openai", baseURL="http://b")),
    routes=(RouteConfig(name="chat", model="gpt", targets=(TargetConfig(credential="up", model="m1"),
                                                         TargetConfig(credential="backup", model="m2", priority=1))),),
    tenants=(TenantConfig(name="team", budget=Budget(amount=1.0)),),
    guardrails={"pii": GuardrailPolicySpec()},
).sealed(4)


def target(credential: str, model: str, requests: int = 0, errors: int = 0, circuit: str = "closed",
           p95: float | None = None) -> TargetReport:
    return TargetReport(credential=credential, model=model, requests=requests, errors=errors, circuit=circuit,
                        window_requests=requests, window_errors=errors, latency_p95_ms=p95)


def pod(name: str, generation: int = 4, requests: int = 0, errors: int = 0, p95: float | None = None,
        circuit_up: str = "closed", tenant: TenantReport | None = None, guard: dict | None = None,
        config_error: str | None = None, now: float = 100.0) -> PodSample:
    route = RouteReport(name="chat", requests=requests, errors=errors, window_requests=requests, window_errors=errors,
                        latency_p95_ms=p95, targets=(target("up", "m1", requests, errors, circuit_up, p95),
                                                     target("backup", "m2")))
    report = PodReport(pod=name, generation=generation, window_seconds=60.0, now=now, routes=(route,),
                       tenants=(tenant,) if tenant else (), last_config_error=config_error,
                       guardrails=(GuardrailReport(policy="pii", counts=guard),) if guard else ())
    return PodSample(name, report)


def view(*pods: PodSample, ready: tuple[str, ...] | None = None, shared: bool = False, name: str = "gw",
         config: GatewayConfig = CONFIG, replicas: int = 2) -> GatewayView:
    return GatewayView(name=name, replicas=replicas, endpoint=f"http://{name}.ns.svc:8080", config=config,
                       shared_limits=shared, ready_pods=ready if ready is not None else tuple(p.name for p in pods),
                       pods=pods)


OBJECTS = {"ModelRoute": ["chat"], "ProviderCredential": ["up", "backup"], "TenantQuota": ["team"],
           "GuardrailPolicy": ["pii"]}


def conds(obs) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in obs.conditions}


def test_two_pods_on_the_current_generation_add_up():
    out = observe_namespace([view(pod("a", requests=30, errors=3, p95=120.0), pod("b", requests=10, p95=300.0))], OBJECTS)
    route = out[("ModelRoute", "chat")]
    f = route.fields
    assert (f["served"], f["requestsPerMinute"], f["errorPercent"], f["latencyP95Ms"]) == ("2/2", 40.0, 7.5, 300.0)
    assert conds(route) == {"Ready": ("True", "Serving"), "Degraded": ("True", "HighErrorRate")}
    up, backup = f["targets"]
    assert (up["credential"], up["health"], up["requestsPerMinute"], up["errorPercent"]) == ("up", "Degraded", 40.0, 7.5)
    assert (backup["health"], backup["requestsPerMinute"], backup.get("errorPercent")) == ("Healthy", 0.0, None)
    gw = out[("AIGateway", "gw")]
    assert (gw.fields["readyReplicas"], gw.fields["reportingPods"], gw.fields["served"]) == (2, 2, "2/2")
    assert gw.fields["pods"] == [{"name": "a", "generation": 4}, {"name": "b", "generation": 4}]
    assert conds(gw) == {"Ready": ("True", "Serving"), "Degraded": ("False", "Healthy")}
    quiet = observe_namespace([view(pod("a", requests=3, errors=3))], OBJECTS, Thresholds(min_requests=10))
    assert conds(quiet[("ModelRoute", "chat")])["Degraded"] == ("False", "Healthy")  # too few requests to judge


def test_a_pod_on_an_older_generation_is_a_rollout_in_progress():
    out = observe_namespace([view(pod("a"), pod("b", generation=3))], OBJECTS)
    route = out[("ModelRoute", "chat")]
    assert route.fields["served"] == "1/2"
    assert conds(route)["Ready"] == ("False", "RolloutInProgress")
    gw = out[("AIGateway", "gw")]
    assert conds(gw)["Ready"] == ("False", "RolloutInProgress")
    assert conds(gw)["Degraded"] == ("False", "Healthy")  # behind, but it does not refuse anything
    rejected = observe_namespace([view(pod("a"), pod("b", generation=3, config_error="IncompatibleConfig: x"))], OBJECTS)
    gw = rejected[("AIGateway", "gw")]
    assert conds(gw)["Degraded"] == ("True", "ConfigRejected") and "b refuses config generation 4" in gw.conditions[1].message
    assert gw.fields["pods"][1] == {"name": "b", "generation": 3, "configError": "IncompatibleConfig: x"}
    (event,) = transition_events("AIGateway", {}, gw)
    assert (event.reason, event.type) == ("ConfigRejected", "Warning")


def test_silent_ready_pods_and_no_pods():
    out = observe_namespace([view(pod("a"), ready=("a", "b"))], OBJECTS)
    gw = out[("AIGateway", "gw")]
    assert gw.fields["served"] == "1/1" and gw.fields["readyReplicas"] == 2
    assert conds(gw)["Degraded"] == ("True", "PodsNotReporting")
    empty = observe_namespace([view()], OBJECTS)
    assert conds(empty[("ModelRoute", "chat")]) == {"Ready": ("False", "NoReadyPods"), "Degraded": ("Unknown", "NoReadyPods")}
    assert empty[("ModelRoute", "chat")].fields["served"] == "0/0"
    assert empty[("ProviderCredential", "up")].fields["health"] == "Unknown"
    short = observe_namespace([view(pod("a"), replicas=3)], OBJECTS)[("AIGateway", "gw")]
    assert conds(short)["Ready"] == ("False", "RolloutInProgress") and "1/3 replicas ready" in short.conditions[0].message


def test_circuits_drive_target_and_credential_health_and_events():
    one = observe_namespace([view(pod("a", circuit_up="open"), pod("b"))], OBJECTS)
    route = one[("ModelRoute", "chat")]
    up = route.fields["targets"][0]
    assert (up["circuit"], up["openPods"], up["health"]) == ("open", 1, "Degraded")
    assert conds(route)["Degraded"] == ("True", "CircuitOpen")
    assert "circuit to up/m1 is open on 1/2 pods" in route.conditions[1].message
    assert one[("ProviderCredential", "up")].fields["health"] == "Degraded"
    assert one[("ProviderCredential", "up")].fields["openCircuits"] == 1
    assert one[("ProviderCredential", "backup")].fields["health"] == "Healthy"
    everywhere = observe_namespace([view(pod("a", circuit_up="open"), pod("b", circuit_up="open"))], OBJECTS)
    assert everywhere[("ModelRoute", "chat")].fields["targets"][0]["health"] == "Unhealthy"
    assert everywhere[("ProviderCredential", "up")].fields["health"] == "Unhealthy"

    patch, _ = status_update({}, route, 1)
    stored = patch["status"]
    (opened,) = transition_events("ModelRoute", {}, route)
    assert (opened.reason, opened.type) == ("CircuitOpened", "Warning") and "up/m1" in opened.message
    assert transition_events("ModelRoute", stored, route) == []  # already said: no repeat
    healed = observe_namespace([view(pod("a"), pod("b"))], OBJECTS)[("ModelRoute", "chat")]
    (closed,) = transition_events("ModelRoute", stored, healed)
    assert (closed.reason, closed.type) == ("CircuitClosed", "Normal")


def test_tenant_usage_adds_up_per_pod_or_comes_from_the_shared_limiter():
    a = TenantReport(name="team", requests=5, throttled=1, tokens_this_minute=100, requests_this_minute=5,
                     spend_this_period_usd=0.25, budget_remaining_usd=0.75, period_start="2025-01-01T00:00:00Z")
    b = TenantReport(name="team", requests=3, throttled=2, tokens_this_minute=60, requests_this_minute=3,
                     spend_this_period_usd=0.5, budget_remaining_usd=0.5, period_start="2025-01-01T00:00:00Z")
    alone = observe_namespace([view(pod("a", tenant=a), pod("b", tenant=b))], OBJECTS)[("TenantQuota", "team")]
    f = alone.fields
    assert (f["tokensThisMinute"], f["requestsThisMinute"], f["spendThisPeriod"], f["budgetRemaining"],
            f["throttledRequests"]) == (160, 8, 0.75, 0.25, 3)
    assert conds(alone) == {"Ready": ("True", "Serving"), "Degraded": ("False", "Healthy")}
    shared = observe_namespace([view(pod("a", tenant=a, now=50.0), pod("b", tenant=b, now=60.0), shared=True)],
                               OBJECTS)[("TenantQuota", "team")]
    assert (shared.fields["tokensThisMinute"], shared.fields["spendThisPeriod"], shared.fields["budgetRemaining"]) == (60, 0.5, 0.5)
    over = TenantReport(name="team", spend_this_period_usd=1.2, budget_remaining_usd=0.0)
    exceeded = observe_namespace([view(pod("a", tenant=over), shared=True)], OBJECTS)[("TenantQuota", "team")]
    assert conds(exceeded)["Degraded"] == ("True", "BudgetExceeded") and "requests are blocked" in exceeded.conditions[1].message
    (event,) = transition_events("TenantQuota", status_update({}, alone, 1)[0]["status"], exceeded)
    assert (event.reason, event.type) == ("BudgetExceeded", "Warning")
    stored = status_update({}, exceeded, 1)[0]["status"]
    assert transition_events("TenantQuota", stored, exceeded) == []
    assert [e.reason for e in transition_events("TenantQuota", stored, alone)] == ["BudgetAvailable"]


def test_guardrail_matches_add_up():
    out = observe_namespace([view(pod("a", guard={"pii.email/mask": 2}), pod("b", guard={"pii.email/mask": 1,
                                                                                         "secrets/block": 4}))], OBJECTS)
    f = out[("GuardrailPolicy", "pii")].fields
    assert f["matches"] == {"pii.email/mask": 3, "secrets/block": 4} and f["totalMatches"] == 7


def test_objects_in_no_config_say_so_and_lose_their_live_fields():
    out = observe_namespace([view(pod("a"))], {**OBJECTS, "ModelRoute": ["chat", "orphan"]})
    orphan = out[("ModelRoute", "orphan")]
    assert conds(orphan) == {"Ready": ("False", "NotServed")}
    current = {"served": "2/2", "requestsPerMinute": 3.0, "conditions": [
        {"type": "Accepted", "status": "True", "reason": "Accepted"},
        {"type": "Degraded", "status": "False", "reason": "Healthy"}]}
    patch, significant = status_update(current, orphan, 2)
    assert significant and patch["status"]["served"] is None and patch["status"]["requestsPerMinute"] is None
    assert [c["type"] for c in patch["status"]["conditions"]] == ["Accepted", "Ready"]


def test_first_gateway_by_name_reports_a_shared_object():
    other = view(pod("z1", requests=7), name="zeta")
    first = view(pod("a1", requests=2), name="alpha")
    out = observe_namespace([other, first], OBJECTS)
    assert out[("ModelRoute", "chat")].fields["gateway"] == "alpha"
    assert out[("ModelRoute", "chat")].fields["requestsPerMinute"] == 2.0
    assert {k for k in out if k[0] == "AIGateway"} == {("AIGateway", "alpha"), ("AIGateway", "zeta")}


def test_unchanged_status_is_not_rewritten_and_rate_changes_are_not_significant():
    obs = observe_namespace([view(pod("a", requests=10), pod("b"))], OBJECTS)[("ModelRoute", "chat")]
    patch, significant = status_update({"observedGeneration": 3}, obs, 3)
    assert significant and patch["status"]["served"] == "2/2"
    stored = {"observedGeneration": 3, **patch["status"]}
    assert status_update(stored, obs, 3) == (None, False)
    busier = observe_namespace([view(pod("a", requests=25), pod("b"))], OBJECTS)[("ModelRoute", "chat")]
    patch, significant = status_update(stored, busier, 3)
    assert not significant and set(patch["status"]) == {"requestsPerMinute", "targets"}
    stale = observe_namespace([view(pod("a", requests=10), pod("b", generation=3))], OBJECTS)[("ModelRoute", "chat")]
    patch, significant = status_update(stored, stale, 3)
    assert significant and patch["status"]["served"] == "1/2"
    ready = next(c for c in patch["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "RolloutInProgress", 3)


def test_event_objects_are_core_v1_events_about_the_object():
    obj = {"apiVersion": "aigw.dev/v1alpha1", "kind": "TenantQuota",
           "metadata": {"name": "team", "namespace": "ns", "uid": "u1"}}
    obs = observe_namespace([view(pod("a", tenant=TenantReport(name="team", spend_this_period_usd=2.0)))], OBJECTS)
    (spec,) = transition_events("TenantQuota", {}, obs[("TenantQuota", "team")])
    ev = event_object(obj, spec, "2025-01-01T00:00:00Z", "op-1")
    assert ev["involvedObject"] == {"apiVersion": "aigw.dev/v1alpha1", "kind": "TenantQuota", "name": "team",
                                    "namespace": "ns", "uid": "u1"}
    assert (ev["reason"], ev["type"], ev["metadata"]["generateName"]) == ("BudgetExceeded", "Warning", "team.")

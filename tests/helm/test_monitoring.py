"""ServiceMonitor, alerts and dashboard query only the metric contract of docs/operations.md."""

from __future__ import annotations

import json
import re

import pytest

from .support import CHART, ROOT

# The metric contract: name -> (type, labels). docs/operations.md documents the same table.
GEN_AI = {"gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"}
CONTRACT: dict[str, tuple[str, set[str]]] = {
    "aigw_requests_total": ("counter", {"route", "target", "tenant", "status"}),
    "aigw_request_duration_seconds": ("histogram", {"route", "target"}),
    "aigw_fallbacks_total": ("counter", {"route"}),
    "aigw_retries_total": ("counter", {"route", "target"}),
    "aigw_circuit_state": ("gauge", {"route", "target"}),
    "aigw_ratelimit_rejections_total": ("counter", {"tenant", "kind"}),
    "aigw_guardrail_actions_total": ("counter", {"policy", "detector", "action"}),
    "aigw_cost_usd_total": ("counter", {"tenant", "route"}),
    "aigw_budget_remaining_usd": ("gauge", {"tenant"}),
    "aigw_ledger_stream_length": ("gauge", set()),
    "aigw_ledger_stream_max_length": ("gauge", set()),
    "aigw_ledger_events_dropped": ("gauge", set()),
    "gen_ai_client_token_usage": ("histogram", {"gen_ai_token_type", *GEN_AI}),
    "gen_ai_client_operation_duration_seconds": ("histogram", GEN_AI),
    "gen_ai_server_time_to_first_token_seconds": ("histogram", GEN_AI),
}
# Labels Prometheus adds to every series it scrapes through the chart's ServiceMonitor.
TARGET_LABELS = {"namespace", "gateway", "pod", "service", "job", "instance", "endpoint", "container"}

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def metrics_and_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, labels the query uses on it) for each selector of a PromQL expression."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)
    grouping = set()
    for match in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        grouping |= {label.strip() for label in match.group(1).split(",") if label.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?", text):
        name, matchers = match.group(1), match.group(3)
        rest = text[match.end():].lstrip()
        if name in _KEYWORDS or (rest.startswith("(") and matchers is None):
            continue  # a function or an aggregation
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""))
        found.append((name, labels))
    return [(name, labels | grouping) for name, labels in found]


def check_query(expr: str) -> list[str]:
    problems = []
    assert expr.count("(") == expr.count(")"), f"unbalanced parentheses: {expr}"
    selectors = metrics_and_labels(expr)
    if not selectors:
        problems.append(f"no metric in {expr!r}")
    for name, labels in selectors:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in CONTRACT and not (base in CONTRACT and CONTRACT[base][0] == "histogram"):
            problems.append(f"{name} is not in the metric contract")
            continue
        allowed = CONTRACT[base][1] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
        if labels - allowed:
            problems.append(f"{name} has no label(s) {sorted(labels - allowed)}")
    return problems


def test_the_query_checker_can_fail():
    assert check_query('sum by (route) (rate(aigw_requests_total{tenant="a"}[5m]))') == []
    assert check_query("rate(aigw_request_total[5m])") == ["aigw_request_total is not in the metric contract"]
    assert check_query("sum by (model) (rate(aigw_fallbacks_total[5m]))") == ["aigw_fallbacks_total has no label(s) ['model']"]
    assert check_query('histogram_quantile(0.9, sum by (le) (rate(aigw_request_duration_seconds_bucket[5m])))') == []
    assert check_query("rate(aigw_circuit_state_bucket[5m])")  # not a histogram


def test_alerts_query_the_contract_and_name_only_grouped_labels(render):
    rule = render("monitoring").one("PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"AIGWHighErrorRatio", "AIGWBudgetExceeded", "AIGWCircuitOpen", "AIGWLedgerBacklog"}
    for name, alert in alerts.items():
        assert check_query(alert["expr"]) == [], name
        grouped = set().union(*(labels for _, labels in metrics_and_labels(alert["expr"])))
        for text in alert["annotations"].values():
            used = set(re.findall(r"\$labels\.([a-zA-Z_]+)", text))
            assert used <= grouped, f"{name} annotation uses {used - grouped}, which its expr drops"
        assert alert["labels"]["severity"] in ("warning", "critical", "info")
    assert "> 0.05" in alerts["AIGWHighErrorRatio"]["expr"] and alerts["AIGWHighErrorRatio"]["for"] == "10m"
    assert "== 2" in alerts["AIGWCircuitOpen"]["expr"]  # 2: open


def test_alert_thresholds_follow_values(render):
    rule = render("everything").one("PrometheusRule")
    error = next(r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == "AIGWHighErrorRatio")
    assert "> 0.1" in error["expr"] and error["for"] == "5m" and error["labels"]["severity"] == "critical"
    assert rule["metadata"]["labels"]["release"] == "prometheus"


def test_service_monitor_scrapes_gateway_services(render):
    monitor = render("monitoring").one("ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/part-of": "aigw",
                                                         "app.kubernetes.io/component": "gateway"}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "ops" and endpoint["path"] == "/metrics"
    assert render("everything").one("ServiceMonitor")["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    # The gateway Services are the operator's (workloads.py): the selector and port name must match them.
    from aigw_operator import workloads

    gateway = {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIGateway",
               "metadata": {"name": "gw", "namespace": "ai", "uid": "0000"}, "spec": {}}
    service = {k.kind: o for k, o in workloads.workload_objects(gateway, workloads.WorkloadOptions(image="i"))}["Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [p["name"] for p in service["spec"]["ports"]] == ["http", endpoint["port"]]


def _dashboard(render, values_set="monitoring") -> dict:
    configmap = render(values_set).one("ConfigMap", "aigw-dashboard" if values_set == "monitoring" else "ai-gateway-dashboard")
    return json.loads(configmap["data"]["aigw.json"])


def test_dashboard_is_the_chart_file_and_lands_where_the_sidecar_looks(render):
    configmap = render("monitoring").one("ConfigMap", "aigw-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["aigw.json"]) == json.loads((CHART / "files" / "dashboards" / "aigw.json").read_text())
    assert render("everything").one("ConfigMap", "ai-gateway-dashboard")["metadata"]["namespace"] == "monitoring"


def test_dashboard_panels_query_the_contract(render):
    dashboard = _dashboard(render)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queried = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            expr = target["expr"]
            assert check_query(expr) == [], f"{panel['title']}: {expr}"
            queried |= {re.sub(r"_(bucket|sum|count)$", "", n) for n, _ in metrics_and_labels(expr)}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.match(r"label_values\((.*),\s*([a-z_]+)\)$", variable["query"]["query"])
            assert inner and check_query(inner.group(1)) == [], variable["name"]
    # what the issue asks the dashboard to show: requests, errors, latency, tokens, cost per tenant, fallbacks
    titles = " ".join(p["title"].lower() for p in panels)
    for word in ("requests", "error", "duration", "tokens", "cost", "tenant", "fallbacks"):
        assert word in titles, word
    assert {"aigw_requests_total", "aigw_request_duration_seconds", "gen_ai_client_token_usage", "aigw_cost_usd_total",
            "aigw_fallbacks_total", "aigw_circuit_state", "aigw_budget_remaining_usd"} <= queried


def test_operations_doc_documents_the_contract():
    doc = (ROOT / "docs" / "operations.md").read_text()
    for name, (kind, labels) in CONTRACT.items():
        lines = [line for line in doc.splitlines() if f"`{name}`" in line and line.startswith("|")]
        assert lines, f"docs/operations.md has no table row for {name}"
        row = lines[0]
        assert kind in row, f"{name}: type {kind} not in {row}"
        for label in labels:
            assert f"`{label}`" in row, f"{name}: label {label} not in {row}"
    for alert in ("AIGWHighErrorRatio", "AIGWBudgetExceeded", "AIGWCircuitOpen"):
        assert alert in doc


@pytest.mark.parametrize("values_set", ["defaults", "gateway", "internal-redis"])
def test_monitoring_is_off_by_default(render, values_set):
    assert not render(values_set).kinds() & {"ServiceMonitor", "PrometheusRule"}

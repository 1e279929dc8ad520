"""Prometheus metrics: `aigw_*` counters and the OpenTelemetry GenAI metric names.

Correct under several uvicorn workers: `aigw serve --workers N` sets PROMETHEUS_MULTIPROC_DIR
before the workers start, prometheus_client then keeps values in per-process files, and
/metrics merges them. Label values are names from the config (routes, targets, tenants), never
keys or prompt content.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)

REQUESTS = Counter("aigw_requests_total", "Client requests by route, target, tenant and HTTP status.",
                   ["route", "target", "tenant", "status"])
REQUEST_DURATION = Histogram("aigw_request_duration_seconds", "Client request duration, to the last byte.",
                             ["route", "target"], buckets=LATENCY_BUCKETS)
FALLBACKS = Counter("aigw_fallbacks_total", "Requests that moved to a lower-priority target.", ["route"])
RETRIES = Counter("aigw_retries_total", "Retries of a failed attempt on the same target.", ["route", "target"])
CIRCUIT_STATE = Gauge("aigw_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                      ["route", "target"], multiprocess_mode="max")
RATELIMIT_REJECTIONS = Counter("aigw_ratelimit_rejections_total", "Requests refused by a tenant limit or budget.",
                               ["tenant", "kind"])
GUARDRAIL_ACTIONS = Counter("aigw_guardrail_actions_total", "Guardrail matches by policy, detector and action.",
                            ["policy", "detector", "action"])
COST = Counter("aigw_cost_usd_total", "Cost of settled usage in USD.", ["tenant", "route"])
BUDGET_REMAINING = Gauge("aigw_budget_remaining_usd", "Budget left in the current period.", ["tenant"],
                         multiprocess_mode="min")
LIMITS_FAIL_OPEN = Counter("aigw_limits_fail_open_total", "Requests served without limits because Redis was unreachable.")
CONFIG_GENERATION = Gauge("aigw_config_generation", "Config generation served.", multiprocess_mode="max")
TOKEN_USAGE = Histogram("gen_ai_client_token_usage", "Tokens used per request (GenAI semantic conventions).",
                        ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
                        buckets=TOKEN_BUCKETS)
OPERATION_DURATION = Histogram("gen_ai_client_operation_duration_seconds", "Upstream operation duration per attempt.",
                               ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
                               buckets=LATENCY_BUCKETS)
TIME_TO_FIRST_TOKEN = Histogram("gen_ai_server_time_to_first_token_seconds", "Time to the first streamed chunk.",
                                ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"],
                                buckets=LATENCY_BUCKETS)

CIRCUIT_VALUES = {"closed": 0, "half-open": 1, "open": 2}


class Children:
    """A metric's children by label values, each looked up once: prometheus-client's `labels()`
    stringifies, validates and locks on every call (about 1 µs, six times per chat request).
    Label values are names from the config, so the dict is bounded like the metric's own."""

    __slots__ = ("metric", "_by")

    def __init__(self, metric) -> None:
        self.metric = metric
        self._by: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._by.get(values)
        if child is None:
            child = self._by[values] = self.metric.labels(*values)
        return child


requests_of = Children(REQUESTS)
request_duration_of = Children(REQUEST_DURATION)
token_usage_of = Children(TOKEN_USAGE)
operation_duration_of = Children(OPERATION_DURATION)
first_token_of = Children(TIME_TO_FIRST_TOKEN)
cost_of = Children(COST)


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

"""The pod report: what a gateway pod tells the operator about the traffic it serves.

Served by every gateway pod at `GET /internal/report` (bearer token: `reportToken` from the
rendered credentials Secret, so the public API cannot read it). The operator aggregates the
reports of ready pods into CR status. Counters are cumulative since the pod started (the
operator takes differences and sums across pods); `window_*` figures cover the last
`windowSeconds` only.
"""

from __future__ import annotations

from pydantic import Field

from .config import ConfigModel

REPORT_SCHEMA_VERSION = 1


class TargetReport(ConfigModel):
    credential: str
    model: str
    requests: int = 0  # attempts sent to this target, cumulative
    errors: int = 0  # failed attempts, cumulative
    circuit: str = "closed"  # closed | open | half-open
    window_requests: int = 0
    window_errors: int = 0
    latency_p50_ms: float | None = None  # over the window
    latency_p95_ms: float | None = None


class RouteReport(ConfigModel):
    name: str
    requests: int = 0  # client requests, cumulative
    errors: int = 0  # client-visible failures, cumulative
    fallbacks: int = 0
    retries: int = 0
    window_requests: int = 0
    window_errors: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    targets: tuple[TargetReport, ...] = ()
    cache_hits: int = 0  # response-cache lookups answered from the cache, cumulative
    cache_misses: int = 0
    cache_saved_usd: float = 0.0  # provider cost the hits avoided, cumulative


class TenantReport(ConfigModel):
    name: str
    requests: int = 0
    throttled: int = 0  # refused by a rate limit or budget, cumulative
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0  # cumulative on this pod
    # Shared state read from the limiter (the same on every pod when Redis is used):
    tokens_this_minute: int | None = None
    requests_this_minute: int | None = None
    spend_this_period_usd: float | None = None
    budget_remaining_usd: float | None = None
    period_start: str | None = None


class GuardrailReport(ConfigModel):
    policy: str
    counts: dict[str, int] = Field(default_factory=dict)  # "detector/action" -> matches, cumulative


class LedgerWriterReport(ConfigModel):
    """The ledger writer's last heartbeat (it publishes one every few seconds, with a TTL)."""

    consumer: str = ""
    age_seconds: float = 0.0  # since the heartbeat was published, by the reporting pod's clock
    postgres: str = "unknown"  # ok | failing | unknown (not tried yet)
    error: str | None = None  # the failure's kind (class, SQLSTATE): never a URL or a password
    failing_seconds: float | None = None  # how long PostgreSQL has been failing
    last_commit_age_seconds: float | None = None  # since the last committed batch; None: none yet
    rows_written: int = 0  # since the writer started


class LedgerReport(ConfigModel):
    """The usage ledger as one gateway pod sees it: the stream's backlog and the writer's heartbeat."""

    backlog: int | None = None  # events waiting in the stream (no Redis: in this pod's queue); None: unreadable
    max_length: int | None = None  # the stream's bound (MAXLEN ~)
    shared: bool = True  # the backlog is the gateway's one stream (False: this pod's own queue)
    writer: LedgerWriterReport | None = None  # None: no fresh heartbeat
    error: str | None = None  # why the pod could not read the stream or the heartbeat


class PodReport(ConfigModel):
    schema_version: int = REPORT_SCHEMA_VERSION
    pod: str = ""
    started_at: float = 0.0
    now: float = 0.0
    window_seconds: float = 60.0
    generation: int | None = None  # config generation served; None: no config loaded
    hash: str | None = None
    last_config_error: str | None = None
    routes: tuple[RouteReport, ...] = ()
    tenants: tuple[TenantReport, ...] = ()
    guardrails: tuple[GuardrailReport, ...] = ()
    ledger: LedgerReport | None = None  # None: the pod runs without a ledger

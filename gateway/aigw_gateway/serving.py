"""Run uvicorn for `aigw serve`: the API socket and the ops socket, one worker or several.

Every worker serves both sockets (bound once by the parent); the app splits by the local port.
The HTTP protocol is uvicorn's httptools one with aigw's head/body limits (http_limits.py), and
`max_connections` is uvicorn's limit_concurrency (503 beyond it).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
from pathlib import Path

import uvicorn

from . import http_limits
from .gc_tuning import tune_for_serving
from .settings import SETTINGS_ENV, Settings, settings_to_json

log = logging.getLogger("aigw")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, *, keep_alive: float) -> int:
    if settings.ops_port and settings.ops_port == settings.port:
        log.error("--ops-port must differ from --port (%d)", settings.port)
        return 2
    common = dict(host=settings.host, port=settings.port, loop="uvloop", http=http_limits.LimitedHttpToolsProtocol,
                  lifespan="on", access_log=False, log_level=settings.log_level,
                  timeout_graceful_shutdown=int(settings.graceful_timeout), server_header=False,
                  proxy_headers=False,  # client addresses are not used; X-Forwarded-* parsing is pure cost
                  timeout_keep_alive=int(keep_alive), limit_concurrency=settings.max_connections or None)
    config_kwargs = dict(common)
    if settings.workers > 1:
        # Workers are separate processes: they rebuild the app from the environment, and
        # Prometheus keeps their values in files that /metrics merges.
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="aigw-metrics-")
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
            stale.unlink()
        if settings.ledger_url and settings.ledger_writer:  # one stream writer for all the workers
            lock = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) / "ledger-writer.lock"
            settings = dataclasses.replace(settings, ledger_lock_path=str(lock))
        os.environ[SETTINGS_ENV] = settings_to_json(settings)
        if not settings.redis_url:
            log.warning("%d workers without Redis: each worker keeps its own limits", settings.workers)
        config = uvicorn.Config("aigw_gateway.app:app_from_env", factory=True, workers=settings.workers, **config_kwargs)
    else:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        from .app import create_app, http_limits_of  # late: metrics are created at import, after the env is set

        http_limits.configure(http_limits_of(settings))
        config = uvicorn.Config(create_app(settings), **config_kwargs)
        tune_for_serving()  # see gc_tuning.py
    sockets = [config.bind_socket()]
    if settings.ops_port:
        try:
            sockets.append(_bind(settings.ops_host or settings.host, settings.ops_port))
        except OSError as exc:
            log.error("cannot listen on the ops port %d (%s): pass another --ops-port, or 0 for none",
                      settings.ops_port, exc.strerror or exc)
            return 1
        log.info("ops endpoints (/metrics, /internal/report) on http://%s:%d", settings.ops_host or settings.host,
                 settings.ops_port)
    if settings.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)
    return 0

"""The `aigw` command: serve, render, operator."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path

from .cache import cli as cache_cli
from .logs import configure_logging
from .settings import SETTINGS_ENV, KubeTarget, Settings, redis_url_from_env, settings_to_json


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    sources = sum(bool(x) for x in (args.files, args.config_dir, args.kube_configmap))
    if sources != 1:
        print("aigw serve: give exactly one of -f FILE..., --config-dir DIR or --kube-configmap NAME", file=sys.stderr)
        return 2
    kube = None
    if args.kube_configmap:
        kube = KubeTarget(
            namespace=args.namespace or _service_account_namespace() or "default",
            configmap=args.kube_configmap,
            secret=args.kube_secret or args.kube_configmap.removesuffix("-config") + "-credentials",
        )
    settings = Settings(
        host=args.host,
        port=args.port,
        files=tuple(args.files or ()),
        config_dir=args.config_dir,
        kube=kube,
        namespace=args.namespace or "default",
        redis_url=args.redis_url or redis_url_from_env(),
        graceful_timeout=args.graceful_timeout,
        log_level=args.log_level,
        access_log=args.access_log,
        workers=args.workers,
        pod_name=args.pod_name or os.environ.get("POD_NAME", "") or socket.gethostname(),
        report_token=args.report_token or os.environ.get("AIGW_REPORT_TOKEN") or None,
    )
    configure_logging(args.log_level)
    logging.getLogger("aigw").info("aigw gateway on http://%s:%d (%d worker%s), config from %s", args.host, args.port,
                                   args.workers, "s" if args.workers > 1 else "", settings.source_description())
    common = dict(host=args.host, port=args.port, loop="uvloop", http="httptools", lifespan="on", access_log=False,
                  log_level=args.log_level, timeout_graceful_shutdown=int(args.graceful_timeout), server_header=False,
                  proxy_headers=False,  # client addresses are not used; X-Forwarded-* parsing is pure cost
                  timeout_keep_alive=int(args.keep_alive))
    if args.workers > 1:
        # Workers are separate processes: they rebuild the app from the environment, and
        # Prometheus keeps their values in files that /metrics merges.
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="aigw-metrics-")
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
            stale.unlink()
        os.environ[SETTINGS_ENV] = settings_to_json(settings)
        if not settings.redis_url:
            logging.getLogger("aigw").warning("%d workers without Redis: each worker keeps its own limits", args.workers)
        uvicorn.run("aigw_gateway.app:app_from_env", factory=True, workers=args.workers, **common)
        return 0
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    from .app import create_app  # imported late: metrics are created at import, after the env is set

    uvicorn.Server(uvicorn.Config(create_app(settings), **common)).run()
    return 0


def _service_account_namespace() -> str | None:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.exists() else None


def _render(args: argparse.Namespace) -> int:
    from aigw_config.config import CONFIG_KEY, CREDENTIALS_KEY
    from aigw_config.render import render
    from aigw_config.resources import ConfigError, parse_documents
    from aigw_config.status import REASON_ACCEPTED

    resources = []
    try:
        for path in args.files:
            p = Path(path)
            for f in sorted(p.glob("*.y*ml")) if p.is_dir() else [p]:
                resources.extend(parse_documents(f.read_text(encoding="utf-8"), str(f), args.namespace))
    except (ConfigError, OSError) as exc:
        print(f"aigw render: {exc}", file=sys.stderr)
        return 1
    gateways = [r for r in resources if r.kind == "AIGateway"]
    result = render(resources, gateway=gateways[0] if gateways else None, namespace=args.namespace)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    config = result.config.sealed(1)
    (out / CONFIG_KEY).write_bytes(config.to_json())
    cred_path = out / CREDENTIALS_KEY
    cred_path.touch(mode=0o600, exist_ok=True)
    cred_path.write_bytes(result.credentials.to_json())
    failed = False
    for v in result.verdicts.values():
        status = "ok" if v.reason == REASON_ACCEPTED else v.reason
        failed |= not v.served
        print(f"{v.kind}/{v.name}: {status}" + ("" if v.reason == REASON_ACCEPTED else f": {v.message}"))
    print(f"wrote {out / CONFIG_KEY} ({config.hash[:19]}) and {cred_path}")
    return 1 if failed else 0


def _operator(rest: list[str]) -> int:
    # Imported by name, and only here: the gateway's serving code never loads kopf.
    return importlib.import_module("aigw_operator.cli").main(rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigw", description="Kubernetes-native AI gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("-f", "--file", dest="files", action="append", metavar="PATH",
                       help="CR YAML file or folder (repeatable); re-read on change")
    serve.add_argument("--config-dir", help="rendered config folder (config.json, credentials.json)")
    serve.add_argument("--kube-configmap", help="in a cluster: the rendered ConfigMap to watch")
    serve.add_argument("--kube-secret", help="in a cluster: the rendered Secret (default <gateway>-credentials)")
    serve.add_argument("--namespace", help="namespace of the objects (default: the pod's, or 'default')")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--redis-url", help="Redis for shared limits (also AIGW_REDIS_URL)")
    serve.add_argument("--graceful-timeout", type=float, default=30.0, help="seconds to finish in-flight requests on SIGTERM")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--workers", type=int, default=1, help="worker processes (recommended: one per core)")
    serve.add_argument("--keep-alive", type=float, default=75.0,
                       help="seconds an idle client connection stays open (longer than load balancers' 60 s idle "
                            "timeout, so they never reuse a connection the gateway is closing)")
    serve.add_argument("--access-log", action="store_true", help="one JSON line per request (with trace id)")
    serve.add_argument("--pod-name", help="name in the pod report (default: $POD_NAME or the host name)")
    serve.add_argument("--report-token", help="bearer token for /internal/report (default: the config's, "
                                              "or $AIGW_REPORT_TOKEN)")

    rend = sub.add_parser("render", help="render CR YAML into the gateway config, offline")
    rend.add_argument("-f", "--file", dest="files", action="append", required=True, metavar="PATH")
    rend.add_argument("-o", "--output", required=True, metavar="DIR")
    rend.add_argument("--namespace", default="default")

    sub.add_parser("operator", help="run the kopf operator (extra arguments go to kopf run)", add_help=False)
    cache_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["operator"]:
        return _operator(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "cache":
        return cache_cli.run(args)
    return _render(args)


if __name__ == "__main__":
    raise SystemExit(main())

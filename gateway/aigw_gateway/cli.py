"""The `aigw` command: serve, render, operator."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
import os
import socket
import sys
from pathlib import Path

from .extras import missing_extra
from .cache import cli as cache_cli
from .logs import configure_logging
from .settings import KubeTarget, Settings, ledger_url_from_env, redis_url_from_env


def _serve(args: argparse.Namespace) -> int:
    if problem := missing_extra("serve", "gateway"):
        print(problem, file=sys.stderr)
        return 2
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
        state_dir=args.state_dir,
        graceful_timeout=args.graceful_timeout,
        log_level=args.log_level,
        access_log=args.access_log,
        workers=args.workers,
        pod_name=args.pod_name or os.environ.get("POD_NAME", "") or socket.gethostname(),
        report_token=args.report_token or os.environ.get("AIGW_REPORT_TOKEN") or None,
        ops_port=args.ops_port,
        ops_host=args.ops_host,
        metrics_refresh_seconds=args.metrics_refresh_seconds,
        max_header_bytes=args.max_header_bytes,
        max_header_count=args.max_header_count,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        ledger_url=args.ledger_url or ledger_url_from_env(),
        ledger_writer=not args.no_ledger_writer,
        ledger_retention_days=args.ledger_retention_days,
    )
    configure_logging(args.log_level)
    logging.getLogger("aigw").info("aigw gateway on http://%s:%d (%d worker%s), config from %s", args.host, args.port,
                                   args.workers, "s" if args.workers > 1 else "", settings.source_description())
    from .serving import serve

    return serve(settings, keep_alive=args.keep_alive)


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
    cred_path = out / CREDENTIALS_KEY
    credentials = result.credentials.model_copy(update={"pii_hash_key": _kept_pii_key(cred_path)})
    config = result.config.model_copy(update={"credentials_hash": credentials.content_hash()}).sealed(1)
    (out / CONFIG_KEY).write_bytes(config.to_json())
    cred_path.touch(mode=0o600, exist_ok=True)
    cred_path.write_bytes(credentials.to_json())
    failed = False
    for v in result.verdicts.values():
        status = "ok" if v.reason == REASON_ACCEPTED else v.reason
        failed |= not v.served
        print(f"{v.kind}/{v.name}: {status}" + ("" if v.reason == REASON_ACCEPTED else f": {v.message}"))
    print(f"wrote {out / CONFIG_KEY} ({config.hash[:19]}) and {cred_path}")
    return 1 if failed else 0


def _kept_pii_key(cred_path: Path) -> str:
    """The PII hash key of an earlier render into the same folder, else a new random one: like
    the operator, a render keeps the key so hash tags stay comparable."""
    import secrets

    from aigw_config.config import load_credentials

    try:
        key = load_credentials(cred_path.read_bytes()).pii_hash_key
    except (OSError, ValueError):
        key = None
    return key or secrets.token_urlsafe(32)


def _operator(rest: list[str]) -> int:
    # Imported by name, and only here: the gateway's serving code never loads kopf.
    if problem := missing_extra("operator", "operator"):
        print(problem, file=sys.stderr)
        return 2
    return importlib.import_module("aigw_operator.cli").main(rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigw", description="Kubernetes-native AI gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("-f", "--file", dest="files", action="append", metavar="PATH",
                       help="CR YAML file or folder (repeatable); re-read on change")
    serve.add_argument("--config-dir", help="rendered config folder (config.json, credentials.json)")
    serve.add_argument("--state-dir", help="with -f: folder for the gateway's own secrets (its PII hash key); "
                       "default $AIGW_STATE_DIR, else $XDG_STATE_HOME/aigw, else ~/.local/state/aigw")
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
    ops = serve.add_argument_group("ops port (/metrics and /internal/report; never on the API port)")
    ops.add_argument("--ops-port", type=int, default=9090, help="port of the ops endpoints (default 9090; 0: none)")
    ops.add_argument("--ops-host", help="address of the ops port (default: --host)")
    ops.add_argument("--metrics-refresh-seconds", type=float, default=15.0,
                     help="read the budget gauges from Redis at most this often (default 15)")
    limits = serve.add_argument_group("HTTP server limits (Envoy's and nginx's defaults as reference)")
    limits.add_argument("--max-header-bytes", type=int, default=64 * 1024,
                        help="request line + headers, bytes; beyond: 431 (default 65536)")
    limits.add_argument("--max-header-count", type=int, default=100, help="headers per request; beyond: 431 (default 100)")
    limits.add_argument("--header-timeout", type=float, default=10.0,
                        help="seconds from connection (or request) start to a complete head; then 408 (default 10)")
    limits.add_argument("--body-timeout", type=float, default=60.0,
                        help="seconds from the head to a complete body; then 408 or close (default 60)")
    limits.add_argument("--max-connections", type=int, default=2048,
                        help="connections + requests in flight per worker; beyond: 503 (default 2048; 0: no cap)")

    serve.add_argument("--ledger-url", help="PostgreSQL URL of the usage ledger (also AIGW_LEDGER_URL): usage events "
                                            "are recorded and /v1/usage/history served; this process group also "
                                            "runs the ledger writer unless --no-ledger-writer")
    serve.add_argument("--no-ledger-writer", action="store_true",
                       help="emit usage events but leave writing them to a separate `aigw ledger`")
    serve.add_argument("--ledger-retention-days", type=int, default=400, help="ledger rows older than this are deleted")

    ledger = sub.add_parser("ledger", help="run the usage ledger writer (Redis stream -> PostgreSQL); "
                                           "`aigw ledger check` compares a tenant's spend with the ledger")
    _ledger_common(ledger)
    ledger.add_argument("--consumer", help="consumer name in the stream's group (default: $POD_NAME or the host name)")
    ledger.add_argument("--retention-days", type=int, default=400, help="rows older than this are deleted (0: never)")
    ledger.add_argument("--claim-idle", type=float, default=60.0,
                        help="seconds after which entries another writer left pending are taken over")
    ledger.add_argument("--batch", type=int, default=500, help="rows per insert")
    ledger.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    rend = sub.add_parser("render", help="render CR YAML into the gateway config, offline")
    rend.add_argument("-f", "--file", dest="files", action="append", required=True, metavar="PATH")
    rend.add_argument("-o", "--output", required=True, metavar="DIR")
    rend.add_argument("--namespace", default="default")

    sub.add_parser("operator", help="run the kopf operator (extra arguments go to kopf run)", add_help=False)
    cache_cli.add_parser(sub)
    return parser


def _ledger_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=None, help="Redis holding the gateway's usage stream (also AIGW_REDIS_URL)")
    parser.add_argument("--postgres-url", default=None, help="PostgreSQL of the ledger (also AIGW_LEDGER_URL)")
    parser.add_argument("--namespace", default="default", help="the AIGateway's namespace (default: default)")
    parser.add_argument("--gateway", default="local", help="the AIGateway's name (default: local, as `aigw serve -f`)")


def _ledger_urls(args: argparse.Namespace, prog: str) -> tuple[str, str] | None:
    redis_url, postgres_url = args.redis_url or redis_url_from_env(), args.postgres_url or ledger_url_from_env()
    if not redis_url or not postgres_url:
        print(f"{prog}: give --redis-url and --postgres-url (or AIGW_REDIS_URL and AIGW_LEDGER_URL)", file=sys.stderr)
        return None
    return redis_url, postgres_url


def _ledger(args: argparse.Namespace) -> int:
    from .ledger.run import run_writer

    urls = _ledger_urls(args, "aigw ledger")
    if urls is None:
        return 2
    configure_logging(args.log_level)
    asyncio.run(run_writer(*urls, args.namespace, args.gateway, consumer=args.consumer,
                           retention_days=args.retention_days, claim_idle_ms=int(args.claim_idle * 1000),
                           batch=args.batch))
    return 0


def _ledger_check(argv: list[str]) -> int:
    from .ledger.check import check

    parser = argparse.ArgumentParser(prog="aigw ledger check",
                                     description="a tenant's period spend in Redis against the ledger's sum")
    _ledger_common(parser)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--period", required=True, help="budget period label: 2026-12, 2026-W49 or 2026-12-06")
    args = parser.parse_args(argv)
    urls = _ledger_urls(args, "aigw ledger check")
    if urls is None:
        return 2
    try:
        redis_spend, ledger_sum = asyncio.run(check(*urls, args.tenant, args.period, args.namespace, args.gateway))
    except ValueError as exc:
        print(f"aigw ledger check: {exc}", file=sys.stderr)
        return 2
    difference = redis_spend - ledger_sum
    print(f"tenant {args.tenant}, period {args.period} (gateway {args.namespace}/{args.gateway})")
    print(f"redis spend:  {redis_spend:f} USD")
    print(f"ledger sum:   {ledger_sum:f} USD")
    print(f"difference:   {difference:f} USD")
    return 0 if difference == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["operator"]:
        return _operator(argv[1:])
    if argv[:2] == ["ledger", "check"]:
        return _ledger_check(argv[2:])
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "ledger":
        return _ledger(args)
    if args.command == "cache":
        return cache_cli.run(args)
    return _render(args)


if __name__ == "__main__":
    raise SystemExit(main())

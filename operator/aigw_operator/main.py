"""The kopf entry point: `kopf run -m aigw_operator.main` (or `aigw operator`).

High availability: run two or more replicas with `--peering NAME` (the KopfPeering object and
its CRD must exist: `python -m aigw_operator.peering`). Each replica takes a distinct priority
(AIGW_OPERATOR_PRIORITY, random by default); kopf pauses all but the highest, and a paused
replica resumes when the active one leaves (at once on a clean exit, after
AIGW_OPERATOR_PEERING_LIFETIME seconds when it dies).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import kopf

from . import login  # noqa: F401  (kopf logs in through the official client)
from .status.round import Aggregator
from .status.reports import ReportCollector
from .handlers import aigateway, content, secrets, workloads  # noqa: F401  (registers the handlers)
from .kube import Kube
from .kubeclient import KubeClient
from .reconciler import Reconciler
from .scope import exact_namespaces
from .settings import OperatorConfig


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    config = OperatorConfig.from_env()
    for noisy in ("httpx", "httpcore", "urllib3", "kubernetes"):  # a line per request, even at --verbose
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "aigw.dev/finalizer"
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_server_timeout + 60
    if namespaces := exact_namespaces():  # no cluster-wide Namespace/CRD scans (see scope.py)
        settings.scanning.disabled = True
        logger.info("serving the namespaces %s only", ", ".join(namespaces))
    if not settings.peering.standalone:
        if settings.peering.priority == 0:  # not chosen with `kopf run --priority`
            settings.peering.priority = config.peering_priority
        settings.peering.lifetime = config.peering_lifetime
        logger.info("peering %r with priority %d", settings.peering.name, settings.peering.priority)
    identity = os.environ.get("POD_ID") or socket.gethostname()
    memo.config = config
    memo.api = KubeClient()
    kube = Kube(memo.api)
    # The render worker is no task of ours: kopf daemons run it (handlers/aigateway.py), so
    # peering pauses it and kopf stops it at exit.
    memo.reconciler = Reconciler(kube, debounce=config.debounce_seconds, gateway_image=config.gateway_image,
                                 identity=identity, policy=config.policy)
    memo.collector = ReportCollector(timeout=config.report_timeout, grace=config.report_grace,
                                     max_bytes=config.report_max_bytes)
    memo.aggregator = Aggregator(kube, memo.reconciler, config, memo.collector, identity=identity)
    policy = config.policy
    logger.info("safety rules: images %s; private base URLs %s; Secrets %s",
                ", ".join(policy.allowed_images) or "any", "allowed" if policy.allow_private_base_urls else "refused",
                "labelled aigw.dev/secret=true only" if policy.require_secret_label else "any referenced")


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    await memo.collector.close()
    await memo.api.close()

"""Handlers of AIGateway: render its config on any change; its owned objects go with it."""

from __future__ import annotations

from typing import Any

import kopf

from aigw_config.base import GROUP, VERSION
from aigw_config.resources import ConfigError, Resource


@kopf.on.resume(GROUP, VERSION, "aigateways")
@kopf.on.create(GROUP, VERSION, "aigateways")
@kopf.on.update(GROUP, VERSION, "aigateways")
async def gateway_changed(body: kopf.Body, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler.gateway_namespaces.add(namespace)
    memo.reconciler.request(namespace)
    try:
        Resource.from_object(dict(body), namespace).parse_spec()
    except ConfigError as exc:
        raise kopf.PermanentError(str(exc)) from None


@kopf.on.event(GROUP, VERSION, "aigateways")
async def gateway_deleted(type: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    # The ConfigMap and Secret are garbage-collected through their owner reference; the
    # objects it selected need their status to say they are no longer served.
    if type == "DELETED":
        memo.reconciler.request(namespace)
        if not memo.reconciler.worker_active:  # the last AIGateway's daemon is gone: render here
            await memo.reconciler.render_inline(namespace)


@kopf.daemon(GROUP, VERSION, "aigateways", id="render-worker", cancellation_backoff=5, cancellation_timeout=5)
async def render_worker(stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    # The render worker inside kopf's lifecycle: every AIGateway's daemon offers to run it, one
    # does (reconciler.work). kopf stops them all when this replica pauses for a peer (HA) or
    # exits; the daemon of a deleted AIGateway hands over to another one.
    await memo.reconciler.work(stopped)


@kopf.daemon(GROUP, VERSION, "aigateways", id="live-status", cancellation_timeout=10)
async def live_status(name: str, namespace: str, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    # A daemon, not a timer of our own: kopf stops it when this replica pauses for a peer (HA)
    # and when the AIGateway is deleted. One round covers the namespace (status/round.py).
    await memo.aggregator.run(namespace, name, stopped)

"""The kopf entry point: `kopf run -m aigw_operator.main` (or `aigw operator`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from aigw_gateway.kubeapi import KubeAPI, load_connection

from .handlers import aigateway, content, secrets  # noqa: F401  (registers the handlers)
from .kube import Kube
from .reconciler import Reconciler
from .settings import OperatorConfig


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.from_env()
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "aigw.dev/finalizer"
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_server_timeout + 60
    memo.api = KubeAPI(load_connection())
    memo.reconciler = Reconciler(Kube(memo.api), debounce=config.debounce_seconds)
    memo.reconciler_task = asyncio.create_task(memo.reconciler.run(), name="aigw-reconciler")


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    memo.reconciler_task.cancel()
    await asyncio.gather(memo.reconciler_task, return_exceptions=True)
    await memo.api.close()

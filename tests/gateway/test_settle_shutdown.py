"""The app's shutdown sends the settlements still queued (Limiter.settle_soon) before it ends: a
slow Redis round trip in flight at shutdown still lands, and the lifespan waits for it."""

from __future__ import annotations

import asyncio
import uuid

from aigw_config.config import TenantConfig
from aigw_config.kinds import Limits
from aigw_gateway.app import create_app
from aigw_gateway.limits import Limiter, RedisStore
from aigw_gateway.settings import Settings
from tests.gateway.harness import write_crs


class Gated:
    """The gateway's Redis store, each batch of settlements held until `gate` opens."""

    def __init__(self, store) -> None:
        self.store, self.gate, self.sent = store, asyncio.Event(), 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def settle_many(self, batch):
        await self.gate.wait()
        replies = await self.store.settle_many(batch)
        self.sent += len(batch)
        return replies


def gateway_state(app):
    while not hasattr(getattr(app, "state", None), "gateway"):
        app = app.app
    return app.state.gateway


async def test_shutdown_waits_for_queued_settlements(tmp_path, fake_openai, redis_server):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    app = create_app(Settings(files=(str(crs),), redis_url=redis_server.url, ops_port=0))
    state = gateway_state(app)
    events: asyncio.Queue = asyncio.Queue()
    replies: asyncio.Queue = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                       events.get, replies.put))  # fmt: skip
    await events.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(replies.get(), 10))["type"] == "lifespan.startup.complete"
    tenant = TenantConfig(name=f"t-{uuid.uuid4().hex[:8]}", limits=Limits(tokens_per_minute=1_000_000))
    gated = Gated(state.limiter.store)
    state.limiter.store = gated
    admissions = [await state.limiter.admit(tenant, 100) for _ in range(5)]
    for admission in admissions:
        state.limiter.settle_soon(admission, 10, 10, 0.0)  # five responses went out; Redis is slow
    asyncio.get_running_loop().call_later(0.3, gated.gate.set)
    await events.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(replies.get(), 10))["type"] == "lifespan.shutdown.complete"
    assert gated.sent == 5  # the lifespan ended only after they were sent
    await asyncio.wait_for(lifespan, 5)
    store = RedisStore.from_url(redis_server.url)
    try:
        key_scope = admissions[0].window_key.split("{")[1].split("/" + tenant.name)[0]
        usage = await Limiter(store, key_scope=lambda: key_scope).usage(tenant)
        assert usage["tokens"]["used"] == 5 * 20  # settled: the reservations of 100 were replaced
    finally:
        await store.aclose()

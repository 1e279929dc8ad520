"""Fixtures of the limits tests: a controllable clock, and the limiter over each store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from aigw_gateway.limits import Limiter, MemoryStore, RedisStore
from tests.fakes.redis_server import RedisServer


class Clock:
    """Epoch seconds the test sets; injected into the limiter instead of time.time."""

    def __init__(self, iso: str = "2025-01-15T12:00:30+00:00") -> None:
        self.t = datetime.fromisoformat(iso).timestamp()

    def __call__(self) -> float:
        return self.t

    def set(self, iso: str) -> None:
        self.t = datetime.fromisoformat(iso).timestamp()

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tenant_name() -> str:
    # The session's Redis is shared by all tests: unique tenants keep their keys apart.
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[MemoryStore | RedisStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = RedisStore.from_url(redis_server.url)
    try:
        yield redis_store
    finally:
        await redis_store.aclose()


@pytest.fixture
def limiter(store: MemoryStore | RedisStore, clock: Clock) -> Limiter:
    # fail_mode closed: a broken store must fail a test, never pass it silently.
    return Limiter(store, fail_mode="closed", clock=clock)

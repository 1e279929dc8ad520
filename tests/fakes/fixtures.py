"""pytest fixtures for the fakes.

Register them once for the whole suite in the root ``tests/conftest.py``::

    pytest_plugins = ["tests.fakes.fixtures"]

(or import the fixture names into a test module).

Fixtures
--------
fake_openai          function   started ``FakeOpenAI(api_key=FAKE_OPENAI_API_KEY)``
fake_openai_factory  function   ``factory(api_key=..., **kwargs) -> started FakeOpenAI``
                                (for several providers in one test); all stopped at teardown
redis_server         session    one started ``RedisServer`` for the session.  Keys are NOT
                                flushed between tests: call ``redis_server.flushall()`` or use
                                unique key prefixes.  Do not stop/restart it -- use:
redis_server_fn      function   a private ``RedisServer`` a test may stop/restart/kill/pause
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.openai_provider import FakeOpenAI
from tests.fakes.redis_server import RedisServer

__all__ = ["FAKE_OPENAI_API_KEY", "fake_openai", "fake_openai_factory", "redis_server", "redis_server_fn"]

FAKE_OPENAI_API_KEY = "sk-upstream-test"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(api_key=FAKE_OPENAI_API_KEY)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_openai_factory() -> Iterator[Callable[..., FakeOpenAI]]:
    fakes: list[FakeOpenAI] = []

    def factory(api_key: str | None = FAKE_OPENAI_API_KEY, **kwargs: Any) -> FakeOpenAI:
        fake = FakeOpenAI(api_key=api_key, **kwargs)
        fake.start()
        fakes.append(fake)
        return fake

    try:
        yield factory
    finally:
        for fake in fakes:
            fake.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    srv = RedisServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def redis_server_fn() -> Iterator[RedisServer]:
    srv = RedisServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()

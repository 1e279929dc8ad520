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


def fake_fixtures(cls: type[FakeOpenAI], default_key: str | None, name: str):
    """The two fixtures every fake provider gets: `<name>` (one started fake) and
    `<name>_factory` (start as many as a test needs); all are stopped at teardown."""

    @pytest.fixture(name=name)
    def one() -> Iterator[FakeOpenAI]:
        fake = cls(api_key=default_key)
        fake.start()
        try:
            yield fake
        finally:
            fake.stop()

    @pytest.fixture(name=f"{name}_factory")
    def factory() -> Iterator[Callable[..., FakeOpenAI]]:
        fakes: list[FakeOpenAI] = []

        def make(api_key: str | None = default_key, **kwargs: Any) -> FakeOpenAI:
            fake = cls(api_key=api_key, **kwargs)
            fake.start()
            fakes.append(fake)
            return fake

        try:
            yield make
        finally:
            for fake in fakes:
                fake.stop()

    return one, factory


fake_openai, fake_openai_factory = fake_fixtures(FakeOpenAI, FAKE_OPENAI_API_KEY, "fake_openai")


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

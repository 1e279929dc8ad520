"""pytest fixtures for the fake Anthropic provider (import them into a test module or conftest).

fake_anthropic          function  started ``FakeAnthropic(api_key=FAKE_ANTHROPIC_API_KEY)``
fake_anthropic_factory  function  ``factory(api_key=..., **kwargs) -> started FakeAnthropic``;
                                  all stopped at teardown
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.anthropic_provider import FakeAnthropic

__all__ = ["FAKE_ANTHROPIC_API_KEY", "fake_anthropic", "fake_anthropic_factory"]

FAKE_ANTHROPIC_API_KEY = "sk-ant-upstream-test"


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(api_key=FAKE_ANTHROPIC_API_KEY)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_anthropic_factory() -> Iterator[Callable[..., FakeAnthropic]]:
    fakes: list[FakeAnthropic] = []

    def factory(api_key: str | None = FAKE_ANTHROPIC_API_KEY, **kwargs: Any) -> FakeAnthropic:
        fake = FakeAnthropic(api_key=api_key, **kwargs)
        fake.start()
        fakes.append(fake)
        return fake

    try:
        yield factory
    finally:
        for fake in fakes:
            fake.stop()

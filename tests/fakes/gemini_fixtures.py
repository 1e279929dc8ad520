"""pytest fixtures for the fake Gemini provider; import them into a test module or conftest::

    from tests.fakes.gemini_fixtures import FAKE_GEMINI_API_KEY, fake_gemini  # noqa: F401

fake_gemini          function   started ``FakeGemini(api_key=FAKE_GEMINI_API_KEY)``
fake_gemini_factory  function   ``factory(api_key=..., **kwargs) -> started FakeGemini``; all stopped at teardown
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.gemini_provider import FakeGemini

__all__ = ["FAKE_GEMINI_API_KEY", "fake_gemini", "fake_gemini_factory"]

FAKE_GEMINI_API_KEY = "g-upstream-test"


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini(api_key=FAKE_GEMINI_API_KEY)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_gemini_factory() -> Iterator[Callable[..., FakeGemini]]:
    fakes: list[FakeGemini] = []

    def factory(api_key: str | None = FAKE_GEMINI_API_KEY, **kwargs: Any) -> FakeGemini:
        fake = FakeGemini(api_key=api_key, **kwargs)
        fake.start()
        fakes.append(fake)
        return fake

    try:
        yield factory
    finally:
        for fake in fakes:
            fake.stop()

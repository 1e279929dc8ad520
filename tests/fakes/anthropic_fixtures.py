"""pytest fixtures for the fake Anthropic provider (registered in tests/conftest.py).

fake_anthropic          function   started ``FakeAnthropic(api_key=FAKE_ANTHROPIC_API_KEY)``
fake_anthropic_factory  function   ``factory(api_key=..., **kwargs) -> started FakeAnthropic``; all stopped at teardown
"""

from __future__ import annotations

from tests.fakes.anthropic_provider import FakeAnthropic
from tests.fakes.fixtures import fake_fixtures

__all__ = ["FAKE_ANTHROPIC_API_KEY", "fake_anthropic", "fake_anthropic_factory"]

FAKE_ANTHROPIC_API_KEY = "sk-ant-upstream-test"

fake_anthropic, fake_anthropic_factory = fake_fixtures(FakeAnthropic, FAKE_ANTHROPIC_API_KEY, "fake_anthropic")

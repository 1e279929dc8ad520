"""pytest fixtures for the fake Gemini provider (registered in tests/conftest.py).

fake_gemini          function   started ``FakeGemini(api_key=FAKE_GEMINI_API_KEY)``
fake_gemini_factory  function   ``factory(api_key=..., **kwargs) -> started FakeGemini``; all stopped at teardown
"""

from __future__ import annotations

from tests.fakes.fixtures import fake_fixtures
from tests.fakes.gemini_provider import FakeGemini

__all__ = ["FAKE_GEMINI_API_KEY", "fake_gemini", "fake_gemini_factory"]

FAKE_GEMINI_API_KEY = "g-upstream-test"

fake_gemini, fake_gemini_factory = fake_fixtures(FakeGemini, FAKE_GEMINI_API_KEY, "fake_gemini")

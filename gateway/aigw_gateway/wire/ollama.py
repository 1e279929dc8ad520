"""Ollama's /api/chat: which canonical fields it honours (the adapter is providers/ollama.py)."""

from __future__ import annotations

from .common import BASE
from .rules import TRANSLATED, FieldRules, limited


def _tool_choice(value, _request):
    if value in (None, "auto", "none"):
        return None
    return "cannot force a tool call on Ollama (only auto or none)"


FIELDS = FieldRules(api="ollama", label="Ollama", fields={
    **BASE,
    "seed": TRANSLATED, "top_k": TRANSLATED, "presence_penalty": TRANSLATED, "frequency_penalty": TRANSLATED,
    "response_format": TRANSLATED, "reasoning_effort": TRANSLATED, "reasoning_budget": TRANSLATED,
    "tool_choice": limited(_tool_choice),
})

"""Realistic agent traffic, translated to every provider API and compared with golden files:
a coding agent on the Messages API (long system prompt with cache breakpoints, cached tools,
thinking, a system turn mid-conversation, a failed tool call, a screenshot inside a tool result,
a PDF), and an agent on Chat Completions (parallel tool calls, structured output, reasoning).
AIGW_UPDATE_GOLDEN=1 rewrites the files; review the diff like code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conformance.features import PDF, PNG, SCHEMA, TOOL_ANTHROPIC, TOOL_OPENAI
from tests.conformance.translate import PROVIDERS, Rejected, upstream

GOLDEN = Path(__file__).parent / "golden"
SYSTEM = "You are a coding agent. " + "Follow the repository conventions. " * 60
CACHE = {"type": "ephemeral"}

CODING_AGENT = {
    "model": "m", "max_tokens": 16000, "stream": True,
    "system": [{"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": SYSTEM, "cache_control": CACHE}],
    "tools": [TOOL_ANTHROPIC, {"name": "read", "description": "read a file",
                               "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
                               "cache_control": CACHE}],
    "thinking": {"type": "enabled", "budget_tokens": 4000},
    "metadata": {"user_id": "session-42"},
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "fix the failing test"},
                                     {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                                     "data": PDF}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "run the tests first", "signature": "sig-a"},
            {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"cmd": "pytest -x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                                      "content": "exit 1: 1 failed"}]},
        {"role": "system", "content": "The user switched to plan mode."},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_2", "name": "read", "input": {"path": "ui.png"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [
                {"type": "text", "text": "the rendered page"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
            {"type": "text", "text": "what now?", "cache_control": CACHE}]},
    ],
}

CHAT_AGENT = {
    "model": "m", "max_completion_tokens": 4000, "reasoning_effort": "medium", "parallel_tool_calls": True,
    "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": SCHEMA}},
    "tools": [TOOL_OPENAI], "user": "u-7",
    "messages": [
        {"role": "developer", "content": "Answer in JSON."},
        {"role": "user", "content": "weather in Oslo and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "weather oslo"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "weather rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "rain"},
        {"role": "tool", "tool_call_id": "call_b", "content": "sun"},
    ],
}

CASES = [("anthropic", "coding_agent", CODING_AGENT), ("openai", "chat_agent", CHAT_AGENT)]


def _result(client: str, provider: str, body: dict) -> dict:
    try:
        out, dropped = upstream(client, provider, body, stream=bool(body.get("stream")))
    except Rejected as err:
        return {"rejected": {"param": err.param, "message": str(err)}}
    return {"upstream": out, "dropped": list(dropped)}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("client,name,body", CASES, ids=[c[1] for c in CASES])
def test_agent_traffic_matches_golden(client, name, body, provider):
    if client == provider:
        pytest.skip("same API: the passthrough path")
    result = _result(client, provider, body)
    path = GOLDEN / f"{name}__{provider}.json"
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    if os.environ.get("AIGW_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_drop_route_serves_the_coding_agent_everywhere(provider):
    """With unsupportedFields: drop every target takes the request; what was dropped is listed."""
    if provider == "anthropic":
        return
    try:
        _, dropped = upstream("anthropic", provider, CODING_AGENT, mode="drop", stream=True)
    except Rejected as err:  # content a target cannot take at all (a PDF on Bedrock) is still a 400
        assert err.param.startswith("messages[")
        return
    assert isinstance(dropped, tuple)

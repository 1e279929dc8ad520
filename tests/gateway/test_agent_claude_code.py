"""Claude Code through the gateway: a golden replay of what it sends (tests/fixtures/agents) and,
when scripts/get-agents installed it, a live `claude -p` in its default mode."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.fixtures.agents import claude_code
from tests.gateway.harness import TENANT_KEY, write_crs

ROUTE = "claude-route"
UPSTREAM = "claude-fake~no_tools=1"
RECORDED_MODEL = b'"model":"claude-fake~no_tools=1"'


@pytest.fixture
def gw(tmp_path, fake_anthropic, start_gateway):
    path = write_crs(tmp_path / "crs.yaml", fake_anthropic.base_url, provider="anthropic", model=ROUTE,
                     upstream_model=UPSTREAM, upstream_key=FAKE_ANTHROPIC_API_KEY)
    return start_gateway("-f", str(path))


def test_golden_claude_code_request_passes_through(gw, fake_anthropic):
    recorded = claude_code.BODY.read_bytes()
    assert recorded.count(RECORDED_MODEL) == 1
    body = recorded.replace(RECORDED_MODEL, f'"model":"{ROUTE}"'.encode())
    headers = {**json.loads(claude_code.HEADERS.read_text()), "x-api-key": TENANT_KEY}
    headers.pop("accept-encoding")
    with httpx.stream("POST", gw.url + "/v1/messages", content=body, headers=headers, timeout=15) as r:
        events = b"".join(r.iter_raw())
    assert r.status_code == 200, events
    assert b"event: message_stop" in events and b"echo: " in events
    upstream = fake_anthropic.last_request
    assert upstream.body == recorded  # byte for byte, the model name mapped back to the recorded one
    assert [m["role"] for m in upstream.json["messages"]] == ["user", "system"]  # its mid-conversation system turn
    for name in ("anthropic-beta", "anthropic-version"):
        assert upstream.headers[name] == headers[name]
    assert upstream.headers["x-api-key"] == FAKE_ANTHROPIC_API_KEY
    assert not {"x-claude-code-session-id", "x-stainless-os", "anthropic-dangerous-direct-browser-access"} & set(upstream.headers)


def test_claude_code_completes_a_prompt(gw, fake_anthropic):
    if not claude_code.installed():
        pytest.skip("Claude Code is not installed: run scripts/get-agents")
    done = claude_code.run(gw.url, TENANT_KEY, ROUTE, "say hello", timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{gw.log()[-3000:]}"
    assert "echo:" in done.stdout and "say hello" in done.stdout
    messages = [r for r in fake_anthropic.requests if r.path == "/v1/messages"]
    assert messages and all(r.json["model"] == UPSTREAM for r in messages)
    assert any(m.get("role") == "system" for r in messages for m in r.json["messages"])  # default mode's system turn
    assert all("claude-code" in r.headers.get("anthropic-beta", "") for r in messages)

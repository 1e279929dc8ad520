"""Real agents on the Responses API, through the gateway, each bounded in time:
the OpenAI Agents SDK with its default model (OpenAIResponsesModel, default model name), the
Vercel AI SDK's `openai(model)`, and the Codex CLI (`codex exec` with a custom provider,
wire_api = "responses"). Each runs a tool loop (Codex: completes a prompt) against OpenAI
(native), Anthropic and Gemini targets."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.fakes.openai_provider import FakeOpenAI
from tests.gateway.agents_support import (BACKENDS, NPM, node_module, npm_bin, record, recording, run,
                                          single_route_crs)
from tests.gateway.harness import ROOT, TENANT_KEY

agents = pytest.importorskip("agents", reason="openai-agents not installed: pip install -e '.[test]'")


def _gateway(tmp_path, start_gateway, factories, backend: str, model: str, unsupported: str = "reject"):
    _, cls, key, _ = BACKENDS[backend]
    fake = cls(api_key=key).start()
    factories.append(fake)
    gw = start_gateway("-f", single_route_crs(tmp_path / "crs.yaml", backend, fake, model, unsupported))
    return gw, fake


@pytest.fixture
def fakes():
    started: list = []
    yield started
    for fake in started:
        fake.stop()


def _run_agents_sdk(base_url: str) -> tuple[object, list[str]]:
    from agents import Agent, OpenAIProvider, RunConfig, Runner, function_tool
    from openai import AsyncOpenAI

    calls: list[str] = []

    @function_tool
    def get_weather(arg: str) -> str:
        """The weather in a city."""
        calls.append(arg)
        return "sunny in " + arg

    async def main():
        client = AsyncOpenAI(base_url=base_url, api_key=TENANT_KEY, max_retries=0, timeout=20)
        agent = Agent(name="weather", instructions="Answer with the tool.", tools=[get_weather])  # default model
        config = RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)
        try:
            return await asyncio.wait_for(Runner.run(agent, "weather in Paris?", run_config=config, max_turns=4), 60)
        finally:
            await client.close()

    return asyncio.run(main()), calls


def _record_direct(name: str, drive) -> None:
    """In record mode: run the agent straight against a fake OpenAI, which keeps the agent's
    own headers and body (behind the gateway it would see the gateway's headers)."""
    if not recording():
        return
    with FakeOpenAI() as direct:
        drive(direct.base_url)
        record(name, direct.requests)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_openai_agents_sdk_tool_loop(tmp_path, start_gateway, fakes, backend):
    from agents.models import get_default_model

    # The SDK's default model settings send text.verbosity "low", which only OpenAI honours: a
    # translated route must say it may drop it (else a 400 names `verbosity`; see test_cross_format).
    gw, fake = _gateway(tmp_path, start_gateway, fakes, backend, get_default_model(),
                        "reject" if backend == "openai" else "drop")
    result, calls = _run_agents_sdk(gw.url + "/v1")
    assert calls == ["value"]  # the fake's function_call arguments: {"arg": "value"}
    assert result.final_output == "echo: sunny in value"
    if backend == "openai":
        assert [r.path for r in fake.requests] == ["/v1/responses", "/v1/responses"]
        _record_direct("openai-agents", _run_agents_sdk)


def _vercel_script(tmp_path, base_url: str, model: str):
    script = tmp_path / "tool_loop.mjs"
    script.write_text(f"""
import {{ createOpenAI }} from '@ai-sdk/openai';
import {{ generateText, tool, stepCountIs, jsonSchema }} from 'ai';
const openai = createOpenAI({{ baseURL: {json.dumps(base_url)}, apiKey: process.env.AIGW_KEY }});
const calls = [];
const result = await generateText({{
  model: openai({json.dumps(model)}),
  prompt: 'weather in Paris?',
  tools: {{
    get_weather: tool({{
      description: 'The weather in a city',
      inputSchema: jsonSchema({{ type: 'object', properties: {{ arg: {{ type: 'string' }} }}, required: ['arg'] }}),
      execute: async ({{ arg }}) => {{ calls.push(arg); return 'sunny in ' + arg; }},
    }}),
  }},
  stopWhen: stepCountIs(4),
}});
console.log(JSON.stringify({{ text: result.text, calls, steps: result.steps.length }}));
""")
    return script


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_vercel_ai_sdk_tool_loop(tmp_path, start_gateway, fakes, backend):
    node_module("ai")
    node_module("@ai-sdk/openai")
    gw, fake = _gateway(tmp_path, start_gateway, fakes, backend, "gpt-test")
    (tmp_path / "node_modules").symlink_to(NPM / "node_modules")  # bare imports resolve from the script's folder

    def drive(base_url: str) -> dict:
        script = _vercel_script(tmp_path, base_url, "gpt-test")
        proc = run(["node", str(script)], env={**os.environ, "AIGW_KEY": TENANT_KEY}, cwd=tmp_path, timeout=60)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return json.loads(proc.stdout.strip().splitlines()[-1])

    out = drive(gw.url + "/v1")
    assert out["calls"] == ["value"] and out["text"].startswith("echo: ") and "sunny in value" in out["text"]
    if backend == "openai":
        assert {r.path for r in fake.requests} == {"/v1/responses"}
        _record_direct("vercel-ai-sdk", drive)


def _codex_home(tmp_path, base_url: str, model: str):
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f"""model = "{model}"
model_provider = "aigw"

[model_providers.aigw]
name = "aigw"
base_url = "{base_url}"
env_key = "AIGW_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
""")
    return home


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_codex_cli_completes_a_prompt(tmp_path, start_gateway, fakes, backend):
    codex = npm_bin("codex")
    gw, fake = _gateway(tmp_path, start_gateway, fakes, backend, "gpt-test")
    work = tmp_path / "work"
    work.mkdir()
    # A translated target serves function tools only (a hosted or namespace tool is a 400 naming it):
    # Codex's web search and multi-agent namespace are switched off there, as a user would.
    hosted_off = [] if backend == "openai" else ["--disable", "multi_agent", "-c", 'web_search="disabled"']

    def drive(base_url: str) -> str:
        home = _codex_home(tmp_path, base_url, "gpt-test")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
        env.update({"CODEX_HOME": str(home), "AIGW_KEY": TENANT_KEY, "HOME": str(tmp_path), "NO_COLOR": "1"})
        proc = run([str(codex), "exec", "--skip-git-repo-check", "--sandbox", "read-only", *hosted_off, "say hello"],
                   env=env, cwd=work, timeout=90)
        assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
        return proc.stdout

    out = drive(gw.url + "/v1")
    assert "echo: " in out, out[-2000:]
    if backend == "openai":
        assert fake.requests and all(r.path == "/v1/responses" for r in fake.requests if r.method == "POST")
        _record_direct("codex-cli", drive)

"""Every SDK against every backend, through one real gateway: chat, streamed chat and a tool call.

The official openai, anthropic and google-genai clients, changed only in base URL and key, call
routes backed by fake OpenAI, Anthropic and Gemini servers.
"""

from __future__ import annotations

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.fakes.anthropic_provider import FakeAnthropic
from tests.fakes.fixtures import FAKE_OPENAI_API_KEY
from tests.fakes.gemini_fixtures import FAKE_GEMINI_API_KEY
from tests.fakes.gemini_provider import FakeGemini
from tests.fakes.openai_provider import FakeOpenAI
from tests.gateway.harness import TENANT_KEY, GatewayProcess

BACKENDS = {
    "openai": ("openai-compatible", FakeOpenAI, FAKE_OPENAI_API_KEY, "fake"),
    "anthropic": ("anthropic", FakeAnthropic, FAKE_ANTHROPIC_API_KEY, "claude-fake"),
    "gemini": ("gemini", FakeGemini, FAKE_GEMINI_API_KEY, "gemini-2.5-flash"),
}
SDKS = ("openai", "anthropic", "gemini")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("matrix")
    fakes, docs = {}, []
    for name, (provider, cls, key, upstream_model) in BACKENDS.items():
        fake = cls(api_key=key).start()
        fakes[name] = fake
        docs.append(f"""apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: {name}}}
spec: {{provider: {provider}, baseURL: "{fake.base_url}", apiKeySecretRef: {{name: {name}-key}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}-key}}
stringData: {{apiKey: {key}}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: via-{name}}}
spec: {{model: via-{name}, targets: [{{credentialRef: {name}, model: {upstream_model}}}]}}
""")
    docs.append(f"""apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team}}
spec: {{apiKeySecretRefs: [{{name: team-key}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: team-key}}
stringData: {{apiKey: {TENANT_KEY}}}
""")
    crs = tmp / "crs.yaml"
    crs.write_text("---\n".join(docs))
    gw = GatewayProcess(["-f", str(crs)], tmp / "gateway.log")
    try:
        gw.wait_ready()
        yield gw
    finally:
        gw.stop()
        for fake in fakes.values():
            fake.stop()


TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def run_chat(sdk: str, gw, model: str, prompt: str) -> str:
    if sdk == "openai":
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)
        return c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}]).choices[0].message.content
    if sdk == "anthropic":
        c = anthropic.Anthropic(base_url=gw.url, api_key=TENANT_KEY, max_retries=0, timeout=10)
        msg = c.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": prompt}])
        return "".join(b.text for b in msg.content if b.type == "text")
    c = genai.Client(api_key=TENANT_KEY, http_options=gtypes.HttpOptions(base_url=gw.url, timeout=10_000))
    return c.models.generate_content(model=model, contents=prompt).text


def run_stream(sdk: str, gw, model: str, prompt: str) -> tuple[str, int]:
    if sdk == "openai":
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)
        chunks = list(c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                stream=True, stream_options={"include_usage": True}))
        return "".join(x.choices[0].delta.content or "" for x in chunks if x.choices), len(chunks)
    if sdk == "anthropic":
        c = anthropic.Anthropic(base_url=gw.url, api_key=TENANT_KEY, max_retries=0, timeout=10)
        with c.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": prompt}]) as s:
            parts = list(s.text_stream)
        return "".join(parts), len(parts)
    c = genai.Client(api_key=TENANT_KEY, http_options=gtypes.HttpOptions(base_url=gw.url, timeout=10_000))
    parts = [ch.text or "" for ch in c.models.generate_content_stream(model=model, contents=prompt)]
    return "".join(parts), len(parts)


def run_tool(sdk: str, gw, model: str) -> str:
    if sdk == "openai":
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=10)
        r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "weather?"}], tools=[
            {"type": "function", "function": {"name": "get_weather", "parameters": TOOL_SCHEMA}}])
        assert r.choices[0].finish_reason == "tool_calls"
        return r.choices[0].message.tool_calls[0].function.name
    if sdk == "anthropic":
        c = anthropic.Anthropic(base_url=gw.url, api_key=TENANT_KEY, max_retries=0, timeout=10)
        msg = c.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "weather?"}],
                                tools=[{"name": "get_weather", "input_schema": TOOL_SCHEMA}])
        assert msg.stop_reason == "tool_use"
        return next(b.name for b in msg.content if b.type == "tool_use")
    c = genai.Client(api_key=TENANT_KEY, http_options=gtypes.HttpOptions(base_url=gw.url, timeout=10_000))
    decl = gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema=TOOL_SCHEMA)
    r = c.models.generate_content(model=model, contents="weather?", config=gtypes.GenerateContentConfig(
        tools=[gtypes.Tool(function_declarations=[decl])],
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True)))
    return r.function_calls[0].name


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("sdk", SDKS)
def test_chat(gateway, sdk, backend):
    assert run_chat(sdk, gateway, f"via-{backend}", f"hello from {sdk}") == f"echo: hello from {sdk}"


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("sdk", SDKS)
def test_stream(gateway, sdk, backend):
    text, pieces = run_stream(sdk, gateway, f"via-{backend}", "one two three four five")
    assert text == "echo: one two three four five" and pieces >= 2


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("sdk", SDKS)
def test_tool_call(gateway, sdk, backend):
    assert run_tool(sdk, gateway, f"via-{backend}") == "get_weather"

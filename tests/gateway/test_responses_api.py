"""The Responses API through a real gateway with the official openai SDK: plain, streamed (both
SDK styles), a function tool round trip and follow-ups with previous_response_id, against an
OpenAI target (native: the fake gets /responses) and translated Anthropic and Gemini targets."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.fakes.anthropic_provider import FakeAnthropic
from tests.fakes.fixtures import FAKE_OPENAI_API_KEY
from tests.fakes.gemini_fixtures import FAKE_GEMINI_API_KEY
from tests.fakes.gemini_provider import FakeGemini
from tests.fakes.openai_provider import FakeOpenAI
from tests.gateway.harness import TENANT_KEY, GatewayProcess

BACKENDS = {
    "openai": ("openai", FakeOpenAI, FAKE_OPENAI_API_KEY, "fake"),
    "anthropic": ("anthropic", FakeAnthropic, FAKE_ANTHROPIC_API_KEY, "claude-fake"),
    "gemini": ("gemini", FakeGemini, FAKE_GEMINI_API_KEY, "gemini-2.5-flash"),
}
OTHER_KEY = "sk-tenant-other"
TOOL = {"type": "function", "name": "get_weather", "description": "weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def crs_for(fakes: dict) -> str:
    docs = []
    for name, (provider, _, key, upstream_model) in BACKENDS.items():
        docs.append(f"""apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: {name}}}
spec: {{provider: {provider}, baseURL: "{fakes[name].base_url}", apiKeySecretRef: {{name: {name}-key}}}}
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
    for tenant, key in (("team", TENANT_KEY), ("other", OTHER_KEY)):
        docs.append(f"""apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: {tenant}}}
spec: {{apiKeySecretRefs: [{{name: {tenant}-key}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {tenant}-key}}
stringData: {{apiKey: {key}}}
""")
    return "---\n".join(docs)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("responses")
    fakes = {name: cls(api_key=key).start() for name, (_, cls, key, _) in BACKENDS.items()}
    crs = tmp / "crs.yaml"
    crs.write_text(crs_for(fakes))
    gw = GatewayProcess(["-f", str(crs)], tmp / "gateway.log")
    try:
        gw.wait_ready()
        yield gw, fakes
    finally:
        gw.stop()
        for fake in fakes.values():
            fake.stop()


def client(gw, key: str = TENANT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=15)


def test_openai_target_gets_the_body_natively(env):
    gw, fakes = env
    body = {"model": "via-openai", "input": "hello", "instructions": "be brief", "metadata": {"k": "v"},
            "unknown_future_field": {"x": 1}}
    before = len(fakes["openai"].requests)
    r = client(gw).post("/responses", body=body, cast_to=object)
    sent = fakes["openai"].requests[before]
    assert sent.path == "/v1/responses"
    assert sent.json == {**body, "model": "fake"}  # as it came, model name replaced
    assert r["model"] == "via-openai" and r["id"].startswith("resp_aigwn_")
    assert r["output"][0]["content"][0]["text"] == "echo: hello"


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_plain(env, backend):
    gw, _ = env
    r = client(gw).responses.create(model=f"via-{backend}", input="hello there", instructions="be brief")
    assert r.output_text == "echo: hello there"
    assert r.status == "completed" and r.model == f"via-{backend}"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_streamed(env, backend):
    gw, _ = env
    events = list(client(gw).responses.create(model=f"via-{backend}", input="one two three", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in ("response.output_item.added", "response.content_part.added", "response.output_text.done",
                 "response.content_part.done", "response.output_item.done"):
        assert kind in kinds, kinds
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: one two three"
    assert [e.sequence_number for e in events] == sorted(e.sequence_number for e in events)
    final = events[-1].response
    assert final.output_text == "echo: one two three" and final.usage.output_tokens > 0


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_stream_helper(env, backend):
    gw, _ = env
    with client(gw).responses.stream(model=f"via-{backend}", input="stream helper") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: stream helper"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_function_tool_round_trip(env, backend, stream):
    gw, _ = env
    c = client(gw)
    model = f"via-{backend}"

    def create(**kw):
        if not stream:
            return c.responses.create(model=model, tools=[TOOL], **kw)
        with c.responses.stream(model=model, tools=[TOOL], **kw) as s:
            return s.get_final_response()

    first = create(input="weather in Paris?")
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"arg": "value"}
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}
    # with the history by id, and with the history sent in full
    by_id = create(previous_response_id=first.id, input=[result])
    assert by_id.output_text == "echo: sunny, 21C"
    full = create(input=[{"role": "user", "content": "weather in Paris?"},
                         {"type": "function_call", "call_id": call.call_id, "name": call.name,
                          "arguments": call.arguments}, result])
    assert full.output_text == "echo: sunny, 21C"


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_follow_up_with_previous_response_id(env, backend):
    gw, fakes = env
    c = client(gw)
    first = c.responses.create(model=f"via-{backend}", input="my name is Ada")
    second = c.responses.create(model=f"via-{backend}", input="what is my name?", previous_response_id=first.id)
    assert second.output_text == "echo: what is my name?"
    assert second.previous_response_id == first.id
    sent = fakes[backend].last_request
    if backend == "openai":  # native: the provider keeps the conversation, under its own id
        assert sent.path == "/v1/responses"
        assert sent.json["previous_response_id"].startswith("resp_") and "aigw" not in sent.json["previous_response_id"]
    else:  # translated: the gateway sent the whole conversation
        assert "my name is Ada" in sent.body.decode() and "echo: my name is Ada" in sent.body.decode()
    third = c.responses.create(model=f"via-{backend}", input="and now?", previous_response_id=second.id)
    assert third.output_text == "echo: and now?"
    if backend != "openai":
        assert "what is my name?" in fakes[backend].last_request.body.decode()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_retrieve_and_delete(env, backend):
    gw, _ = env
    c = client(gw)
    r = c.responses.create(model=f"via-{backend}", input="keep me")
    got = c.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == "echo: keep me" and got.model == f"via-{backend}"
    items = c.responses.input_items.list(r.id)
    assert [i.content[0].text if isinstance(i.content, list) else i.content for i in items.data] == ["keep me"]
    with pytest.raises(openai.NotFoundError):
        client(gw, OTHER_KEY).responses.retrieve(r.id)  # another tenant sees nothing
    with pytest.raises(openai.NotFoundError):
        client(gw, OTHER_KEY).responses.create(model=f"via-{backend}", input="x", previous_response_id=r.id)
    c.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model=f"via-{backend}", input="x", previous_response_id=r.id)


def test_follow_ups_across_models(env):
    gw, fakes = env
    c = client(gw)
    translated = c.responses.create(model="via-anthropic", input="first on anthropic")
    native = c.responses.create(model="via-openai", input="next on openai", previous_response_id=translated.id)
    assert native.output_text == "echo: next on openai"
    sent = fakes["openai"].last_request.json  # the stored conversation, sent in full to the native target
    assert "previous_response_id" not in sent and "first on anthropic" in json.dumps(sent["input"])
    with pytest.raises(openai.BadRequestError) as err:  # the provider that keeps it is not on this route
        c.responses.create(model="via-gemini", input="x", previous_response_id=native.id)
    assert err.value.body["param"] == "previous_response_id"


def test_untranslatable_field_is_refused_naming_it(env):
    gw, _ = env
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).responses.create(model="via-anthropic", input="x", tools=[{"type": "web_search"}])
    assert err.value.body["param"] == "tools[0]"
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).responses.create(model="via-gemini", input="x", background=True)
    assert err.value.body["param"] == "background"


def test_follow_ups_work_on_any_replica_with_redis(tmp_path, fake_openai, fake_anthropic, redis_server,
                                                   start_gateway):
    """No sticky state in a pod: a follow-up sent to another gateway process finds the
    conversation (translated: the store in Redis) or the credential (native: the sealed id)."""
    redis_server.flushall()
    fakes = {"openai": fake_openai, "anthropic": fake_anthropic}
    docs = crs_for({**fakes, "gemini": fake_openai})  # gemini's route is unused here
    path = tmp_path / "crs.yaml"
    path.write_text(docs)
    a, b = (start_gateway("-f", str(path), "--redis-url", redis_server.url) for _ in range(2))
    for backend in ("openai", "anthropic"):
        first = client(a).responses.create(model=f"via-{backend}", input="remember 42")
        second = client(b).responses.create(model=f"via-{backend}", input="what number?", previous_response_id=first.id)
        assert second.output_text == "echo: what number?"
        assert client(b).responses.retrieve(first.id).output_text == "echo: remember 42"
    keys = redis_server.command("KEYS", "aigw:{default/local/team}:resp:*")  # the gateway's identity in the key
    assert len(keys) == 2 and len(redis_server.command("KEYS", "aigw:*:resp:*")) == 2  # translated ones only
    assert all(0 < redis_server.command("TTL", k) <= 3 * 24 * 3600 for k in keys)


def test_azure_openai_target_is_native_too(tmp_path, start_gateway):
    from tests.fakes.azure_openai_provider import FakeAzureOpenAI

    with FakeAzureOpenAI(api_key="azure-key") as azure:
        path = tmp_path / "crs.yaml"
        path.write_text(f"""apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: azure}}
spec: {{provider: azure-openai, baseURL: "{azure.base_url}", apiVersion: "2025-04-01-preview", apiKeySecretRef: {{name: azure-key}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: azure-key}}
stringData: {{apiKey: azure-key}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: via-azure}}
spec: {{model: via-azure, targets: [{{credentialRef: azure, model: gpt-4o}}]}}
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team}}
spec: {{apiKeySecretRefs: [{{name: team-key}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: team-key}}
stringData: {{apiKey: {TENANT_KEY}}}
""")
        gw = start_gateway("-f", str(path))
        c = client(gw)
        first = c.responses.create(model="via-azure", input="hello azure")
        sent = azure.last_request
        assert sent.path == "/openai/responses" and sent.query["api-version"] == "2025-04-01-preview"
        assert sent.json["model"] == "gpt-4o" and sent.headers["api-key"] == "azure-key"
        assert first.output_text == "echo: hello azure" and first.model == "via-azure"
        with c.responses.stream(model="via-azure", input="next", previous_response_id=first.id) as s:
            assert s.get_final_response().output_text == "echo: next"
        upstream_first = next(iter(azure.responses_book.stored))  # the id Azure gave the first response
        assert azure.last_request.json["previous_response_id"] == upstream_first
        assert c.responses.retrieve(first.id).output_text == "echo: hello azure"
        c.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(first.id)

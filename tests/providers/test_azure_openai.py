"""The Azure OpenAI adapter against the fake Azure resource over real HTTP, streaming on and off."""

from __future__ import annotations

import httpx
import orjson
import pytest

from aigw_gateway.errors import UpstreamBadResponse, UpstreamError, UpstreamRateLimited, UpstreamRejected
from aigw_gateway.providers.azure_openai import AzureOpenAIAdapter, AzureOpenAIStreamTranslator, chat_url, supports_stream_usage
from tests.fakes.azure_openai_provider import AzureBehaviour, FakeAzureOpenAI
from tests.fakes.more_fixtures import (  # noqa: F401
    AZURE_API_KEY,
    fake_azure_openai,
    feed_in_splits,
    merge_chunks,
    provider_config,
    send_stream,
    send_unary,
)
from tests.fakes.openai_provider import Behaviour

ADAPTER = AzureOpenAIAdapter()
API_VERSION = "2024-10-21"
MSG = [{"role": "user", "content": "hello fake world"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}}]


def provider(fake: FakeAzureOpenAI, api_version: str = API_VERSION):
    return provider_config("azure-openai", fake.url, api_version=api_version)


# --- request building --------------------------------------------------------------------------

def test_request_url_headers_and_body():
    cfg = provider_config("azure-openai", "https://res.openai.azure.com/", api_version=API_VERSION)
    up = ADAPTER.chat_request(cfg, "azure-key", "gpt-4o prod", {"model": "alias", "messages": MSG, "stream": True}, False)
    assert up.url == "https://res.openai.azure.com/openai/deployments/gpt-4o%20prod/chat/completions?api-version=2024-10-21"
    assert up.headers["api-key"] == "azure-key" and "authorization" not in up.headers
    body = orjson.loads(up.content)
    assert "model" not in body and body["stream"] is False and body["messages"] == MSG

    up = ADAPTER.chat_request(cfg, "azure-key", "gpt-4o", {"messages": MSG, "stream_options": {"x": 1}}, True)
    assert orjson.loads(up.content)["stream_options"] == {"x": 1, "include_usage": True}
    assert up.headers["accept"] == "text/event-stream"

    old = provider_config("azure-openai", "https://res.openai.azure.com/openai", api_version="2024-06-01")
    up = ADAPTER.chat_request(old, "k", "gpt-4o", {"messages": MSG, "stream_options": {"include_usage": True}}, True)
    assert up.url.startswith("https://res.openai.azure.com/openai/deployments/gpt-4o/")  # no /openai/openai
    assert "stream_options" not in orjson.loads(up.content)  # that version rejects the field


def test_stream_usage_support_by_api_version():
    assert supports_stream_usage("2024-10-21") and supports_stream_usage("2024-08-01-preview")
    assert supports_stream_usage("2025-04-01-preview") and supports_stream_usage("preview")
    assert not supports_stream_usage("2024-06-01") and not supports_stream_usage("2024-02-15-preview")
    assert chat_url("http://h", "d", "v") == "http://h/openai/deployments/d/chat/completions?api-version=v"


# --- over HTTP ---------------------------------------------------------------------------------

async def test_chat(fake_azure_openai):
    res = await send_unary(ADAPTER, provider(fake_azure_openai), AZURE_API_KEY, "fake", {"model": "m", "messages": MSG})
    choice = res["choices"][0]
    assert choice["message"]["content"] == "echo: hello fake world" and choice["finish_reason"] == "stop"
    assert choice["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}  # passes through
    assert res["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    sent = fake_azure_openai.last_request
    assert sent.path == "/openai/deployments/fake/chat/completions" and sent.query == {"api-version": API_VERSION}
    assert sent.headers["api-key"] == AZURE_API_KEY and "model" not in sent.json


async def test_stream(fake_azure_openai):
    fake_azure_openai.script(Behaviour(chunks=6))
    chunks, raw = await send_stream(ADAPTER, provider(fake_azure_openai), AZURE_API_KEY, "fake", {"messages": MSG})
    merged = merge_chunks(chunks)
    assert merged == {"role": "assistant", "content": "echo: hello fake world", "tool_calls": [], "finish_reason": "stop",
                      "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    assert b"prompt_filter_results" in raw.split(b"\n\n")[0]  # Azure's opening chunk was sent ...
    assert all(c["choices"] or c.get("usage") for c in chunks)  # ... and is no canonical chunk
    for seed in range(5):
        assert merge_chunks(feed_in_splits(AzureOpenAIStreamTranslator("t"), raw, seed)) == merged


async def test_stream_with_an_api_version_without_stream_options(fake_azure_openai):
    # The fake answers 400 to stream_options on this version, as Azure does: the adapter must not send it.
    chunks, _ = await send_stream(ADAPTER, provider(fake_azure_openai, "2024-06-01"), AZURE_API_KEY, "fake", {"messages": MSG})
    merged = merge_chunks(chunks)
    assert merged["content"] == "echo: hello fake world" and merged["usage"] is None
    assert "stream_options" not in fake_azure_openai.last_request.json


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_calls(fake_azure_openai, stream):
    request = {"messages": MSG, "tools": TOOLS}
    if stream:
        merged = merge_chunks((await send_stream(ADAPTER, provider(fake_azure_openai), AZURE_API_KEY, "fake", request))[0])
        (call,) = merged["tool_calls"]
        name, arguments, finish = call["name"], call["arguments"], merged["finish_reason"]
    else:
        res = await send_unary(ADAPTER, provider(fake_azure_openai), AZURE_API_KEY, "fake", request)
        (call,) = res["choices"][0]["message"]["tool_calls"]
        name, arguments, finish = call["function"]["name"], call["function"]["arguments"], res["choices"][0]["finish_reason"]
    assert (name, orjson.loads(arguments), finish) == ("get_weather", {"arg": "value"}, "tool_calls")


@pytest.mark.parametrize("stream", [False, True])
async def test_content_filter_finish_passes_through(fake_azure_openai, stream):
    fake_azure_openai.script(AzureBehaviour(content_filter=True))
    if stream:
        chunks, _ = await send_stream(ADAPTER, provider(fake_azure_openai), AZURE_API_KEY, "fake", {"messages": MSG})
        assert merge_chunks(chunks)["finish_reason"] == "content_filter"
    else:
        res = await send_unary(ADAPTER, provider(fake_azure_openai), AZURE_API_KEY, "fake", {"messages": MSG})
        assert res["choices"][0]["finish_reason"] == "content_filter"
        assert res["choices"][0]["content_filter_results"]["hate"]["filtered"] is True


async def test_embeddings(fake_azure_openai):
    cfg = provider(fake_azure_openai)
    up = ADAPTER.embeddings_request(cfg, AZURE_API_KEY, "fake", {"model": "alias", "input": ["a b", "c"]})
    assert up.url == f"{fake_azure_openai.url}/openai/deployments/fake/embeddings?api-version={API_VERSION}"
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.request(up.method, up.url, headers=up.headers, content=up.content)
    res = ADAPTER.embeddings_response(resp.content, "t", "fake")
    assert [d["index"] for d in res["data"]] == [0, 1] and res["usage"]["prompt_tokens"] == 3
    assert fake_azure_openai.last_request.headers["api-key"] == AZURE_API_KEY
    assert "model" not in fake_azure_openai.last_request.json


# --- failures ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
async def test_error_mapping(fake_azure_openai, stream):
    send = send_stream if stream else send_unary
    cfg = provider(fake_azure_openai)
    fake_azure_openai.script(
        Behaviour(status=429, headers={"retry-after-ms": "1500"}),
        Behaviour(status=400, error_message="The response was filtered due to the prompt triggering content management policy."),
        Behaviour(status=503),
    )
    with pytest.raises(UpstreamRateLimited) as err:
        await send(ADAPTER, cfg, AZURE_API_KEY, "fake", {"messages": MSG})
    assert err.value.headers == {"retry-after": "2"}  # from retry-after-ms, rounded up
    with pytest.raises(UpstreamRejected) as err:
        await send(ADAPTER, cfg, AZURE_API_KEY, "fake", {"messages": MSG})
    assert "content management policy" in err.value.message and not err.value.retryable
    with pytest.raises(UpstreamError) as err:
        await send(ADAPTER, cfg, AZURE_API_KEY, "fake", {"messages": MSG})
    assert err.value.retryable and err.value.status_code == 502
    with pytest.raises(UpstreamError, match="refused the gateway's credentials"):
        await send(ADAPTER, cfg, "wrong-key", "fake", {"messages": MSG})
    with pytest.raises(UpstreamError, match="does not know the model"):
        await send(ADAPTER, cfg, AZURE_API_KEY, "no-such-deployment", {"messages": MSG})


@pytest.mark.parametrize("stream", [False, True])
async def test_garbage_and_cut_streams_are_bad_responses(fake_azure_openai, stream):
    send = send_stream if stream else send_unary
    fake_azure_openai.script(Behaviour(garbage=True), Behaviour(disconnect_after_chunks=3))
    with pytest.raises(UpstreamBadResponse):
        await send(ADAPTER, provider(fake_azure_openai), AZURE_API_KEY, "fake", {"messages": MSG})
    with pytest.raises((UpstreamBadResponse, UpstreamError)):
        await send(ADAPTER, provider(fake_azure_openai), AZURE_API_KEY, "fake", {"messages": MSG})


# --- the fake is faithful: the official client against it --------------------------------------

def test_official_azure_client_against_the_fake(fake_azure_openai):
    openai = pytest.importorskip("openai")
    client = openai.AzureOpenAI(azure_endpoint=fake_azure_openai.url, api_version=API_VERSION, api_key=AZURE_API_KEY,
                                max_retries=0, timeout=10)
    res = client.chat.completions.create(model="fake", messages=MSG)
    assert res.choices[0].message.content == "echo: hello fake world"
    official = fake_azure_openai.last_request
    ours = ADAPTER.chat_request(provider(fake_azure_openai), AZURE_API_KEY, "fake", {"messages": MSG}, False)
    assert ours.url == fake_azure_openai.url + official.path + "?api-version=" + official.query["api-version"]
    assert official.headers["api-key"] == ours.headers["api-key"]

    stream = client.chat.completions.create(model="fake", messages=MSG, stream=True, stream_options={"include_usage": True})
    parts = list(stream)
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices) == "echo: hello fake world"
    assert parts[-1].usage.total_tokens == 7
    res = client.chat.completions.create(model="fake", messages=MSG, tools=TOOLS)
    assert res.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert len(client.embeddings.create(model="fake", input="hello").data[0].embedding) == 8
    with pytest.raises(openai.AuthenticationError):
        openai.AzureOpenAI(azure_endpoint=fake_azure_openai.url, api_version=API_VERSION, api_key="nope",
                           max_retries=0).chat.completions.create(model="fake", messages=MSG)
    with pytest.raises(openai.BadRequestError, match="stream_options"):
        openai.AzureOpenAI(azure_endpoint=fake_azure_openai.url, api_version="2024-06-01", api_key=AZURE_API_KEY,
                           max_retries=0).chat.completions.create(model="fake", messages=MSG, stream=True,
                                                                  stream_options={"include_usage": True})

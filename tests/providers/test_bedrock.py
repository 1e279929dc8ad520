"""The Bedrock adapter (Converse / ConverseStream) against the fake Bedrock over real HTTP.

SigV4 is checked against botocore's signer, the event-stream decoder against botocore's
decoder, and the fake against boto3 (which also proves the fake's event-stream encoder).
"""

from __future__ import annotations

import base64
import uuid
from urllib.parse import unquote, urlsplit
from datetime import datetime, timezone

import httpx
import orjson
import pytest

from aigw_gateway.errors import (
    InvalidRequest,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
)
from aigw_gateway.providers.bedrock import (
    BedrockAdapter,
    BedrockStreamTranslator,
    EventStreamDecoder,
    region_of,
    to_converse,
)
from tests.fakes.bedrock_provider import BedrockBehaviour, FakeBedrock, encode_message, event_frame, exception_frame
from tests.fakes.more_fixtures import (  # noqa: F401
    AWS_ACCESS_KEY_ID,
    AWS_KEYS,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    BEDROCK_API_KEY,
    fake_bedrock,
    feed_in_splits,
    merge_chunks,
    provider_config,
    send_stream,
    send_unary,
)
from tests.fakes.openai_provider import Behaviour

ADAPTER = BedrockAdapter()
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello fake world"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def provider(fake: FakeBedrock, region: str = "us-east-1"):
    return provider_config("bedrock", fake.url, region=region)


# --- request building and signing --------------------------------------------------------------

def botocore_signature(method: str, url: str, headers: dict[str, str], body: bytes, region: str) -> str:
    botocore_auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    names = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    request = AWSRequest(method=method, url=url, data=body, headers={n: headers[n] for n in names if n != "host"})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = botocore_auth.SigV4Auth(Credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), "bedrock", region)
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


@pytest.mark.parametrize("base_url, model", [
    ("https://bedrock-runtime.eu-west-1.amazonaws.com", CLAUDE),
    ("https://bedrock-runtime.eu-west-1.amazonaws.com:443/", "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("http://127.0.0.1:8443", "meta.llama3-70b-instruct-v1:0"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_sigv4_matches_botocore(base_url, model, stream):
    adapter = BedrockAdapter(clock=lambda: 1_718_000_000.0)
    cfg = provider_config("bedrock", base_url, region="eu-west-1")
    up = adapter.chat_request(cfg, AWS_KEYS, model, {"messages": MSG}, stream)
    assert up.url.endswith("/converse-stream" if stream else "/converse") and "/model/" in up.url
    assert up.url.split("/model/")[1].split("/")[0] == model.replace("/", "%2F")  # ":" stays: see the wire test
    assert up.headers["x-amz-date"] == "20240610T061320Z"
    assert up.headers["x-amz-security-token"] == AWS_SESSION_TOKEN
    auth = up.headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY_ID}/20240610/eu-west-1/bedrock/aws4_request, ")
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in auth
    assert auth.split("Signature=")[1] == botocore_signature("POST", up.url, up.headers, up.content, "eu-west-1")


def test_api_keys_regions_and_keyless():
    cfg = provider_config("bedrock", "https://bedrock-runtime.ap-south-1.amazonaws.com")
    up = ADAPTER.chat_request(cfg, BEDROCK_API_KEY, CLAUDE, {"messages": MSG}, False)
    assert up.headers["authorization"] == f"Bearer {BEDROCK_API_KEY}" and "x-amz-date" not in up.headers
    assert "authorization" not in ADAPTER.chat_request(cfg, None, CLAUDE, {"messages": MSG}, False).headers
    assert region_of(cfg) == "ap-south-1"
    assert region_of(provider_config("bedrock", "https://proxy.internal", region="us-west-2")) == "us-west-2"
    assert region_of(provider_config("bedrock", "https://proxy.internal")) == "us-east-1"
    # an access key pair without a session token signs without x-amz-security-token
    up = ADAPTER.chat_request(cfg, f"{AWS_ACCESS_KEY_ID}:{AWS_SECRET_ACCESS_KEY}\n", CLAUDE, {"messages": MSG}, False)
    assert "x-amz-security-token" not in up.headers and "/ap-south-1/bedrock/" in up.headers["authorization"]
    assert ADAPTER.chat_request(cfg, BEDROCK_API_KEY + "\n", CLAUDE, {"messages": MSG}, False).headers["authorization"] == (
        f"Bearer {BEDROCK_API_KEY}")


def test_translation_of_a_whole_conversation():
    body = to_converse({
        "messages": [
            {"role": "system", "content": "rule one"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "user", "content": "and answer"},
            {"role": "assistant", "content": "checking", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
                {"id": "t2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "rainy"}]},
            {"role": "developer", "content": "rule two"},
            {"role": "assistant", "content": ""},  # empty turns are dropped, not sent blank
        ],
        "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 100, "temperature": 0.5, "top_p": 0.8, "stop": "STOP",
    })
    assert body["system"] == [{"text": "rule one"}, {"text": "rule two"}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "look"}, {"image": {"format": "png", "source": {"bytes": PNG}}}, {"text": "and answer"}]},
        {"role": "assistant", "content": [
            {"text": "checking"},
            {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Rome"}}},
            {"toolUse": {"toolUseId": "t2", "name": "get_weather", "input": {}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
            {"toolResult": {"toolUseId": "t2", "content": [{"text": "rainy"}]}}]},
    ]
    assert body["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5, "topP": 0.8, "stopSequences": ["STOP"]}
    assert body["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "get_weather", "description": "Weather for a city",
        "inputSchema": {"json": TOOLS[0]["function"]["parameters"]}}}], "toolChoice": {"tool": {"name": "get_weather"}}}


def test_tool_choices_and_a_tool_history_without_tools():
    assert to_converse({"messages": MSG, "tools": TOOLS, "tool_choice": "required"})["toolConfig"]["toolChoice"] == {"any": {}}
    assert to_converse({"messages": MSG, "tools": TOOLS, "tool_choice": "auto"})["toolConfig"]["toolChoice"] == {"auto": {}}
    assert "toolChoice" not in to_converse({"messages": MSG, "tools": TOOLS})["toolConfig"]
    assert "toolConfig" not in to_converse({"messages": MSG, "tools": TOOLS, "tool_choice": "none"})
    history = [{"role": "user", "content": "q"},
               {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "lookup", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "a", "content": "r"}]
    assert to_converse({"messages": history})["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]}


def test_requests_bedrock_cannot_take_are_rejected_with_the_field():
    with pytest.raises(InvalidRequest) as err:
        to_converse({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]})
    assert err.value.param == "messages[0].content[0]"
    with pytest.raises(InvalidRequest, match="png, jpeg"):
        to_converse({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]})
    with pytest.raises(InvalidRequest) as err:
        to_converse({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}]})
    assert err.value.param == "messages[0].tool_calls[0].function.arguments"


# --- over HTTP ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [AWS_KEYS, BEDROCK_API_KEY], ids=["sigv4", "api-key"])
async def test_converse(fake_bedrock, key):
    res = await send_unary(ADAPTER, provider(fake_bedrock), key, CLAUDE, {"messages": MSG})
    assert res["object"] == "chat.completion" and res["model"] == CLAUDE
    assert res["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello fake world"}
    assert res["choices"][0]["finish_reason"] == "stop" and res["usage"] == USAGE
    sent = fake_bedrock.last_request
    assert sent.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
    assert sent.json == {"messages": [{"role": "user", "content": [{"text": "hello fake world"}]}], "system": [{"text": "be brief"}]}


@pytest.mark.parametrize("model", [CLAUDE, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b:0",
                                   "odd model+id@v1:0"])
async def test_the_signed_path_is_the_path_on_the_wire(fake_bedrock, model):
    """The gateway's HTTP client rewrites "%3A" to ":"; a signature over another path is a 403 from AWS."""
    for stream in (False, True):
        up = ADAPTER.chat_request(provider(fake_bedrock), AWS_KEYS, model, {"messages": MSG}, stream)
        await (send_stream if stream else send_unary)(ADAPTER, provider(fake_bedrock), AWS_KEYS, model, {"messages": MSG})
        assert fake_bedrock.last_request.path == urlsplit(up.url).path
        assert unquote(fake_bedrock.last_request.path.split("/")[2]) == model


async def test_wrong_secret_or_key_is_refused_credentials(fake_bedrock):
    for key in (f"{AWS_ACCESS_KEY_ID}:wrong-secret:{AWS_SESSION_TOKEN}", "ABSKwrong"):
        with pytest.raises(UpstreamError) as err:
            await send_unary(ADAPTER, provider(fake_bedrock), key, CLAUDE, {"messages": MSG})
        assert "refused the gateway's credentials (HTTP 403)" in err.value.message and not err.value.retry_same_target
    with pytest.raises(UpstreamError, match="HTTP 403"):  # signed for another region than the endpoint's
        await send_unary(ADAPTER, provider(fake_bedrock, region="eu-west-1"), AWS_KEYS, CLAUDE, {"messages": MSG})
    with pytest.raises(UpstreamError, match="HTTP 403"):  # temporary credentials without their session token
        await send_unary(ADAPTER, provider(fake_bedrock), f"{AWS_ACCESS_KEY_ID}:{AWS_SECRET_ACCESS_KEY}", CLAUDE, {"messages": MSG})
    assert len(fake_bedrock.requests) == 4


async def test_stop_reasons(fake_bedrock):
    res = await send_unary(ADAPTER, provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG, "max_tokens": 2})
    assert res["choices"][0]["finish_reason"] == "length" and res["choices"][0]["message"]["content"] == "echo: hello"
    fake_bedrock.script(BedrockBehaviour(stop_reason="guardrail_intervened"), BedrockBehaviour(stop_reason="content_filtered"))
    for _ in range(2):
        res = await send_unary(ADAPTER, provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG})
        assert res["choices"][0]["finish_reason"] == "content_filter"


async def test_tool_call_round_trip(fake_bedrock):
    res = await send_unary(ADAPTER, provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG, "tools": TOOLS})
    message = res["choices"][0]["message"]
    (call,) = message["tool_calls"]
    assert res["choices"][0]["finish_reason"] == "tool_calls" and message["content"] is None
    assert call["function"]["name"] == "get_weather" and orjson.loads(call["function"]["arguments"]) == {"arg": "value"}
    follow_up = MSG + [message, {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    res = await send_unary(ADAPTER, provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": follow_up, "tools": TOOLS})
    assert res["choices"][0]["message"]["content"] == "echo: sunny"
    sent = fake_bedrock.last_request.json["messages"]
    assert sent[1]["content"][0]["toolUse"]["toolUseId"] == call["id"] == sent[2]["content"][0]["toolResult"]["toolUseId"]


async def test_stream(fake_bedrock):
    fake_bedrock.script(Behaviour(chunks=5))
    chunks, raw = await send_stream(ADAPTER, provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG})
    merged = merge_chunks(chunks)
    assert merged == {"role": "assistant", "content": "echo: hello fake world", "tool_calls": [], "finish_reason": "stop", "usage": USAGE}
    assert "usage" in chunks[-1] and all("usage" not in c for c in chunks[:-1])
    assert fake_bedrock.last_request.path.endswith("/converse-stream")
    for seed in range(8):  # event-stream frames split at arbitrary byte boundaries
        assert merge_chunks(feed_in_splits(BedrockStreamTranslator("t", CLAUDE, 0), raw, seed, max_piece=5)) == merged


async def test_stream_tool_use(fake_bedrock):
    chunks, raw = await send_stream(ADAPTER, provider(fake_bedrock), BEDROCK_API_KEY, CLAUDE, {"messages": MSG, "tools": TOOLS})
    merged = merge_chunks(chunks)
    (call,) = merged["tool_calls"]
    assert merged["finish_reason"] == "tool_calls" and call["name"] == "get_weather" and call["id"].startswith("tooluse_")
    assert orjson.loads(call["arguments"]) == {"arg": "value"}
    assert merge_chunks(feed_in_splits(BedrockStreamTranslator("t", CLAUDE, 0), raw, 3, max_piece=2)) == merged


@pytest.mark.parametrize("exception, error, status, retryable", [
    ("throttlingException", UpstreamRateLimited, 429, True),
    ("modelStreamErrorException", UpstreamError, 502, True),
    ("internalServerException", UpstreamError, 502, True),
    ("serviceUnavailableException", UpstreamError, 502, True),
    ("validationException", UpstreamRejected, 400, False),
])
async def test_stream_exception_events(fake_bedrock, exception, error, status, retryable):
    fake_bedrock.script(BedrockBehaviour(stream_exception=exception, exception_after=2, error_message="it broke"))
    with pytest.raises(error) as err:
        await send_stream(ADAPTER, provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG})
    assert (err.value.status_code, err.value.retryable) == (status, retryable)
    assert type(err.value) is error
    if error is UpstreamRejected:
        assert "it broke" in err.value.message


@pytest.mark.parametrize("stream", [False, True])
async def test_error_mapping(fake_bedrock, stream):
    send = send_stream if stream else send_unary
    cfg = provider(fake_bedrock)
    fake_bedrock.script(
        Behaviour(status=429, headers={"retry-after": "4"}), Behaviour(status=400, error_message="messages: too long"),
        Behaviour(status=408), Behaviour(status=424), Behaviour(status=503),
    )
    with pytest.raises(UpstreamRateLimited) as err:
        await send(ADAPTER, cfg, AWS_KEYS, CLAUDE, {"messages": MSG})
    assert err.value.headers == {"retry-after": "4"}
    with pytest.raises(UpstreamRejected, match="ValidationException: messages: too long"):
        await send(ADAPTER, cfg, AWS_KEYS, CLAUDE, {"messages": MSG})
    for name in ("ModelTimeoutException", "ModelErrorException", "ServiceUnavailableException"):
        with pytest.raises(UpstreamError, match=name) as err:  # the model's failure, not the client's
            await send(ADAPTER, cfg, AWS_KEYS, CLAUDE, {"messages": MSG})
        assert err.value.retryable and err.value.status_code == 502
    with pytest.raises(UpstreamRejected, match="must start with a user message"):  # the fake validates like Bedrock
        await send(ADAPTER, cfg, AWS_KEYS, CLAUDE, {"messages": [{"role": "assistant", "content": "hi"}]})


@pytest.mark.parametrize("stream", [False, True])
async def test_garbage_and_cut_streams_are_bad_responses(fake_bedrock, stream):
    send = send_stream if stream else send_unary
    fake_bedrock.script(Behaviour(garbage=True), Behaviour(disconnect_after_chunks=3))
    with pytest.raises(UpstreamBadResponse):
        await send(ADAPTER, provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG})
    with pytest.raises((UpstreamBadResponse, UpstreamError)):
        await send(ADAPTER, provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG})


async def test_fake_stalls_mid_stream_after_the_first_frames(fake_bedrock):
    fake_bedrock.script(Behaviour(stall_seconds=5, stall_after_chunks=2))
    up = ADAPTER.chat_request(provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG}, True)
    translator = ADAPTER.stream_translator("t", CLAUDE)
    got: list = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.5)) as client:
        async with client.stream(up.method, up.url, headers=up.headers, content=up.content) as resp:
            with pytest.raises(httpx.ReadTimeout):
                async for piece in resp.aiter_raw():
                    got += translator.feed(piece)
    merged = merge_chunks(got)
    assert merged["role"] == "assistant" and merged["content"] and merged["finish_reason"] is None
    with pytest.raises(UpstreamBadResponse):
        translator.finish()


# --- the translator and decoder on their own ---------------------------------------------------

def test_stream_ending_at_message_stop_without_metadata_has_no_usage():
    translator = BedrockStreamTranslator("t", "m", 0)
    chunks = translator.feed(event_frame("messageStart", {"role": "assistant"})
                             + event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}})
                             + event_frame("messageStop", {"stopReason": "end_turn"}))
    chunks += translator.finish()
    assert merge_chunks(chunks) == {"role": "assistant", "content": "hi", "tool_calls": [], "finish_reason": "stop", "usage": None}
    with pytest.raises(UpstreamBadResponse, match="before messageStop"):
        cut = BedrockStreamTranslator("t", "m", 0)
        cut.feed(event_frame("messageStart", {"role": "assistant"}))
        cut.finish()


def test_corrupt_frames_are_bad_responses():
    frame = bytearray(event_frame("messageStart", {"role": "assistant"}))
    frame[20] ^= 0xFF
    with pytest.raises(UpstreamBadResponse, match="checksum"):
        BedrockStreamTranslator("t", "m", 0).feed(bytes(frame))
    with pytest.raises(UpstreamBadResponse, match="prelude"):
        BedrockStreamTranslator("t", "m", 0).feed(b'{"message": "this is JSON, not an event stream"}')
    with pytest.raises(UpstreamError, match="InternalFailure"):
        BedrockStreamTranslator("t", "m", 0).feed(encode_message(
            {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"}, b""))


def test_decoder_agrees_with_botocore_on_every_header_type():
    eventstream = pytest.importorskip("botocore.eventstream")
    when = datetime(2024, 6, 10, 6, 13, 20, tzinfo=timezone.utc)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = {":event-type": "x", "flag": True, "off": False, "n": -7, "blob": b"\x00\x01", "when": when, "id": ident}
    frames = encode_message(headers, b'{"a":1}') + exception_frame("throttlingException", "slow down")
    ours = EventStreamDecoder()
    decoded = [m for i in range(len(frames)) for m in ours.feed(frames[i : i + 1])]  # one byte at a time
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(frames)
    theirs = list(buffer)
    assert len(decoded) == len(theirs) == 2 and ours.pending == 0
    for (our_headers, our_payload), message in zip(decoded, theirs, strict=True):
        assert our_payload == message.payload
        assert our_headers.keys() == message.headers.keys()
    first = decoded[0][0]
    assert (first["flag"], first["off"], first["n"], first["blob"]) == (True, False, -7, b"\x00\x01")
    assert first["when"] == int(when.timestamp() * 1000) and first["id"] == ident.bytes
    assert theirs[0].headers["n"] == -7 and theirs[0].headers["id"] == ident.bytes


# --- the fake is faithful: boto3 against it ------------------------------------------------------

def boto3_client(fake: FakeBedrock, region: str = "us-east-1", **credentials):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    credentials = credentials or {"aws_access_key_id": AWS_ACCESS_KEY_ID, "aws_secret_access_key": AWS_SECRET_ACCESS_KEY,
                                  "aws_session_token": AWS_SESSION_TOKEN}
    return boto3.client("bedrock-runtime", endpoint_url=fake.url, region_name=region,
                        config=Config(retries={"max_attempts": 1}, read_timeout=10, connect_timeout=5), **credentials)


def test_boto3_against_the_fake(fake_bedrock):
    client = boto3_client(fake_bedrock)
    res = client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "hi there"}]}],
                          system=[{"text": "be brief"}])
    assert res["output"]["message"]["content"] == [{"text": "echo: hi there"}] and res["stopReason"] == "end_turn"
    assert res["usage"] == {"inputTokens": 4, "outputTokens": 3, "totalTokens": 7}
    ours = ADAPTER.chat_request(provider(fake_bedrock), AWS_KEYS, CLAUDE, {"messages": MSG}, False)
    # boto3 sends "%3A", the adapter ":" (what the gateway's client puts on the wire anyway): the same path
    assert unquote(urlsplit(ours.url).path) == unquote(fake_bedrock.last_request.path)

    events = list(client.converse_stream(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "hi there"}]}])["stream"])
    assert [next(iter(e)) for e in events] == ["messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
                                               "contentBlockStop", "messageStop", "metadata"]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == "echo: hi there"
    tool = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}
    events = list(client.converse_stream(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "w?"}]}],
                                         toolConfig={"tools": [tool]})["stream"])
    assert events[1]["contentBlockStart"]["start"]["toolUse"]["name"] == "get_weather"
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}

    botocore_exceptions = pytest.importorskip("botocore.exceptions")
    fake_bedrock.script(BedrockBehaviour(stream_exception="throttlingException", exception_after=2))
    with pytest.raises(botocore_exceptions.EventStreamError, match="throttlingException"):
        list(client.converse_stream(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "x"}]}])["stream"])
    fake_bedrock.script(Behaviour(status=400, error_message="bad input"))
    with pytest.raises(client.exceptions.ValidationException, match="bad input"):
        client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "x"}]}])
    wrong = boto3_client(fake_bedrock, aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key="nope",
                         aws_session_token=AWS_SESSION_TOKEN)
    with pytest.raises(botocore_exceptions.ClientError, match="InvalidSignatureException"):
        wrong.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "x"}]}])


def test_adapter_body_matches_what_boto3_sends(fake_bedrock):
    client = boto3_client(fake_bedrock)
    image = base64.b64decode(PNG)
    client.converse(
        modelId=CLAUDE, system=[{"text": "be brief"}],
        messages=[
            {"role": "user", "content": [{"text": "look"}, {"image": {"format": "png", "source": {"bytes": image}}}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Rome"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}}]},
        ],
        toolConfig={"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                                            "inputSchema": {"json": TOOLS[0]["function"]["parameters"]}}}],
                    "toolChoice": {"any": {}}},
        inferenceConfig={"maxTokens": 50, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
    )
    official = fake_bedrock.last_request.json
    ours = to_converse({
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                                                   "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        ],
        "tools": TOOLS, "tool_choice": "required", "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": ["END"],
    })
    assert ours == official

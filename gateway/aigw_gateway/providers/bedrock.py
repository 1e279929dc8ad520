"""AWS Bedrock through the Converse API, translated to and from the canonical format.

`POST {base}/model/{modelId}/converse` and `/converse-stream`; `base` is the regional endpoint
`https://bedrock-runtime.{region}.amazonaws.com` unless overridden; the model id (foundation
model, inference profile or ARN) is percent-encoded into the path.

Credentials: the ProviderCredential's Secret value is either an access key pair
`ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`, and then each request is SigV4-signed
(service `bedrock`, the credential's region) as it is built -- a few HMACs, so done here rather
than through botocore; tests re-sign with botocore and run boto3 against the fake -- or a
Bedrock API key (no colon), sent as `Authorization: Bearer <key>`.

Translation: system messages -> `system[{text}]`; the others -> alternating turns of `text`,
`image` (base64 data URLs), `toolUse` and `toolResult` blocks; tools -> `toolConfig` (derived
from the history when tool blocks appear without tools: Bedrock insists on one); sampling ->
`inferenceConfig`. ConverseStream answers in AWS's binary event-stream encoding, decoded here
incrementally with CRC checks; its exception events map like the equivalent HTTP statuses.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
import uuid
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, InvalidRequest, UpstreamBadResponse, UpstreamError, upstream_status_error
from .usage import usage_dict
from .base import UpstreamRequest

SERVICE = "bedrock"
DEFAULT_REGION = "us-east-1"
FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "content_filtered": "content_filter", "guardrail_intervened": "content_filter",
}
# Stream exception events -> the HTTP status they stand for (their model status is 424 for
# modelStreamErrorException, which is the model failing, not the client: a retryable 5xx here).
STREAM_EXCEPTION_STATUS = {
    "throttlingException": 429, "validationException": 400, "internalServerException": 500,
    "serviceUnavailableException": 503, "modelStreamErrorException": 502,
}
# Error types whose HTTP status would read as the client's fault but are the model's.
ERROR_STATUS_OVERRIDES = {"ModelTimeoutException": 504, "ModelErrorException": 502, "ModelStreamErrorException": 502}
# Model ids are percent-encoded minimally (":" stays, "/" of ARNs does not): the signature covers
# the path as sent, and HTTP clients such as aiohttp/yarl decode a "%3A" back to ":" on the wire.
_PATH_SAFE = ":@!$&'()*+,;="
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


# --- credentials and SigV4 ---------------------------------------------------------------------

def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def region_of(provider: ProviderConfig) -> str:
    if provider.region:
        return provider.region
    host = urlsplit(provider.base_url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[0].startswith("bedrock-runtime"):
        return parts[1]
    return DEFAULT_REGION


def _canonical_host(parts: Any) -> str:
    host = parts.netloc.rpartition("@")[2].lower()
    default = ":443" if parts.scheme == "https" else ":80"
    return host.removesuffix(default)


def sigv4_headers(
    method: str, url: str, headers: dict[str, str], body: bytes, credential: str, region: str, now: float
) -> dict[str, str]:
    """`headers` plus x-amz-date, x-amz-security-token and a SigV4 `authorization`.

    `credential` is `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`. Signed: host, x-amz-*
    and content-type. The canonical URI is the path exactly as it goes on the wire, encoded once
    more, as SigV4 wants for every service but S3 (AWS re-encodes the raw path it receives).
    """
    access_key, _, rest = credential.partition(":")
    secret, _, token = rest.partition(":")
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    date = amz_date[:8]
    out = dict(headers)
    out["x-amz-date"] = amz_date
    if token:
        out["x-amz-security-token"] = token
    parts = urlsplit(url)
    signed = {k.lower(): " ".join(v.split()) for k, v in out.items() if k.lower() == "content-type" or k.lower().startswith("x-amz-")}
    signed["host"] = _canonical_host(parts)
    names = sorted(signed)
    canonical = "\n".join([
        method,
        quote(parts.path or "/", safe="/~"),
        parts.query,  # Bedrock's chat paths take no query parameters
        "".join(f"{n}:{signed[n]}\n" for n in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{date}/{region}/{SERVICE}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), SERVICE), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


# --- canonical request -> Converse -------------------------------------------------------------

CACHE_POINT = {"cachePoint": {"type": "default"}}

def _image(part: dict[str, Any], param: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    header, sep, data = url.partition(",") if isinstance(url, str) else ("", "", "")
    if not (header.startswith("data:") and header.endswith(";base64") and sep):
        raise InvalidRequest("Bedrock targets accept only base64 data: URLs as images", param=param)
    fmt = _IMAGE_FORMATS.get(header[5:].split(";", 1)[0].lower())
    if fmt is None:
        raise InvalidRequest("Bedrock targets accept png, jpeg, gif and webp images", param=param)
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or an array of parts", param=param)
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part, f"{param}[{j}]"))
        else:
            raise InvalidRequest(f"content part type {kind!r} is not supported by Bedrock targets", param=f"{param}[{j}]")
        if isinstance(part.get("cache_control"), dict):
            blocks.append(dict(CACHE_POINT))  # Bedrock's prompt caching breakpoint after the marked block
    return blocks


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def _tool_use(call: Any, param: str) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest("tool calls need a function name", param=param)
    raw = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", param=param + ".function.arguments")
    return {"toolUse": {"toolUseId": call.get("id") or f"tooluse_{uuid.uuid4().hex[:22]}", "name": fn["name"], "input": args}}


def _turns(messages: Any) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """(system blocks, alternating user/assistant turns); tool results lead their user turn."""
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array", param="messages")
    system: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InvalidRequest("messages must be objects", param=param)
        role, content = msg.get("role"), msg.get("content")
        if role in ("system", "developer"):
            if isinstance(content, list):
                system.extend(b for b in _blocks(content, param + ".content") if "text" in b or "cachePoint" in b)
            elif text := _text(content):
                system.append({"text": text})
            continue
        if role == "user":
            blocks = _blocks(content, param + ".content")
        elif role == "assistant":
            blocks = _blocks(content, param + ".content")
            blocks += [_tool_use(c, f"{param}.tool_calls[{j}]") for j, c in enumerate(msg.get("tool_calls") or ())]
        elif role == "tool":
            role = "user"
            parts = [b for b in _blocks(content, param + ".content") if "cachePoint" not in b] \
                if isinstance(content, list) else ([{"text": content}] if isinstance(content, str) and content else [])
            result: dict[str, Any] = {"toolUseId": msg.get("tool_call_id") or "", "content": parts}
            if msg.get("is_error"):
                result["status"] = "error"
            blocks = [{"toolResult": result}]
        else:
            raise InvalidRequest(f"role {role!r} is not supported by Bedrock targets", param=param + ".role")
        if not blocks:
            continue  # Bedrock rejects empty turns and blank text
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]["content"]
            if "toolResult" in blocks[0]:
                split = next((k for k, b in enumerate(previous) if "toolResult" not in b), len(previous))
                previous[split:split] = blocks
            else:
                previous.extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool_config(request: dict[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = []
    for i, tool in enumerate(request.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest("function tools need a name", param=f"tools[{i}]")
        spec: dict[str, Any] = {
            "name": fn["name"], "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        tools.append({"toolSpec": spec})
        if isinstance(tool.get("cache_control"), dict):
            tools.append(dict(CACHE_POINT))
    choice = request.get("tool_choice")
    used = {b["toolUse"]["name"] for t in turns for b in t["content"] if "toolUse" in b}
    has_results = any("toolResult" in b for t in turns for b in t["content"])
    if not tools and (used or has_results):
        # Bedrock refuses tool blocks without a toolConfig; declare the tools the history used.
        tools = [{"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object"}}}} for n in sorted(used)]
    if not tools or (choice == "none" and not (used or has_results)):
        return None  # with tool blocks in the history "none" cannot drop the toolConfig: left to the model
    config: dict[str, Any] = {"tools": tools}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def to_converse(request: dict[str, Any]) -> dict[str, Any]:
    system, turns = _turns(request.get("messages"))
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if isinstance(max_tokens, int):
        inference["maxTokens"] = max_tokens
    for field, name in (("temperature", "temperature"), ("top_p", "topP")):
        if isinstance(request.get(field), (int, float)) and not isinstance(request[field], bool):
            inference[name] = request[field]
    stop = request.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if isinstance(stop, list) and stop:
        inference["stopSequences"] = [s for s in stop if isinstance(s, str)]
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(request, turns)
    if tool_config:
        body["toolConfig"] = tool_config
    return body


# --- Converse -> canonical ---------------------------------------------------------------------

def canonical_usage(usage: dict[str, Any]) -> dict[str, Any]:
    return usage_dict(usage.get("inputTokens") or 0, usage.get("outputTokens") or 0,
                      cache_read=usage.get("cacheReadInputTokens") or 0,
                      cache_write=usage.get("cacheWriteInputTokens") or 0)


def from_converse(data: dict[str, Any], model: str, created: int) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data["output"]["message"]["content"]:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            text.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            calls.append({"id": use.get("toolUseId"), "type": "function", "function": {
                "name": use.get("name"), "arguments": orjson.dumps(use.get("input") or {}).decode()}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    usage = data.get("usage")
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": FINISH_REASONS.get(str(data.get("stopReason")), "stop")}],
        "usage": canonical_usage(usage if isinstance(usage, dict) else {}),
    }


def _error_detail(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    message = (data.get("message") or data.get("Message")) if isinstance(data, dict) else None
    return message[:500] if isinstance(message, str) else None


class BedrockAdapter:
    """`clock` gives the SigV4 signing time and `created` timestamps (injected for tests)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def chat_request(
        self, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any], stream: bool
    ) -> UpstreamRequest:
        action = "converse-stream" if stream else "converse"
        url = f"{provider.base_url.rstrip('/')}/model/{quote(model, safe=_PATH_SAFE)}/{action}"
        headers = {"content-type": "application/json", "accept": "application/json"}
        if stream:
            headers.update({"accept": "application/vnd.amazon.eventstream", "accept-encoding": "identity"})
        body = orjson.dumps(to_converse(request))
        api_key = api_key.strip() if api_key else None  # Secrets made from files often end in a newline
        if api_key and ":" in api_key:
            headers = sigv4_headers("POST", url, headers, body, api_key, region_of(provider), self.clock())
        elif api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return UpstreamRequest("POST", url, headers, body)

    def chat_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
        content = ((data.get("output") or {}).get("message") or {}).get("content") if isinstance(data, dict) else None
        if not isinstance(content, list):
            raise UpstreamBadResponse(f"upstream {target} returned a response without output.message.content")
        return from_converse(data, model, int(self.clock()))

    def stream_translator(self, target: str, model: str) -> "BedrockStreamTranslator":
        return BedrockStreamTranslator(target, model, int(self.clock()))

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        lowered = {k.lower(): v for k, v in headers.items()}
        error_type = lowered.get("x-amzn-errortype", "").split(":", 1)[0]
        detail = _error_detail(body)
        if error_type:
            detail = f"{error_type}: {detail}" if detail else error_type
        status = ERROR_STATUS_OVERRIDES.get(error_type, status)
        return upstream_status_error(status, detail, lowered.get("retry-after"), target)


# --- ConverseStream: AWS event-stream decoding and translation ---------------------------------

class EventStreamDecoder:
    """Frames: prelude (total length, headers length, CRC32), headers, payload, CRC32 of all.

    `feed` takes bytes in any split and returns the complete messages as (headers, payload);
    a bad CRC or an absurd length raises ValueError (garbage is never buffered forever).
    """

    MAX_MESSAGE = 16 * 1024 * 1024
    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= 12:
            total, header_len, prelude_crc = struct.unpack_from(">III", self._buf, 0)
            if zlib.crc32(self._buf[:8]) != prelude_crc:
                raise ValueError("event-stream prelude checksum mismatch")
            if not 16 <= total <= self.MAX_MESSAGE or header_len > total - 16:
                raise ValueError("event-stream message length out of range")
            if len(self._buf) < total:
                break
            message = bytes(self._buf[:total])
            del self._buf[:total]
            if zlib.crc32(message[:-4]) != struct.unpack_from(">I", message, total - 4)[0]:
                raise ValueError("event-stream message checksum mismatch")
            out.append((_headers(message, 12, 12 + header_len), message[12 + header_len : -4]))
        return out


_U16 = struct.Struct(">H")
# fixed-size header value types: byte, short, int, long, timestamp (ms), uuid
_FIXED = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"), 5: struct.Struct(">q"),
          8: struct.Struct(">q"), 9: struct.Struct("16s")}


def _headers(buf: bytes, pos: int, end: int) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    try:
        while pos < end:
            name_len = buf[pos]
            name, kind = buf[pos + 1 : pos + 1 + name_len].decode(), buf[pos + 1 + name_len]
            pos += 2 + name_len
            if kind in (0, 1):  # booleans: the type is the value
                value: Any = kind == 0
            elif kind in (6, 7):  # bytes, string
                (length,) = _U16.unpack_from(buf, pos)
                value = buf[pos + 2 : pos + 2 + length]
                value = value.decode() if kind == 7 else value
                pos += 2 + length
            else:
                fixed = _FIXED[kind]
                value = fixed.unpack_from(buf, pos)[0]
                pos += fixed.size
            headers[name] = value
    except (IndexError, KeyError, struct.error, UnicodeDecodeError):
        raise ValueError("malformed event-stream headers") from None
    if pos != end:
        raise ValueError("malformed event-stream headers")
    return headers


class BedrockStreamTranslator:
    """ConverseStream events -> canonical chunks; ends properly only after messageStop.

    The final chunk carries `finish_reason` and, from the `metadata` event that follows
    messageStop, `usage`; it is held back until then (or until EOF).
    """

    __slots__ = ("target", "model", "created", "id", "decoder", "started", "finish_reason", "usage", "ended", "tools")

    def __init__(self, target: str, model: str, created: int) -> None:
        self.target, self.model, self.created = target, model, created
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.decoder = EventStreamDecoder()
        self.started = self.ended = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.tools: dict[int, int] = {}  # content block index -> tool call index

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _bad(self, what: str) -> UpstreamBadResponse:
        return UpstreamBadResponse(f"upstream {self.target} sent {what}")

    def _final(self) -> dict[str, Any]:
        self.ended = True
        chunk = self._chunk({}, self.finish_reason or "stop")
        if self.usage is not None:
            chunk["usage"] = canonical_usage(self.usage)
        return chunk

    def _event(self, headers: dict[str, Any], payload: bytes) -> dict[str, Any] | None:
        message_type = headers.get(":message-type")
        if message_type == "error":
            raise UpstreamError(f"upstream {self.target} failed mid-stream: {headers.get(':error-code')}: "
                                f"{str(headers.get(':error-message') or '')[:300]}")
        try:
            data = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            raise self._bad("a stream event that is not JSON") from None
        if not isinstance(data, dict):
            raise self._bad("a stream event that is not an object")
        if message_type == "exception":
            exception = str(headers.get(":exception-type") or "")
            detail = f"{exception}: {str(data.get('message') or data.get('Message') or '')[:300]}"
            raise upstream_status_error(STREAM_EXCEPTION_STATUS.get(exception, 502), detail, None, self.target)
        kind = headers.get(":event-type")
        if message_type != "event" or self.ended:
            return None
        if kind == "messageStart":
            self.started = True
            return self._chunk({"role": "assistant", "content": ""})
        if not self.started:
            raise self._bad(f"{kind!r} before messageStart")
        if kind == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if not isinstance(use, dict):
                return None
            index = self.tools[data.get("contentBlockIndex", 0)] = len(self.tools)
            return self._chunk({"tool_calls": [{"index": index, "id": use.get("toolUseId"), "type": "function",
                                                "function": {"name": use.get("name"), "arguments": ""}}]})
        if kind == "contentBlockDelta":
            delta = data.get("delta") or {}
            if isinstance(delta.get("text"), str):
                return self._chunk({"content": delta["text"]}) if delta["text"] else None
            if isinstance(delta.get("toolUse"), dict):
                tool_index = self.tools.get(data.get("contentBlockIndex", 0))
                if tool_index is None:
                    raise self._bad("tool input for a block that is not a toolUse")
                fragment = delta["toolUse"].get("input") or ""
                return self._chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": fragment}}]})
            return None  # reasoning, citations: not in the canonical format
        if kind == "messageStop":
            self.finish_reason = FINISH_REASONS.get(str(data.get("stopReason")), "stop")
            return self._final() if self.usage is not None else None
        if kind == "metadata":
            self.usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            return self._final() if self.finish_reason is not None else None
        return None  # contentBlockStop and event types added later

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        try:
            messages = self.decoder.feed(data)
        except ValueError as exc:
            raise self._bad(f"a malformed event stream ({exc})") from None
        return [chunk for headers, payload in messages if (chunk := self._event(headers, payload)) is not None]

    def finish(self) -> list[dict[str, Any]]:
        if self.ended:
            return []
        if self.finish_reason is None:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before messageStop")
        return [self._final()]  # messageStop without the metadata event: no usage to report

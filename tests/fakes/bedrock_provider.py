"""A fake AWS Bedrock runtime for tests: Converse and ConverseStream, in the style of ``FakeOpenAI``.

``FakeBedrock`` reuses ``FakeOpenAI``'s machinery (aiohttp server on 127.0.0.1 in a daemon thread,
``script()`` / ``set_default()``, model-name directives in the model id such as
``"fake~status=503"``, recorded requests -- ``path`` is recorded as sent, percent-encoded)::

    with FakeBedrock(access_key_id="AKIDFAKE", secret_access_key="secret") as fake:
        boto3.client("bedrock-runtime", endpoint_url=fake.url, region_name="us-east-1", ...).converse(...)

Endpoints: ``POST /model/{modelId}/converse`` and ``/converse-stream``; anything else is a 404
``UnknownOperationException``.

Authentication, checked after injected faults (like FakeOpenAI):
- SigV4: ``Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/bedrock/aws4_request,
  SignedHeaders=..., Signature=...`` with ``x-amz-date`` (within 5 minutes, matching the scope
  date, scoped to the fake's ``region``) and ``x-amz-security-token`` when a session token is configured. The signature is
  recomputed with botocore over the headers the client declared signed (structure-only checks
  if botocore is missing). Failures are 403 ``InvalidSignatureException`` /
  ``UnrecognizedClientException``, as AWS answers.
- Bedrock API keys: ``Authorization: Bearer <api_key>``.
With neither configured any request passes.

Answers: ``"echo: <text of the last user turn>"`` (after a ``toolResult``: ``"echo: <its text>"``);
with a ``toolConfig`` (and no ``toolResult`` last) a ``toolUse`` of the first tool (or the one
forced by ``toolChoice.tool``) with input ``{"arg": "value"}``, stopReason ``tool_use``.
``inferenceConfig.maxTokens`` truncates the text to that many words (``max_tokens``). Usage:
``inputTokens`` = words of system and message texts, ``outputTokens`` = words generated.
Requests are validated as strictly as Bedrock does (alternating turns starting with user,
non-blank text, tool blocks need a toolConfig, no unknown fields): 400 ``ValidationException``.

Streams are AWS event-stream frames (``application/vnd.amazon.eventstream``, see
``encode_message``): messageStart, contentBlockStart (tool use), contentBlockDelta x N,
contentBlockStop, messageStop, metadata; each frame counts as one chunk for
``disconnect_after_chunks`` / ``stall_after_chunks``. Payloads carry Bedrock's ``"p"`` padding.
``BedrockBehaviour`` adds ``stream_exception`` (e.g. ``"throttlingException"``: an exception
frame after ``exception_after`` frames, ending the stream) and ``stop_reason``.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.fakes.ollama_provider import behaviour_for, pre_response_faults, record, stream_frames
from tests.fakes.openai_provider import Behaviour, FakeOpenAI, _dumps, count_tokens, split_text

__all__ = ["BedrockBehaviour", "FakeBedrock", "encode_message", "event_frame", "exception_frame"]

EVENTSTREAM = "application/vnd.amazon.eventstream"
ERROR_TYPES = {
    400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
    408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
    500: "InternalServerException", 503: "ServiceUnavailableException",
}
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)
_TOP_LEVEL = {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "additionalModelRequestFields",
              "promptVariables", "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig"}
_BLOCKS = {"text", "image", "document", "video", "toolUse", "toolResult", "guardContent", "cachePoint", "reasoningContent"}


@dataclass
class BedrockBehaviour(Behaviour):
    stream_exception: str | None = None
    exception_after: int = 1
    stop_reason: str | None = None


# --- AWS event-stream encoding (botocore only decodes) ------------------------------------------

def _header(name: str, value: Any) -> bytes:
    raw = name.encode()
    out = bytes([len(raw)]) + raw
    if isinstance(value, bool):
        return out + bytes([0 if value else 1])
    if isinstance(value, int):
        return out + b"\x05" + struct.pack(">q", value)
    if isinstance(value, uuid.UUID):
        return out + b"\x09" + value.bytes
    if isinstance(value, datetime):
        return out + b"\x08" + struct.pack(">q", int(value.timestamp() * 1000))
    if isinstance(value, bytes):
        return out + b"\x06" + struct.pack(">H", len(value)) + value
    data = str(value).encode()
    return out + b"\x07" + struct.pack(">H", len(data)) + data


def encode_message(headers: dict[str, Any], payload: bytes) -> bytes:
    """One frame: prelude (total length, headers length, CRC32), headers, payload, CRC32."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 16 + len(raw_headers) + len(payload), len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, data: dict[str, Any]) -> bytes:
    payload = _dumps({**data, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[: 1 + len(event_type)]})
    return encode_message({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        _dumps({"message": message}),
    )


# --- SigV4 verification ---------------------------------------------------------------------------

def verify_sigv4(
    request: web.Request, body: bytes, access_key_id: str, secret: str, session_token: str | None, region: str,
    service: str = "bedrock",
) -> str | None:
    """None when the signature is right, else the reason (AWS's wording where it has one)."""
    match = _AUTH.match(request.headers.get("Authorization", ""))
    if not match:
        return "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters"
    if match["akid"] != access_key_id:
        return "UnrecognizedClient:The security token included in the request is invalid."
    amz_date = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header"
    if abs(time.time() - signed_at) > 300:
        return "Signature expired: " + amz_date
    if match["date"] != amz_date[:8] or match["service"] != service or match["region"] != region:
        return f"Credential should be scoped to a valid region, not '{match['region']}', and to service '{service}'"
    names = match["signed"].split(";")
    if "host" not in names or "x-amz-date" not in names:
        return "Signed headers must include host and x-amz-date"
    if session_token is not None and (request.headers.get("X-Amz-Security-Token") != session_token
                                      or "x-amz-security-token" not in names):
        return "UnrecognizedClient:The security token included in the request is invalid."
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:  # structure checked above; no independent signer available
        return None
    query = request.query_string
    url = f"http://{request.headers['Host']}{request.raw_path.split('?', 1)[0]}" + (f"?{query}" if query else "")
    signed = AWSRequest(method=request.method, url=url, data=body, headers={n: request.headers.get(n, "") for n in names})
    signed.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key_id, secret, session_token), service, region)
    canonical = signer.canonical_request(signed)
    expected = signer.signature(signer.string_to_sign(signed, canonical), signed)
    if expected != match["sig"]:
        return ("InvalidSignature:The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.")
    return None


# --- request validation ---------------------------------------------------------------------------

def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Malformed input request, please reformat your input and try again."
    for key in body:
        if key not in _TOP_LEVEL:
            return f"Malformed input request: extraneous key [{key}] is not permitted, please reformat your input and try again."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message. Try again with a conversation that starts with a user message."
    tool_blocks = False
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant"):
            return f"1 validation error detected: Value at 'messages.{i + 1}.member.role' failed to satisfy constraint"
        if i == 0 and role != "user":
            return "A conversation must start with a user message. Try again with a conversation that starts with a user message."
        if i and messages[i - 1].get("role") == role:
            return "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again."
        content = msg.get("content")
        if not isinstance(content, list) or not content:
            return f"The content field in the Message object at messages.{i}.content is empty. Add a ContentBlock object to the content field and try again."
        for block in content:
            keys = set(block) if isinstance(block, dict) else set()
            if len(keys) != 1 or not keys <= _BLOCKS:
                return f"Malformed input request: ContentBlock at messages.{i} must have exactly one member"
            if "text" in block and (not isinstance(block["text"], str) or not block["text"].strip()):
                return f"The text field in the ContentBlock object at messages.{i}.content is blank. Add text to the text field, and try again."
            if "image" in block:
                image = block["image"]
                if image.get("format") not in ("png", "jpeg", "gif", "webp"):
                    return "Invalid image format"
                try:
                    base64.b64decode((image.get("source") or {}).get("bytes") or "", validate=True)
                except (binascii.Error, TypeError, ValueError):
                    return "Invalid base64 image bytes"
            if "toolUse" in block:
                use = block["toolUse"]
                if role != "assistant" or not isinstance(use.get("input"), dict) or not use.get("toolUseId") or not use.get("name"):
                    return f"Malformed toolUse block at messages.{i}"
                tool_blocks = True
            if "toolResult" in block:
                if role != "user" or not block["toolResult"].get("toolUseId") or not isinstance(block["toolResult"].get("content"), list):
                    return f"Malformed toolResult block at messages.{i}"
                tool_blocks = True
    system = body.get("system", [])
    if not isinstance(system, list) or not all(isinstance(s, dict) and isinstance(s.get("text"), str) and s["text"] for s in system):
        return "Malformed input request: system must be a list of non-empty text blocks"
    inference = body.get("inferenceConfig", {})
    allowed = {"maxTokens": int, "temperature": (int, float), "topP": (int, float), "stopSequences": list}
    for key, value in inference.items() if isinstance(inference, dict) else [("inferenceConfig", None)]:
        if key not in allowed or not isinstance(value, allowed[key]) or isinstance(value, bool):
            return f"Malformed input request: inferenceConfig.{key} is not valid"
    config = body.get("toolConfig")
    if config is not None:
        tools = config.get("tools") if isinstance(config, dict) else None
        if not isinstance(tools, list) or not tools:
            return "The toolConfig field must be defined with at least one tool"
        for tool in tools:
            spec = tool.get("toolSpec") if isinstance(tool, dict) else None
            if not isinstance(spec, dict) or not spec.get("name") or not isinstance((spec.get("inputSchema") or {}).get("json"), dict):
                return "Malformed input request: toolSpec needs a name and inputSchema.json"
            if "description" in spec and not spec["description"]:
                return "Malformed input request: toolSpec.description must not be blank"
        choice = config.get("toolChoice")
        if choice is not None and not (isinstance(choice, dict) and len(choice) == 1 and set(choice) <= {"auto", "any", "tool"}):
            return "Malformed input request: toolChoice must have exactly one of auto, any, tool"
    elif tool_blocks:
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    return None


def _texts(blocks: list[dict[str, Any]]) -> str:
    return " ".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


# --- the server -------------------------------------------------------------------------------------

class FakeBedrock(FakeOpenAI):
    """Fake Bedrock runtime.  See the module docstring."""

    def __init__(
        self, *, access_key_id: str | None = None, secret_access_key: str | None = None,
        session_token: str | None = None, api_key: str | None = None, region: str = "us-east-1", **kwargs: Any,
    ) -> None:
        super().__init__(api_key, **kwargs)
        self.region = region
        self.access_key_id, self.secret_access_key, self.session_token = access_key_id, secret_access_key, session_token

    @property
    def base_url(self) -> str:
        return self.url

    def _aws_error(self, status: int, message: str | None, headers: dict[str, str] | None = None, kind: str | None = None) -> web.Response:
        kind = kind or ERROR_TYPES.get(status, "InternalServerException" if status >= 500 else "ValidationException")
        return web.Response(
            body=_dumps({"message": message or f"{kind} (injected by FakeBedrock)"}), status=status, content_type="application/json",
            headers={**(headers or {}), "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
        )

    def _auth_problem(self, request: web.Request, body: bytes) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and self.api_key is not None:
            return None if auth == f"Bearer {self.api_key}" else self._aws_error(403, "Invalid API Key format: Must start with pre-defined prefix", kind="AccessDeniedException")
        if self.access_key_id is not None and auth.startswith("AWS4-HMAC-SHA256"):
            problem = verify_sigv4(request, body, self.access_key_id, self.secret_access_key or "", self.session_token, self.region)
            if problem is None:
                return None
            kind, _, message = problem.partition(":") if problem.startswith(("InvalidSignature:", "UnrecognizedClient:")) else ("", "", problem)
            return self._aws_error(403, message, kind=f"{kind or 'InvalidSignature'}Exception")
        if self.api_key is None and self.access_key_id is None:
            return None
        return self._aws_error(403, "Missing Authentication Token", kind="MissingAuthenticationTokenException")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        if request.method == "GET" and raw_path == "/health":
            return self._json({"status": "ok"})
        body, parsed = await record(self, request, raw_path)
        headers = {"x-amzn-RequestId": str(uuid.uuid4())}
        parts = raw_path.split("/")
        if request.method != "POST" or len(parts) != 4 or parts[1] != "model" or parts[3] not in ("converse", "converse-stream"):
            return self._aws_error(404, f"Unknown operation {request.method} {raw_path}", headers, kind="UnknownOperationException")
        model_id, streaming = unquote(parts[2]), parts[3] == "converse-stream"
        try:
            eff, scripted = behaviour_for(self, model_id)
        except ValueError as exc:
            return self._aws_error(400, str(exc), headers)
        headers.update(eff.headers)
        fault = await pre_response_faults(
            self, request, eff, headers, lambda s, m: self._aws_error(s, m, headers),
            lambda: self._garbage_stream(request, streaming, eff, headers),
        )
        if fault is not None:
            return fault
        denied = self._auth_problem(request, body)
        if denied is not None:
            return denied
        problem = _validate(parsed)
        if problem:
            return self._aws_error(400, problem, headers)
        return await self._converse(request, model_id, parsed, eff, scripted, headers, streaming)

    async def _garbage_stream(self, request: web.Request, streaming: bool, eff: Behaviour, headers: dict[str, str]) -> web.StreamResponse:
        if not streaming:
            return web.Response(body=b"<html>502 {{{ not json", status=eff.status or 200, headers={**headers, "content-type": "application/json"})
        frames = [event_frame("messageStart", {"role": "assistant"}), b"\x00\x00\x00\x20garbage that is no event-stream frame"]
        return await stream_frames(self, request, frames, Behaviour(), eff.status or 200, headers, EVENTSTREAM)

    async def _converse(
        self, request: web.Request, model_id: str, body: dict[str, Any], eff: Behaviour, scripted: Behaviour | None,
        headers: dict[str, str], streaming: bool,
    ) -> web.StreamResponse:
        messages = body["messages"]
        last = messages[-1]["content"]
        result = next((b["toolResult"] for b in last if "toolResult" in b), None)
        text = "echo: " + (_texts(result["content"]) if result is not None else _texts(last))
        if eff.content is not None:
            text = eff.content
        stop_reason = "end_turn"
        config = body.get("toolConfig")
        tool_use = None
        if config and result is None:
            forced = (config.get("toolChoice") or {}).get("tool", {}).get("name")
            tool_use = {"toolUseId": "tooluse_" + uuid.uuid4().hex[:22], "name": forced or config["tools"][0]["toolSpec"]["name"],
                        "input": {"arg": "value"}}
            stop_reason = "tool_use"
        max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
        if tool_use is None and isinstance(max_tokens, int) and max_tokens < count_tokens(text):
            text, stop_reason = " ".join(text.split()[:max_tokens]), "max_tokens"
        stop_reason = getattr(scripted, "stop_reason", None) or stop_reason
        input_tokens = max(1, count_tokens(_texts(body.get("system") or [])) + sum(count_tokens(_texts(m["content"])) for m in messages))
        output_tokens = max(1, 2 if tool_use else count_tokens(text))
        usage = {"inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens}
        status = eff.status if eff.status is not None else 200
        if not streaming:
            content = [{"toolUse": tool_use}] if tool_use else [{"text": text}]
            obj = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop_reason,
                   "usage": usage, "metrics": {"latencyMs": 42}}
            if eff.disconnect_after_chunks is not None:
                return await self._truncated(request, _dumps(obj), status, headers)
            return web.Response(body=_dumps(obj), status=status, headers=headers, content_type="application/json")

        n = eff.chunks if eff.chunks is not None else self.default_chunks
        frames = [event_frame("messageStart", {"role": "assistant"})]
        if tool_use:
            frames.append(event_frame("contentBlockStart", {"contentBlockIndex": 0, "start": {
                "toolUse": {"toolUseId": tool_use["toolUseId"], "name": tool_use["name"]}}}))
            for piece in split_text(_dumps(tool_use["input"]).decode(), n):
                frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}))
        else:
            for piece in split_text(text, n):
                frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": 0}))
        frames.append(event_frame("messageStop", {"stopReason": stop_reason}))
        frames.append(event_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}))
        exception = getattr(scripted, "stream_exception", None)
        if exception:
            after = getattr(scripted, "exception_after", 1)
            frames = frames[:after] + [exception_frame(exception, eff.error_message or f"{exception} (injected by FakeBedrock)")]
        return await stream_frames(self, request, frames, eff, status, headers, EVENTSTREAM)

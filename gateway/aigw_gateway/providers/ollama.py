"""Ollama through its native chat API (`POST {base}/api/chat`), translated to and from canonical.

Why the native API and not Ollama's OpenAI-compatible `/v1/chat/completions`:
- usage: every native answer ends with `prompt_eval_count` / `eval_count`, streamed or not, on
  every Ollama version; the compatible endpoint reports usage in streams only in recent
  versions (`stream_options.include_usage`), so with older servers tokens would go unsettled;
- tools: native tool calls exist since 0.3 and are streamed since 0.8; the compatible endpoint
  got streamed tool calls later;
- `done_reason` and the sampling `options` are the server's own, so nothing is lost in the
  compatibility layer, and one format for every version is less to test than a version matrix.
The cost is translation, which this module does: NDJSON stream lines (`message`, `done`,
`done_reason`), tool calls with object (not string) arguments, sampling under `options`
(`num_predict`, `temperature`, `top_p`, `stop`, `seed`, penalties), images as bare base64.

Ollama needs no key; when one is configured (a reverse proxy in front of Ollama, ollama.com)
it is sent as `Authorization: Bearer`. `tool_choice` has no native equivalent: `"none"` drops
the tools, anything else leaves the choice to the model. Thinking text is not canonical and
is dropped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, InvalidRequest, UpstreamBadResponse, upstream_status_error
from ..streaming.sse import NDJSONParser
from ..wire.canonical import effort_for_budget, reasoning_budget
from .base import UpstreamRequest

FINISH_REASONS = {"stop": "stop", "length": "length"}  # "load"/"unload" and others: stop
# canonical request field -> native `options` field
_OPTIONS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed",
    "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
}


def chat_url(base_url: str) -> str:
    """`{base}/api/chat`; a base URL configured with Ollama's `/v1` or `/api` suffix works too."""
    base = base_url.rstrip("/")
    return base.removesuffix("/v1").removesuffix("/api") + "/api/chat"


def ollama_error_detail(body: bytes) -> str | None:
    """The message of Ollama's `{"error": "..."}` body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):  # the OpenAI shape, from a proxy in front of Ollama
        err = err.get("message")
    return err[:500] if isinstance(err, str) else None


# --- canonical request -> Ollama ---------------------------------------------------------------

def _text_and_images(content: Any, param: str) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or an array of parts", param=param)
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(part.get("text") or "")
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            header, sep, data = url.partition(",") if isinstance(url, str) else ("", "", "")
            if not (header.startswith("data:") and header.endswith(";base64") and sep):
                raise InvalidRequest("Ollama targets accept only base64 data: URLs as images", param=f"{param}[{j}]")
            images.append(data)
        else:
            raise InvalidRequest(f"content part type {kind!r} is not supported by Ollama targets", param=f"{param}[{j}]")
    return "\n".join(texts), images


def _arguments(raw: Any, param: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", param=param)
    return parsed


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array", param="messages")
    out: list[dict[str, Any]] = []
    tool_names: dict[str, str] = {}  # tool call id -> function name, for `tool_name` on results
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InvalidRequest("messages must be objects", param=param)
        role = msg.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest(f"role {role!r} is not supported by Ollama targets", param=param + ".role")
        text, images = _text_and_images(msg.get("content"), param + ".content")
        native: dict[str, Any] = {"role": role, "content": text}
        if images:
            native["images"] = images
        if role == "assistant" and msg.get("tool_calls"):
            calls = []
            for j, call in enumerate(msg["tool_calls"]):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise InvalidRequest("tool calls need a function name", param=f"{param}.tool_calls[{j}]")
                if isinstance(call.get("id"), str):
                    tool_names[call["id"]] = fn["name"]
                args = _arguments(fn.get("arguments"), f"{param}.tool_calls[{j}].function.arguments")
                calls.append({"function": {"name": fn["name"], "arguments": args}})
            native["tool_calls"] = calls
        if role == "tool":
            if msg.get("is_error") and not text.startswith("Error"):  # Ollama has no error flag on results
                native["content"] = "Error: " + text
            name = msg.get("name") or tool_names.get(msg.get("tool_call_id") or "")
            if name:
                native["tool_name"] = name
        out.append(native)
    return out


def _format(response_format: Any) -> Any:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return "json"
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else "json"
    return None


def to_ollama(model: str, request: dict[str, Any], stream: bool) -> dict[str, Any]:
    # `stream` is always explicit: Ollama streams when it is absent.
    body: dict[str, Any] = {"model": model, "messages": _messages(request.get("messages")), "stream": stream}
    options: dict[str, Any] = {}
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if isinstance(max_tokens, int):
        options["num_predict"] = max_tokens
    for field, option in _OPTIONS.items():
        value = request.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            options[option] = value
    stop = request.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and stop:
        options["stop"] = [s for s in stop if isinstance(s, str)]
    if options:
        body["options"] = options
    tools = [t for t in request.get("tools") or () if isinstance(t, dict) and t.get("type", "function") == "function"]
    if tools and request.get("tool_choice") != "none":
        body["tools"] = [{"type": "function", "function": t.get("function")} for t in tools]
    budget = reasoning_budget(request)
    if budget is not None:  # Ollama's `think`: a level for the models that take one, else on/off
        effort = request.get("reasoning_effort") or effort_for_budget(budget)
        body["think"] = False if budget == 0 else {"minimal": "low"}.get(effort, effort) if effort else True
    fmt = _format(request.get("response_format"))
    if fmt is not None:
        body["format"] = fmt
    return body


# --- Ollama -> canonical -----------------------------------------------------------------------

def _tool_calls(calls: Any, first_index: int) -> list[dict[str, Any]]:
    out = []
    for n, call in enumerate(calls if isinstance(calls, list) else ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        args = fn.get("arguments")
        arguments = args if isinstance(args, str) else orjson.dumps(args if args is not None else {}).decode()
        out.append({
            "index": first_index + n,
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": fn.get("name"), "arguments": arguments},
        })
    return out


def _usage(data: dict[str, Any]) -> dict[str, int]:
    prompt = data.get("prompt_eval_count") or 0
    completion = data.get("eval_count") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish_reason(data: dict[str, Any], saw_tool_calls: bool) -> str:
    # Ollama says "stop" after tool calls; canonical clients look for "tool_calls".
    if saw_tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(data.get("done_reason") or "stop", "stop")


def _chat_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class OllamaAdapter:
    """`clock` gives `created` timestamps (Ollama's own are RFC 3339 with nanoseconds)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def chat_request(
        self, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any], stream: bool
    ) -> UpstreamRequest:
        headers = {"content-type": "application/json", "accept": "application/x-ndjson" if stream else "application/json"}
        if stream:
            headers["accept-encoding"] = "identity"
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return UpstreamRequest("POST", chat_url(provider.base_url), headers, orjson.dumps(to_ollama(model, request, stream)))

    def chat_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            raise upstream_status_error(500, data["error"][:500], None, target)
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, dict) or data.get("done") is not True:
            raise UpstreamBadResponse(f"upstream {target} returned a response without a final message")
        calls = _tool_calls(message.get("tool_calls"), 0)
        for call in calls:
            del call["index"]
        content = message.get("content") or ""
        out: dict[str, Any] = {"role": "assistant", "content": content if content or not calls else None}
        if calls:
            out["tool_calls"] = calls
        return {
            "id": _chat_id(),
            "object": "chat.completion",
            "created": int(self.clock()),
            "model": data.get("model") or model,
            "choices": [{"index": 0, "message": out, "finish_reason": _finish_reason(data, bool(calls))}],
            "usage": _usage(data),
        }

    def stream_translator(self, target: str, model: str) -> "OllamaStreamTranslator":
        return OllamaStreamTranslator(target, model, int(self.clock()))

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        return upstream_status_error(status, ollama_error_detail(body), retry_after, target)


class OllamaStreamTranslator:
    """NDJSON lines -> canonical chunks; ends properly only with a `done: true` line.

    The first chunk carries the role; the last one `finish_reason` and `usage` together.
    """

    __slots__ = ("target", "model", "created", "id", "parser", "started", "done", "tool_calls")

    def __init__(self, target: str, model: str, created: int) -> None:
        self.target, self.model, self.created = target, model, created
        self.id = _chat_id()
        self.parser = NDJSONParser()
        self.started = self.done = False
        self.tool_calls = 0

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _line(self, line: bytes, out: list[dict[str, Any]]) -> None:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {self.target} sent a stream line that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamBadResponse(f"upstream {self.target} sent a stream line that is not an object")
        if "error" in data:
            detail = data["error"] if isinstance(data["error"], str) else None
            raise upstream_status_error(500, detail, None, self.target)
        if self.done:
            return
        message = data.get("message")
        if not isinstance(message, dict):
            message = {}
        delta: dict[str, Any] = {}
        if not self.started:
            self.started = True
            delta["role"] = "assistant"
        content = message.get("content")
        if content:
            delta["content"] = content
        calls = _tool_calls(message.get("tool_calls"), self.tool_calls)
        if calls:
            self.tool_calls += len(calls)
            delta["tool_calls"] = calls
        if delta:
            out.append(self._chunk(delta))
        if data.get("done") is True:
            self.done = True
            chunk = self._chunk({}, _finish_reason(data, self.tool_calls > 0))
            chunk["usage"] = _usage(data)
            out.append(chunk)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for line in self.parser.feed(data):
            self._line(line, out)
        return out

    def finish(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for line in self.parser.flush():
            self._line(line, out)
        if not self.done:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before its final (done) line")
        return out

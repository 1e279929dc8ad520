"""Anthropic's Messages API (`POST /v1/messages`), translated to and from the canonical format.

Requests: system messages become the top-level `system`; `max_tokens` is required upstream, so
it defaults to 4096; tool calls and tool results become `tool_use` / `tool_result` blocks and
consecutive same-role turns are merged, because Anthropic wants user and assistant to alternate
and all tool results of one assistant turn in the next user turn. Responses and SSE events
(message_start ... message_stop) become `chat.completion` / `chat.completion.chunk` dicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, InvalidRequest, UpstreamBadResponse, upstream_status_error
from ..streaming.sse import SSEEvent, SSEParser
from .usage import usage_dict
from .base import UpstreamRequest

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter",
}
# Anthropic error types -> the HTTP status they stand for (for in-stream `error` events).
ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
    "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
    "timeout_error": 504, "overloaded_error": 529,
}
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def messages_url(base_url: str) -> str:
    """`{base}/v1/messages`; a base URL that already ends in /v1 is accepted too."""
    base = base_url.rstrip("/")
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


def anthropic_error_detail(body: bytes | str) -> tuple[str | None, str | None]:
    """(error type, message) from `{"type": "error", "error": {"type", "message"}}`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None, None
    kind, message = err.get("type"), err.get("message")
    return (kind if isinstance(kind, str) else None), (message[:500] if isinstance(message, str) else None)


# --- canonical request -> Anthropic ------------------------------------------------------------

def _data_url_source(url: str, param: str) -> dict[str, Any]:
    header, sep, data = url.partition(",")
    media_type = header[5:].split(";", 1)[0]
    if not sep or ";base64" not in header:
        raise InvalidRequest("image data URLs must be base64-encoded", param=param)
    return {"type": "base64", "media_type": media_type, "data": data}


def _part_block(part: Any, param: str) -> dict[str, Any] | None:
    if isinstance(part, str):
        return {"type": "text", "text": part} if part else None
    if not isinstance(part, dict):
        raise InvalidRequest("content parts must be objects", param=param)
    kind = part.get("type")
    if kind in ("text", "refusal"):  # an assistant's earlier refusal is replayed as its text
        text = part.get(kind)
        return {"type": "text", "text": text} if isinstance(text, str) and text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise InvalidRequest("image_url.url must be a string", param=param)
        if url.startswith("data:"):
            source = _data_url_source(url, param)
            if source["media_type"] not in _IMAGE_TYPES:
                raise InvalidRequest(f"image type {source['media_type']!r} is not supported", param=param)
            return {"type": "image", "source": source}
        return {"type": "image", "source": {"type": "url", "url": url}}
    if kind == "file":
        data = (part.get("file") or {}).get("file_data")
        if isinstance(data, str) and data.startswith("data:"):
            return {"type": "document", "source": _data_url_source(data, param)}
    raise InvalidRequest(f"content part type {kind!r} is not supported by Anthropic targets", param=param)


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or an array of parts", param=param)
    blocks = []
    for j, part in enumerate(content):
        block = _part_block(part, f"{param}[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _tool_use(call: Any, param: str, fallback_id: str) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest("tool calls need a function name", param=param)
    arguments = fn.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise InvalidRequest("tool call arguments must be a JSON object", param=param + ".function.arguments") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", param=param + ".function.arguments")
    return {"type": "tool_use", "id": call.get("id") or fallback_id, "name": fn["name"], "input": parsed}


def _turns(messages: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, alternating user/assistant turns)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InvalidRequest("messages must be objects", param=param)
        role, content = msg.get("role"), msg.get("content")
        if role in ("system", "developer"):
            text = _text(content)
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _blocks(content, param + ".content")
        elif role == "assistant":
            blocks = _blocks(content, param + ".content")
            for j, call in enumerate(msg.get("tool_calls") or ()):
                blocks.append(_tool_use(call, f"{param}.tool_calls[{j}]", f"toolu_{i}_{j}"))
        elif role == "tool":
            role = "user"
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id") or ""}
            text = _text(content)
            if text:
                result["content"] = text
            blocks = [result]
        else:
            raise InvalidRequest(f"role {role!r} is not supported by Anthropic targets", param=param + ".role")
        if not blocks:
            continue  # Anthropic refuses empty text blocks; an empty turn carries nothing anyway
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]["content"]
            # tool results must lead their user turn
            if blocks and blocks[0]["type"] == "tool_result":
                split = next((k for k, b in enumerate(previous) if b["type"] != "tool_result"), len(previous))
                previous[split:split] = blocks
            else:
                previous.extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool(tool: Any, param: str) -> dict[str, Any] | None:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        return None
    fn = tool.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest("function tools need a name", param=param)
    out: dict[str, Any] = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any]:
    if choice == "required":
        out: dict[str, Any] = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        out = {"type": "auto"}
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def to_anthropic(model: str, request: dict[str, Any], stream: bool) -> dict[str, Any]:
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array", param="messages")
    system, turns = _turns(messages)
    max_tokens = request.get("max_tokens") or request.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        body["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": t} for t in system]
    temperature = request.get("temperature")
    if isinstance(temperature, (int, float)):
        body["temperature"] = min(float(temperature), 1.0)  # OpenAI allows up to 2, Anthropic 1
    if isinstance(request.get("top_p"), (int, float)):
        body["top_p"] = request["top_p"]
    stop = request.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and stop:
        body["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    tools = [t for i, raw in enumerate(request.get("tools") or ()) if (t := _tool(raw, f"tools[{i}]"))]
    if tools:
        body["tools"] = tools
        if "tool_choice" in request or request.get("parallel_tool_calls") is False:
            body["tool_choice"] = _tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"))
    if isinstance(request.get("user"), str):
        body["metadata"] = {"user_id": request["user"]}
    if stream:
        body["stream"] = True
    return body


# --- Anthropic -> canonical --------------------------------------------------------------------

def canonical_usage(usage: dict[str, Any]) -> dict[str, Any]:
    return usage_dict(usage.get("input_tokens") or 0, usage.get("output_tokens") or 0,
                      cache_read=usage.get("cache_read_input_tokens") or 0,
                      cache_write=usage.get("cache_creation_input_tokens") or 0)


def from_anthropic(data: dict[str, Any], model: str, created: int) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            calls.append({
                "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
            })
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    usage = data.get("usage")
    return {
        "id": data.get("id") or "msg_unknown",
        "object": "chat.completion",
        "created": created,
        "model": data.get("model") or model,
        "choices": [{"index": 0, "message": message, "finish_reason": FINISH_REASONS.get(data.get("stop_reason"), "stop")}],
        "usage": canonical_usage(usage if isinstance(usage, dict) else {}),
    }


class AnthropicAdapter:
    """`clock` gives `created` timestamps (injected so the translation stays deterministic in tests)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def chat_request(
        self, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any], stream: bool
    ) -> UpstreamRequest:
        headers = {
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            "accept": "text/event-stream" if stream else "application/json",
        }
        if stream:
            headers["accept-encoding"] = "identity"
        if api_key:
            headers["x-api-key"] = api_key
        body = orjson.dumps(to_anthropic(model, request, stream))
        return UpstreamRequest("POST", messages_url(provider.base_url), headers, body)

    def chat_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
        if not isinstance(data, dict) or data.get("type") != "message" or not isinstance(data.get("content"), list):
            raise UpstreamBadResponse(f"upstream {target} returned a response that is not a message")
        return from_anthropic(data, model, int(self.clock()))

    def stream_translator(self, target: str, model: str) -> "AnthropicStreamTranslator":
        return AnthropicStreamTranslator(target, model, int(self.clock()))

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        return upstream_status_error(status, anthropic_error_detail(body)[1], retry_after, target)


class AnthropicStreamTranslator:
    """Anthropic SSE events -> canonical chunks; ends properly only with message_stop."""

    __slots__ = ("target", "model", "created", "parser", "id", "started", "done", "tools", "usage", "finish_reason")

    def __init__(self, target: str, model: str, created: int) -> None:
        self.target, self.model, self.created = target, model, created
        self.parser = SSEParser()
        self.id = "msg_unknown"
        self.started = self.done = False
        self.tools: dict[int, int] = {}  # content block index -> tool call index
        self.usage: dict[str, Any] = {}
        self.finish_reason: str | None = None

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _bad(self, what: str) -> UpstreamBadResponse:
        return UpstreamBadResponse(f"upstream {self.target} sent {what}")

    def _event(self, event: SSEEvent) -> dict[str, Any] | None:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise self._bad("a stream event that is not JSON") from None
        if not isinstance(data, dict):
            raise self._bad("a stream event that is not an object")
        kind = data.get("type") or event.event
        if kind == "error":
            err_type, message = anthropic_error_detail(event.data)
            raise upstream_status_error(ERROR_STATUS.get(err_type or "", 502), message, None, self.target)
        if kind == "ping" or self.done:
            return None
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id") or self.id
            self.model = message.get("model") or self.model
            self.usage.update(message.get("usage") or {})
            self.started = True
            return self._chunk({"role": "assistant", "content": ""})
        if not self.started:
            raise self._bad(f"{kind!r} before message_start")
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "text" and block.get("text"):
                return self._chunk({"content": block["text"]})
            if block.get("type") == "tool_use":
                index = self.tools[data.get("index", 0)] = len(self.tools)
                arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
                call = {"index": index, "id": block.get("id"), "type": "function",
                        "function": {"name": block.get("name"), "arguments": arguments}}
                return self._chunk({"tool_calls": [call]})
            return None
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return self._chunk({"content": delta["text"]})
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                index = self.tools.get(data.get("index", 0))
                if index is None:
                    raise self._bad("tool input for a block that is not a tool_use")
                return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]})
            return None  # thinking, signatures, citations: not in the canonical format
        if kind == "message_delta":
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            self.finish_reason = FINISH_REASONS.get(stop_reason, "stop") if stop_reason else self.finish_reason
            # message_delta usage is cumulative: it overrides what message_start said
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            return None
        if kind == "message_stop":
            self.done = True
            chunk = self._chunk({}, self.finish_reason or "stop")
            chunk["usage"] = canonical_usage(self.usage)
            return chunk
        return None  # content_block_stop and event types added later

    def _chunks(self, events: list[SSEEvent]) -> list[dict[str, Any]]:
        return [chunk for event in events if (chunk := self._event(event)) is not None]

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._chunks(self.parser.feed(data))

    def finish(self) -> list[dict[str, Any]]:
        out = self._chunks(self.parser.flush())
        if not self.done:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before message_stop")
        return out

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
from ..wire.anthropic import (ERROR_STATUS, FINISH_REASONS, IMAGE_TYPES, JSON_TOOL, MIN_THINKING_BUDGET,
                              to_canonical_usage)
from ..wire.canonical import reasoning_budget
from .base import UpstreamRequest

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

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
            if source["media_type"] not in IMAGE_TYPES:
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
            if isinstance(part, dict) and isinstance(part.get("cache_control"), dict):
                block["cache_control"] = part["cache_control"]  # prompt caching breakpoints are kept
            blocks.append(block)
    return blocks


def _tool_result(msg: dict[str, Any], param: str) -> dict[str, Any]:
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id") or ""}
    content = msg.get("content")
    if isinstance(content, list):  # text and images (a screenshot a tool returned)
        blocks = _blocks(content, param + ".content")
        if blocks and all(set(b) == {"type", "text"} for b in blocks):
            result["content"] = "".join(b["text"] for b in blocks)
        elif blocks:
            result["content"] = blocks
    elif isinstance(content, str) and content:
        result["content"] = content
    if msg.get("is_error"):
        result["is_error"] = True
    if isinstance(msg.get("cache_control"), dict):
        result["cache_control"] = msg["cache_control"]
    return result


def _thinking(blocks: Any) -> list[dict[str, Any]]:
    """Thinking blocks of an earlier assistant turn, replayed as Anthropic issued them."""
    out = []
    for block in blocks if isinstance(blocks, list) else ():
        if isinstance(block, dict) and block.get("type") == "thinking" and block.get("signature"):
            out.append({"type": "thinking", "thinking": block.get("thinking") or "", "signature": block["signature"]})
        elif isinstance(block, dict) and block.get("type") == "redacted_thinking" and block.get("data"):
            out.append({"type": "redacted_thinking", "data": block["data"]})
    return out


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


def _turns(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system text blocks, alternating user/assistant turns). System turns anywhere in the
    conversation join the top-level system, in order, with their cache breakpoints."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InvalidRequest("messages must be objects", param=param)
        role, content = msg.get("role"), msg.get("content")
        if role in ("system", "developer"):
            system.extend(b for b in _blocks(content, param + ".content") if b["type"] == "text")
            continue
        if role == "user":
            blocks = _blocks(content, param + ".content")
        elif role == "assistant":
            blocks = _thinking(msg.get("thinking_blocks")) + _blocks(content, param + ".content")
            for j, call in enumerate(msg.get("tool_calls") or ()):
                blocks.append(_tool_use(call, f"{param}.tool_calls[{j}]", f"toolu_{i}_{j}"))
        elif role == "tool":
            role = "user"
            blocks = [_tool_result(msg, param)]
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
    if fn["name"] == JSON_TOOL:
        raise InvalidRequest(f"the tool name {JSON_TOOL!r} is reserved on Anthropic targets", param=param + ".function.name")
    out: dict[str, Any] = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    if isinstance(tool.get("cache_control"), dict):
        out["cache_control"] = tool["cache_control"]
    return out


def _json_tool(fmt: Any) -> dict[str, Any] | None:
    """`response_format` as a tool whose input is the answer (the openai SDK's parse() then gets JSON)."""
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "json_schema"):
        return None
    spec = fmt.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec.get("schema"), dict) else {"type": "object"}
    description = spec.get("description") or "Respond with the answer as this tool's input: a JSON object."
    return {"name": JSON_TOOL, "description": description, "input_schema": schema}


def _apply_reasoning(request: dict[str, Any], body: dict[str, Any]) -> None:
    budget = reasoning_budget(request)
    if budget is None:
        return
    if budget == 0:
        body["thinking"] = {"type": "disabled"}
        return
    param = "reasoning_budget" if "reasoning_budget" in request else "reasoning_effort"
    if budget < 0:  # the model decides: a medium budget
        budget = 8192
    budget = min(budget, body["max_tokens"] - 1)
    if budget < MIN_THINKING_BUDGET:
        raise InvalidRequest(f"thinking on Anthropic needs max_tokens above {MIN_THINKING_BUDGET}", param=param)
    if body.get("temperature", 1) != 1:
        raise InvalidRequest("Anthropic accepts no temperature other than 1 with thinking", param="temperature")
    if "top_k" in body:
        raise InvalidRequest("Anthropic accepts no top_k with thinking", param="top_k")
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


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
        cached = any("cache_control" in b for b in system)
        body["system"] = system if cached or len(system) > 1 else system[0]["text"]
    for key in ("temperature", "top_p", "top_k"):  # ranges were checked by wire.anthropic.FIELDS: never clamped
        if isinstance(request.get(key), (int, float)) and not isinstance(request[key], bool):
            body[key] = request[key]
    stop = request.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and stop:
        body["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    tools = [t for i, raw in enumerate(request.get("tools") or ()) if (t := _tool(raw, f"tools[{i}]"))]
    json_tool = _json_tool(request.get("response_format"))
    _apply_reasoning(request, body)
    if json_tool is not None:
        thinking = body.get("thinking", {}).get("type") == "enabled"
        # forced tool use is refused together with thinking: then the model is asked, not forced
        choice: dict[str, Any] = ({"type": "auto"} if thinking else {"type": "any"} if tools
                                  else {"type": "tool", "name": JSON_TOOL})
        body["tools"] = [*tools, json_tool]
        body["tool_choice"] = choice
    elif tools:
        body["tools"] = tools
        if "tool_choice" in request or request.get("parallel_tool_calls") is False:
            body["tool_choice"] = _tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"))
    user = request.get("user") or request.get("safety_identifier")
    if isinstance(user, str):
        body["metadata"] = {"user_id": user}
    body.update((request.get("x_vendor") or {}).get("anthropic") or {})  # the Anthropic client's own fields
    if stream:
        body["stream"] = True
    return body


# --- Anthropic -> canonical --------------------------------------------------------------------

canonical_usage = to_canonical_usage


def from_anthropic(data: dict[str, Any], model: str, created: int) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:  # the response_format answer
            text.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            calls.append({
                "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
            })
        elif kind == "thinking":
            thinking.append({"type": "thinking", "thinking": block.get("thinking") or "",
                             "signature": block.get("signature") or ""})
        elif kind == "redacted_thinking":
            thinking.append({"type": "redacted_thinking", "data": block.get("data") or ""})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(b.get("thinking", "") for b in thinking)
        message["thinking_blocks"] = thinking
    usage = data.get("usage")
    stop_reason = data.get("stop_reason")
    finish = "stop" if stop_reason == "tool_use" and not calls else FINISH_REASONS.get(stop_reason, "stop")
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if stop_reason == "stop_sequence" and isinstance(data.get("stop_sequence"), str):
        choice["stop_reason"] = data["stop_sequence"]
    return {
        "id": data.get("id") or "msg_unknown",
        "object": "chat.completion",
        "created": created,
        "model": data.get("model") or model,
        "choices": [choice],
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

    __slots__ = ("target", "model", "created", "parser", "id", "started", "done", "tools", "usage", "finish_reason",
                 "json_block", "stop_sequence")

    def __init__(self, target: str, model: str, created: int) -> None:
        self.target, self.model, self.created = target, model, created
        self.parser = SSEParser()
        self.id = "msg_unknown"
        self.started = self.done = False
        self.tools: dict[int, int] = {}  # content block index -> tool call index
        self.usage: dict[str, Any] = {}
        self.finish_reason: str | None = None
        self.json_block: int | None = None  # the response_format tool's block: its input is answer text
        self.stop_sequence: str | None = None

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
            if block.get("type") == "tool_use" and block.get("name") == JSON_TOOL:
                self.json_block = data.get("index", 0)
                return None
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
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                return self._chunk({"reasoning_content": delta["thinking"]})
            if delta.get("type") == "signature_delta" and delta.get("signature"):
                return self._chunk({"thinking_blocks": [{"type": "thinking", "signature": delta["signature"]}]})
            if delta.get("type") == "input_json_delta" and data.get("index", 0) == self.json_block:
                return self._chunk({"content": delta["partial_json"]}) if delta.get("partial_json") else None
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                index = self.tools.get(data.get("index", 0))
                if index is None:
                    raise self._bad("tool input for a block that is not a tool_use")
                return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]})
            return None  # citations: not in the canonical format
        if kind == "message_delta":
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            if stop_reason == "tool_use" and not self.tools:  # only the response_format tool was called
                stop_reason = "end_turn"
            self.finish_reason = FINISH_REASONS.get(stop_reason, "stop") if stop_reason else self.finish_reason
            sequence = (data.get("delta") or {}).get("stop_sequence")
            if stop_reason == "stop_sequence" and isinstance(sequence, str):
                self.stop_sequence = sequence
            # message_delta usage is cumulative: it overrides what message_start said
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            return None
        if kind == "message_stop":
            self.done = True
            chunk = self._chunk({}, self.finish_reason or "stop")
            if self.stop_sequence is not None:
                chunk["choices"][0]["stop_reason"] = self.stop_sequence
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

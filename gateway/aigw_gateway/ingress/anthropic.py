"""Anthropic's Messages API as a client-facing format (`POST /v1/messages`, the anthropic SDK).

Requests become canonical chat requests: the top-level `system` becomes a system message,
`tool_result` blocks become `tool` messages (ahead of the rest of their user turn, the order
OpenAI wants; `is_error` and images kept), `tool_use` blocks become assistant `tool_calls`,
`system` turns inside `messages` stay system messages where they are. `cache_control` markers,
thinking blocks of earlier turns, `top_k`, `thinking`, `metadata.user_id` and `output_config`
travel in the canonical extension keys (wire/canonical.py); any other field travels under
`x_vendor.anthropic`, so a target that cannot honour it refuses it by name. Responses and chunk
streams are rendered back as Anthropic `message` objects and its exact SSE event sequence.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import GatewayError, InvalidRequest, render_error
from ..streaming.sse import sse_event
from ..wire.anthropic import REQUEST_FIELDS, STOP_REASONS, THINKING_BLOCKS, from_canonical_usage

_DROPPED_BLOCKS = THINKING_BLOCKS  # in user turns: nothing to carry


# --- Anthropic request -> canonical ------------------------------------------------------------

def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") not in ("text", "image"):
                raise InvalidRequest("expected text blocks", param=f"{param}[{j}]")
            if block["type"] == "text":
                texts.append(block.get("text") or "")
        return "\n".join(texts)
    raise InvalidRequest("expected a string or an array of text blocks", param=param)


def _image_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    elif isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequest("image blocks need a base64 or url source", param=param + ".source")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
        data_url = f"data:{source.get('media_type') or 'application/pdf'};base64,{source['data']}"
        return {"type": "file", "file": {"file_data": data_url, "filename": block.get("title") or "document.pdf"}}
    raise InvalidRequest("document blocks need a base64 or text source", param=param + ".source")


def _user_messages(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or an array of content blocks", param=param)
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        bparam = f"{param}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in ("text", "image", "document"):
            parts.append(_part(block, bparam))
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise InvalidRequest("tool_result blocks need a tool_use_id", param=bparam + ".tool_use_id")
            results.append(_tool_message(block, bparam))
        elif kind not in _DROPPED_BLOCKS:
            raise InvalidRequest(f"content block type {kind!r} is not supported", param=bparam + ".type")
    if len(parts) == 1 and set(parts[0]) == {"type", "text"}:
        return [*results, {"role": "user", "content": parts[0]["text"]}]
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _part(block: dict[str, Any], param: str) -> dict[str, Any]:
    kind = block["type"]
    if kind == "text":
        part: dict[str, Any] = {"type": "text", "text": block.get("text") or ""}
    elif kind == "image":
        part = _image_part(block, param)
    else:
        part = _document_part(block, param)
    if isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]
    return part


def _tool_message(block: dict[str, Any], param: str) -> dict[str, Any]:
    content = block.get("content", "")
    message: dict[str, Any] = {"role": "tool", "tool_call_id": block["tool_use_id"]}
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") != "text" for b in content):
        parts = []
        for j, sub in enumerate(content):
            kind = sub.get("type") if isinstance(sub, dict) else None
            if kind not in ("text", "image", "document"):
                raise InvalidRequest(f"tool_result content type {kind!r} is not supported", param=f"{param}.content[{j}]")
            parts.append(_part(sub, f"{param}.content[{j}]"))
        message["content"] = parts
    else:
        message["content"] = _text_of(content, param + ".content")
    if block.get("is_error"):
        message["is_error"] = True
    if isinstance(block.get("cache_control"), dict):
        message["cache_control"] = block["cache_control"]
    return message


def _assistant_message(content: Any, param: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or an array of content blocks", param=param)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in THINKING_BLOCKS:
            thinking.append(block)
        elif kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            if not isinstance(block.get("name"), str) or not isinstance(block.get("id"), str):
                raise InvalidRequest("tool_use blocks need an id and a name", param=f"{param}[{j}]")
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block["name"], "arguments": arguments}
            calls.append({"id": block["id"], "type": "function", "function": function})
        elif kind not in _DROPPED_BLOCKS:
            raise InvalidRequest(f"content block type {kind!r} is not supported", param=f"{param}[{j}].type")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking_blocks"] = thinking
    return message


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "custom") not in ("custom", None):
            raise InvalidRequest("only custom (client) tools are supported", param=f"tools[{i}].type")
        if not isinstance(tool.get("name"), str):
            raise InvalidRequest("tools need a name", param=f"tools[{i}].name")
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        entry: dict[str, Any] = {"type": "function", "function": fn}
        if isinstance(tool.get("cache_control"), dict):
            entry["cache_control"] = tool["cache_control"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, request: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        raise InvalidRequest("'tool_choice' must be an object", param="tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        request["tool_choice"] = "auto"
    elif kind == "any":
        request["tool_choice"] = "required"
    elif kind == "none":
        request["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        request["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise InvalidRequest("'tool_choice.type' must be auto, any, tool (with a name) or none", param="tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        request["parallel_tool_calls"] = False


def to_canonical(body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required", param="model")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (an integer >= 1)", param="max_tokens")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages: Field required (a non-empty array)", param="messages")
    messages: list[dict[str, Any]] = []
    paths: list[str] = []  # the client's path of each canonical message
    if body.get("system"):
        messages.append(_system_message(body["system"], "system"))
        paths.append("system")
    for i, msg in enumerate(raw):
        param = f"messages[{i}]"
        role = msg.get("role") if isinstance(msg, dict) else None
        if role == "user":
            messages.extend(_user_messages(msg.get("content"), param + ".content"))
        elif role == "assistant":
            messages.append(_assistant_message(msg.get("content"), param + ".content"))
        elif role == "system":  # Claude Code sends system turns inside the conversation
            messages.append(_system_message(msg.get("content"), param + ".content"))
        else:
            raise InvalidRequest(f"unexpected role {role!r}: messages are user, assistant or system turns",
                                 param=param + ".role")
        paths.extend([param] * (len(messages) - len(paths)))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    request: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": stream}
    if stream:
        request["stream_options"] = {"include_usage": True}
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), (int, float)):
            request[key] = body[key]
    stop = body.get("stop_sequences")
    if stop:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("stop_sequences must be an array of strings", param="stop_sequences")
        request["stop"] = stop
    if body.get("tools"):
        request["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], request)
    _extensions(body, request)
    if paths != [f"messages[{k}]" for k in range(len(paths))]:
        request["x_paths"] = paths
    return request


def _system_message(system: Any, param: str) -> dict[str, Any]:
    if isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system):
        parts = []
        for j, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise InvalidRequest("expected text blocks", param=f"{param}[{j}]")
            parts.append(_part(block, f"{param}[{j}]"))
        return {"role": "system", "content": parts}
    # one string: the blocks' concatenation, and what every OpenAI-compatible server accepts
    return {"role": "system", "content": _text_of(system, param)}


def _extensions(body: dict[str, Any], request: dict[str, Any]) -> None:
    """Anthropic fields beyond the OpenAI chat shape: canonical extension keys where one exists,
    `x_vendor.anthropic` for the rest (refused by name by any target that cannot honour them)."""
    if isinstance(body.get("top_k"), int):
        request["top_k"] = body["top_k"]
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        kind = thinking.get("type")
        if kind == "enabled" and isinstance(thinking.get("budget_tokens"), int):
            request["reasoning_budget"] = thinking["budget_tokens"]
        elif kind == "disabled":
            request["reasoning_budget"] = 0
        elif kind == "adaptive":
            request["reasoning_budget"] = -1
        else:
            raise InvalidRequest("thinking.type must be enabled (with budget_tokens), disabled or adaptive",
                                 param="thinking")
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        request["user"] = metadata["user_id"]
    extra: dict[str, Any] = {k: v for k, v in body.items() if k not in REQUEST_FIELDS and v is not None}
    config = body.get("output_config")
    if isinstance(config, dict):
        config = dict(config)
        if isinstance(config.get("effort"), str):
            request["reasoning_effort"] = config.pop("effort")
        if isinstance(config.get("format"), dict):
            _output_format(config.pop("format"), request)
        if config:
            extra["output_config"] = config
    if isinstance(body.get("output_format"), dict):
        _output_format(body["output_format"], request)
    request["x_vendor"] = {"anthropic": extra} if extra else {}
    names = {k: v for k, v in _NAMES.items() if k in request}
    if "response_format" in request and isinstance(body.get("output_format"), dict):
        names["response_format"] = "output_format"
    if names:
        request["x_names"] = names


# canonical key -> the Anthropic field it came from (named in a refusal)
_NAMES = {"reasoning_budget": "thinking", "reasoning_effort": "output_config.effort", "user": "metadata.user_id",
          "response_format": "output_config.format", "stop": "stop_sequences",
          "parallel_tool_calls": "tool_choice.disable_parallel_tool_use"}


def _output_format(fmt: dict[str, Any], request: dict[str, Any]) -> None:
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest("output format must be json_schema with a schema", param="output_config.format")
    request["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


# --- canonical -> Anthropic --------------------------------------------------------------------

def message_id(canonical_id: Any) -> str:
    if isinstance(canonical_id, str) and canonical_id.startswith("msg_"):
        return canonical_id
    return "msg_" + (canonical_id.removeprefix("chatcmpl-") if isinstance(canonical_id, str) and canonical_id else "aigw")


def tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


anthropic_usage = from_canonical_usage


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def from_canonical(response: dict[str, Any], model: str) -> dict[str, Any]:
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = _thinking_out(message)
    text = _content_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{len(content)}", "name": fn.get("name") or "",
                        "input": tool_input(fn.get("arguments"))})
    return {
        "id": message_id(response.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        **_stop(choice.get("finish_reason"), choice.get("stop_reason")),
        "usage": anthropic_usage(response.get("usage")),
    }


def _stop(finish_reason: Any, sequence: Any) -> dict[str, Any]:
    if finish_reason in (None, "stop") and isinstance(sequence, str):
        return {"stop_reason": "stop_sequence", "stop_sequence": sequence}
    return {"stop_reason": STOP_REASONS.get(finish_reason or "stop", "end_turn"), "stop_sequence": None}


def _thinking_out(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Thinking blocks first, as Anthropic orders them; reasoning text from another vendor becomes
    a thinking block without a signature (it can only be replayed to that vendor)."""
    blocks = [b for b in message.get("thinking_blocks") or () if isinstance(b, dict) and b.get("type") in THINKING_BLOCKS]
    if blocks:
        return [dict(b) for b in blocks]
    reasoning = message.get("reasoning_content")
    return [{"type": "thinking", "thinking": reasoning, "signature": ""}] if isinstance(reasoning, str) and reasoning else []


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return sse_event(orjson.dumps({"type": kind, **data}), kind)


class AnthropicStreamEncoder:
    """Canonical chunks -> message_start, content_block_start/delta/stop per block, message_delta,
    message_stop. message_delta waits for `end()`: usage may arrive in a trailing chunk."""

    __slots__ = ("model", "started", "ended", "open", "blocks", "tools", "finish_reason", "usage", "stop_sequence",
                 "thinking")

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = self.ended = False
        self.open: int | None = None  # index of the open content block
        self.blocks = 0  # content blocks started so far
        self.tools: dict[int, int] = {}  # canonical tool call index -> content block index
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.stop_sequence: str | None = None
        self.thinking: int | None = None  # index of the open thinking block

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self.started = True
        usage = anthropic_usage(self.usage) if self.usage else {"input_tokens": 0, "output_tokens": 0}
        return _event("message_start", {"message": {
            "id": message_id(chunk.get("id")), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 0},
        }})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        index, self.open = self.open, None
        return _event("content_block_stop", {"index": index})

    def _open(self, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.open = self.blocks
        self.blocks += 1
        return out + _event("content_block_start", {"index": self.open, "content_block": block})

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        out = b""
        fn = call.get("function") or {}
        index = call.get("index", 0)
        block = self.tools.get(index)
        if block is None:
            out += self._open({"type": "tool_use", "id": call.get("id") or f"toolu_{self.blocks}",
                               "name": fn.get("name") or "", "input": {}})
            block = self.tools[index] = self.open  # type: ignore[assignment]
        if fn.get("arguments"):
            delta = {"type": "input_json_delta", "partial_json": fn["arguments"]}
            out += _event("content_block_delta", {"index": block, "delta": delta})
        return out

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if self.ended:
            return b""
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        out = b"" if self.started else self._start(chunk)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                if self.thinking is None or self.open != self.thinking:
                    out += self._open({"type": "thinking", "thinking": "", "signature": ""})
                    self.thinking = self.open
                out += _event("content_block_delta", {"index": self.open,
                                                      "delta": {"type": "thinking_delta", "thinking": reasoning}})
            for block in delta.get("thinking_blocks") or ():
                if isinstance(block, dict) and block.get("signature") and self.thinking is not None \
                        and self.open == self.thinking:
                    out += _event("content_block_delta", {"index": self.open, "delta": {
                        "type": "signature_delta", "signature": block["signature"]}})
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.open is None or self.open in self.tools.values() or self.open == self.thinking:
                    out += self._open({"type": "text", "text": ""})
                out += _event("content_block_delta", {"index": self.open, "delta": {"type": "text_delta", "text": text}})
            for call in delta.get("tool_calls") or ():
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                if isinstance(choice.get("stop_reason"), str):
                    self.stop_sequence = choice["stop_reason"]
                out += self._close()
        return out

    def end(self) -> bytes:
        if self.ended:
            return b""
        out = (b"" if self.started else self._start({})) + self._close()
        self.ended = True
        usage = anthropic_usage(self.usage)
        out += _event("message_delta", {"delta": _stop(self.finish_reason, self.stop_sequence), "usage": usage})
        return out + _event("message_stop", {})

    def error(self, err: GatewayError, request_id: str) -> bytes:
        self.ended = True
        return sse_event(render_error(err, request_id, "anthropic"), "error")


class AnthropicIngress:
    name = "anthropic"
    stream_media_type = "text/event-stream"

    def parse_request(self, body: dict[str, Any], *, model: str | None = None, stream: bool | None = None) -> dict[str, Any]:
        return to_canonical(body)

    def render_response(self, response: dict[str, Any], model: str) -> dict[str, Any]:
        return from_canonical(response, model)

    def stream_encoder(self, model: str, request: dict[str, Any]) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(model)


INGRESS = AnthropicIngress()

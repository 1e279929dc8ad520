"""Gemini's generateContent / streamGenerateContent, as the google-genai SDK speaks it.

The model and the stream flag come from the URL. Google's JSON parser takes both camelCase and
snake_case field names, and the SDK sends both (`inlineData` with `mime_type` inside,
`parameters_json_schema`), so every field is read under either name. Function calls carry no
ids on this API: ids are derived from their position, and a `functionResponse` is matched to the
earliest unanswered call of the same name, so the canonical `tool_call_id`s line up.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import GatewayError, InvalidRequest, render_error
from ..wire.gemini import (FINISH_OUT, GENERATION_FIELDS, GENERATION_HANDLED, REQUEST_FIELDS, SCHEMA_TO_JSON,
                           from_canonical_usage)

_ROLES = {"user": "user", "model": "assistant", "function": "user", None: "user"}
_MODES = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
_FINISH = FINISH_OUT


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


# --- Gemini request -> canonical --------------------------------------------------------------

def json_schema(schema: Any) -> dict[str, Any]:
    """A Gemini `Schema` (OpenAPI subset, upper-case types) as JSON Schema."""
    if not isinstance(schema, dict):
        return {}
    out: dict[str, Any] = {k: v for k, v in schema.items() if k in SCHEMA_TO_JSON}
    kind = schema.get("type")
    if isinstance(kind, str) and kind.upper() not in ("TYPE_UNSPECIFIED", ""):
        out["type"] = kind.lower()
        if schema.get("nullable"):
            out["type"] = [out["type"], "null"]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: json_schema(sub) for name, sub in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = json_schema(schema["items"])
    variants = _get(schema, "anyOf", "any_of")
    if isinstance(variants, list):
        out["anyOf"] = [json_schema(v) for v in variants]
    return out


def _parameters(decl: dict[str, Any]) -> dict[str, Any]:
    raw = _get(decl, "parametersJsonSchema", "parameters_json_schema")
    if isinstance(raw, dict):
        return raw
    params = json_schema(decl.get("parameters"))
    return params if params else {"type": "object", "properties": {}}


def _data_url(blob: dict[str, Any]) -> tuple[str, str]:
    mime = _get(blob, "mimeType", "mime_type") or "application/octet-stream"
    return mime, f"data:{mime};base64,{blob.get('data') or ''}"


def _media_part(part: dict[str, Any]) -> dict[str, Any] | None:
    inline = _get(part, "inlineData", "inline_data")
    if isinstance(inline, dict):
        mime, url = _data_url(inline)
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": url}}
        if mime.startswith("audio/"):
            return {"type": "input_audio", "input_audio": {"data": inline.get("data") or "", "format": mime[6:]}}
        return {"type": "file", "file": {"file_data": url}}
    file = _get(part, "fileData", "file_data")
    if isinstance(file, dict):
        return {"type": "image_url", "image_url": {"url": _get(file, "fileUri", "file_uri") or ""}}
    return None


def _tool_content(response: Any) -> str:
    if isinstance(response, dict) and len(response) == 1 and isinstance(response.get("output"), str):
        return response["output"]
    return orjson.dumps(response if response is not None else {}).decode()


class _Conversation:
    """Builds canonical messages; remembers unanswered calls to match responses to them."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.pending: list[tuple[str, str]] = []  # (id, name) of calls not yet answered

    def model_turn(self, parts: list[Any], c: int) -> None:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for p, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("thought"):
                continue
            call = _get(part, "functionCall", "function_call")
            if isinstance(call, dict):
                cid = call.get("id") or f"call_{c}_{p}"
                name = call.get("name") or ""
                self.pending.append((cid, name))
                arguments = orjson.dumps(call.get("args") or {}).decode()
                calls.append({"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}})
            elif part.get("text"):
                texts.append(part["text"])
        if not texts and not calls:  # only thoughts: nothing a canonical assistant message can hold
            return
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
        if calls:
            message["tool_calls"] = calls
        self.messages.append(message)

    def user_turn(self, parts: list[Any], c: int) -> None:
        content: list[dict[str, Any]] = []
        for p, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("thought"):
                continue
            response = _get(part, "functionResponse", "function_response")
            if isinstance(response, dict):
                self.messages.append({"role": "tool", "tool_call_id": self._answer(response, c, p),
                                      "content": _tool_content(response.get("response"))})
            elif isinstance(part.get("text"), str):
                content.append({"type": "text", "text": part["text"]})
            elif (media := _media_part(part)) is not None:
                content.append(media)
        if len(content) == 1 and content[0]["type"] == "text":
            self.messages.append({"role": "user", "content": content[0]["text"]})
        elif content:
            self.messages.append({"role": "user", "content": content})

    def _answer(self, response: dict[str, Any], c: int, p: int) -> str:
        rid, name = response.get("id"), response.get("name")
        for i, (cid, cname) in enumerate(self.pending):
            if (rid and cid == rid) or (not rid and cname == name):
                del self.pending[i]
                return cid
        return rid or f"call_{c}_{p}"


def _system(value: Any) -> str:
    if isinstance(value, str):
        return value
    parts = value.get("parts") if isinstance(value, dict) else value
    if not isinstance(parts, list):
        return ""
    return "\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _tools(body: dict[str, Any], canonical: dict[str, Any]) -> None:
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(body.get("tools") or ()):
        decls = _get(tool, "functionDeclarations", "function_declarations") if isinstance(tool, dict) else None
        if not isinstance(decls, list):
            raise InvalidRequest("only function declarations are supported as tools", param=f"tools[{i}]")
        for decl in decls:
            fn: dict[str, Any] = {"name": decl.get("name") or "", "parameters": _parameters(decl)}
            if decl.get("description"):
                fn["description"] = decl["description"]
            tools.append({"type": "function", "function": fn})
    config = _get(body, "toolConfig", "tool_config") or {}
    calling = _get(config, "functionCallingConfig", "function_calling_config") or {}
    mode = _MODES.get(str(calling.get("mode") or "").upper())
    allowed = _get(calling, "allowedFunctionNames", "allowed_function_names")
    if mode == "required" and isinstance(allowed, list) and allowed:
        if len(allowed) == 1:
            canonical["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        else:  # "any of these": the same as requiring a call among only these tools
            tools = [t for t in tools if t["function"]["name"] in allowed]
            canonical["tool_choice"] = "required"
    elif mode and tools:
        canonical["tool_choice"] = mode
    if tools:
        canonical["tools"] = tools


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _generation(config: dict[str, Any], canonical: dict[str, Any], extra: dict[str, Any]) -> None:
    known = set()
    for camel, dst in GENERATION_FIELDS.items():
        known.update((camel, _snake(camel)))
        value = _get(config, camel, _snake(camel))
        if value is not None:
            canonical[dst] = value
    known.update(h for name in GENERATION_HANDLED for h in (name, _snake(name)))
    if _get(config, "responseMimeType", "response_mime_type") == "application/json":
        schema = _get(config, "responseJsonSchema", "response_json_schema")
        if not isinstance(schema, dict):
            schema = json_schema(_get(config, "responseSchema", "response_schema")) or None
        canonical["response_format"] = {"type": "json_object"}
        if schema:
            named = {"name": "response", "schema": schema}
            canonical["response_format"] = {"type": "json_schema", "json_schema": named}
    thinking = _get(config, "thinkingConfig", "thinking_config")
    if isinstance(thinking, dict):
        budget = _get(thinking, "thinkingBudget", "thinking_budget")
        level = _get(thinking, "thinkingLevel", "thinking_level")
        if isinstance(budget, int):
            canonical["reasoning_budget"] = budget
        elif isinstance(level, str):
            canonical["reasoning_effort"] = level.lower()
    modalities = _get(config, "responseModalities", "response_modalities")
    if modalities and [str(m).upper() for m in modalities] != ["TEXT"]:
        extra["generationConfig.responseModalities"] = modalities
    for key, value in config.items():
        if key not in known and value is not None:
            extra[f"generationConfig.{key}"] = value


# --- canonical -> Gemini response -------------------------------------------------------------

def _args(arguments: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _function_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name or "", "args": _args(arguments)}
    if call_id:  # the client echoes it back on its functionResponse, which keeps the match exact
        call["id"] = call_id
    return call


usage_metadata = from_canonical_usage


def _event(data: dict[str, Any]) -> bytes:
    # Google's own framing; google-genai splits lines at CR, LF or CRLF and needs "data: ".
    return b"data: " + orjson.dumps(data) + b"\r\n\r\n"


class GeminiStreamEncoder:
    """One GenerateContentResponse per canonical text delta; function calls whole.

    Tool-call argument fragments are collected and sent as complete `functionCall` parts with
    the finish event. The finish event waits for usage (a trailing usage-only chunk may follow
    the finish chunk) and goes out at the latest from `end()`.
    """

    __slots__ = ("calls", "final", "model", "response_id")

    def __init__(self, model: str) -> None:
        self.model = model
        self.response_id = ""
        self.calls: dict[int, dict[str, Any]] = {}
        self.final: dict[str, Any] | None = None

    def _response(self, parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {"candidates": [candidate], "modelVersion": self.model, "responseId": self.response_id}

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        self.response_id = self.response_id or str(chunk.get("id") or "")
        out = b""
        usage = usage_metadata(chunk.get("usage"))
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out += _event(self._response([{"text": delta["content"]}]))
            for call in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                fn = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] = fn.get("name") or slot["name"]
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                parts = [{"functionCall": _function_call(c["id"], c["name"], c["arguments"])}
                         for _, c in sorted(self.calls.items())]
                # an empty text part: the SDK's `.text` of the last event is then "", not None
                self.final = self._response(parts or [{"text": ""}], _FINISH.get(choice["finish_reason"], "OTHER"))
        if self.final is not None and usage:
            self.final["usageMetadata"] = usage
            out += _event(self.final)
            self.final = None
        return out

    def end(self) -> bytes:
        final, self.final = self.final, None
        return _event(final) if final is not None else b""

    def error(self, err: GatewayError, request_id: str) -> bytes:
        return b"data: " + render_error(err, request_id, "gemini") + b"\r\n\r\n"


_SNAKE_FIELDS = frozenset(_snake(f) for f in REQUEST_FIELDS)
# canonical key -> the Gemini field it came from (named in a refusal)
_NAMES = {**{dst: f"generationConfig.{src}" for src, dst in GENERATION_FIELDS.items()},
          "response_format": "generationConfig.responseMimeType",
          "reasoning_budget": "generationConfig.thinkingConfig", "reasoning_effort": "generationConfig.thinkingConfig",
          "tool_choice": "toolConfig"}


class GeminiIngress:
    name = "gemini"
    stream_media_type = "text/event-stream"

    def parse_request(
        self, body: dict[str, Any], *, model: str | None = None, stream: bool | None = None
    ) -> dict[str, Any]:
        if not isinstance(model, str) or not model.removeprefix("models/"):
            raise InvalidRequest("the model is part of the URL: /v1beta/models/{model}:generateContent", param="model")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise InvalidRequest("'contents' is required and must be a non-empty array", param="contents")
        conversation = _Conversation()
        system = _system(_get(body, "systemInstruction", "system_instruction"))
        if system:
            conversation.messages.append({"role": "system", "content": system})
        for c, content in enumerate(contents):
            if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
                raise InvalidRequest("each content needs a 'parts' array", param=f"contents[{c}]")
            role = _ROLES.get(content.get("role"))
            if role is None:
                raise InvalidRequest("a content's role must be 'user' or 'model'", param=f"contents[{c}].role")
            if role == "assistant":
                conversation.model_turn(content["parts"], c)
            else:
                conversation.user_turn(content["parts"], c)
        canonical: dict[str, Any] = {"model": model.removeprefix("models/"), "messages": conversation.messages}
        _tools(body, canonical)
        extra: dict[str, Any] = {}
        config = _get(body, "generationConfig", "generation_config")
        if isinstance(config, dict):
            _generation(config, canonical, extra)
        for key, value in body.items():  # safetySettings, cachedContent, labels, ...: Gemini's own
            if key not in REQUEST_FIELDS and key not in _SNAKE_FIELDS and value is not None:
                extra[key] = value
        canonical["x_vendor"] = {"gemini": extra} if extra else {}
        names = {k: v for k, v in _NAMES.items() if k in canonical}
        if names:
            canonical["x_names"] = names
        if stream:
            canonical["stream"] = True
            canonical["stream_options"] = {"include_usage": True}
        return canonical

    def render_response(self, response: dict[str, Any], model: str) -> dict[str, Any]:
        choices = response.get("choices") or [{}]
        candidates = []
        for i, choice in enumerate(choices):
            message = choice.get("message") or {}
            parts: list[dict[str, Any]] = []
            if message.get("reasoning_content"):
                parts.append({"text": message["reasoning_content"], "thought": True})
            if message.get("content"):
                content = message["content"]
                text = content if isinstance(content, str) else "".join(
                    p.get("text", "") for p in content if isinstance(p, dict))
                parts.append({"text": text})
            for call in message.get("tool_calls") or ():
                fn = call.get("function") or {}
                parts.append({"functionCall": _function_call(call.get("id"), fn.get("name"), fn.get("arguments"))})
            candidates.append({"content": {"role": "model", "parts": parts or [{"text": ""}]},
                               "finishReason": _FINISH.get(choice.get("finish_reason") or "stop", "OTHER"),
                               "index": choice.get("index", i)})
        out: dict[str, Any] = {"candidates": candidates}
        usage = usage_metadata(response.get("usage"))
        if usage:
            out["usageMetadata"] = usage
        out["modelVersion"] = model
        out["responseId"] = response.get("id") or ""
        return out

    def stream_encoder(self, model: str, request: dict[str, Any]) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(model)


INGRESS = GeminiIngress()

"""Google Gemini (Developer API): generateContent / streamGenerateContent?alt=sse.

Canonical (OpenAI chat) requests become `contents` of `user`/`model` turns made of parts:
system messages fold into `systemInstruction`; assistant tool calls become `functionCall`
parts with parsed args; tool results become `functionResponse` parts named after the call
they answer (Gemini matches results by name, so the name is looked up from the earlier call
id). JSON Schemas are cut down to the OpenAPI subset Gemini's `Schema` accepts. Answers come
back as canonical `chat.completion` dicts and chunks; Gemini sends no function-call ids, so
ids are generated here.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any
from urllib.parse import quote

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, InvalidRequest, UpstreamBadResponse, upstream_status_error
from ..streaming.sse import SSEParser
from ..wire.canonical import reasoning_budget
from ..wire.gemini import FINISH_REASONS, SCHEMA_FORMATS, SCHEMA_FROM_JSON, to_canonical_usage
from .base import UpstreamRequest

_JSON = {"content-type": "application/json", "accept": "application/json"}
# identity: a stream is relayed as it arrives, never through a decompressor's buffer.
_SSE = {"content-type": "application/json", "accept": "text/event-stream", "accept-encoding": "identity"}
_VERSIONED = ("/v1beta", "/v1", "/v1alpha")

# Gemini 3 rejects replayed functionCall parts without the thought signature it issued; the
# canonical format cannot carry one, so such turns get Google's documented bypass value.
_SIGNATURE_BYPASS = "skip_thought_signature_validator"
_GEMINI_MAJOR = re.compile(r"gemini-(\d+)")

_MAX_REF_DEPTH = 8
_MIME_BY_EXT = {"png": "image/png", "gif": "image/gif", "webp": "image/webp", "pdf": "application/pdf"}


def new_call_id() -> str:
    return "call_" + os.urandom(12).hex()


def _now() -> int:
    """The one clock reading: `created` of the canonical answer (Gemini sends none)."""
    return int(time.time())


# --- JSON Schema -> Gemini Schema -------------------------------------------------------------

def gemini_schema(schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON Schema reduced to Gemini's subset: upper-case types, nullable, inlined $refs."""
    if not isinstance(schema, dict):
        return {}
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if depth >= _MAX_REF_DEPTH or not ref.startswith("#/"):
            return {"type": "OBJECT"}
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key) if isinstance(target, dict) else None
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        return gemini_schema({**(target if isinstance(target, dict) else {}), **extra}, root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in schema["allOf"]:
            sub = gemini_schema(sub, root, depth + 1)
            merged["properties"] = {**merged.get("properties", {}), **sub.pop("properties", {})}
            merged["required"] = [*merged.get("required", []), *sub.pop("required", [])]
            merged.update({k: v for k, v in sub.items() if k not in merged})
        return gemini_schema(merged, root, depth + 1)

    out: dict[str, Any] = {k: v for k, v in schema.items() if k in SCHEMA_FROM_JSON}
    types = schema.get("type")
    type_list = types if isinstance(types, list) else [types] if isinstance(types, str) else []
    if "null" in type_list:
        out["nullable"] = True
        type_list = [t for t in type_list if t != "null"]
    variants = schema.get("anyOf") or schema.get("oneOf")
    if len(type_list) > 1 and not variants:
        variants = [{"type": t} for t in type_list]
        type_list = []
    if type_list:
        out["type"] = type_list[0].upper()
    if isinstance(variants, list):
        if any(isinstance(v, dict) and v.get("type") == "null" for v in variants):
            out["nullable"] = True
        subs = [gemini_schema(v, root, depth + 1) for v in variants
                if not (isinstance(v, dict) and v.get("type") == "null")]
        if len(subs) == 1:
            out.update({k: v for k, v in subs[0].items() if k not in out})
        elif subs:
            out["anyOf"] = subs
    enum = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = enum
        out.setdefault("type", "STRING")
    if schema.get("format") in SCHEMA_FORMATS:
        out["format"] = schema["format"]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: gemini_schema(sub, root, depth) for name, sub in schema["properties"].items()}
        out.setdefault("type", "OBJECT")
    if isinstance(schema.get("items"), dict):
        out["items"] = gemini_schema(schema["items"], root, depth)
        out.setdefault("type", "ARRAY")
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        out["required"] = [r for r in dict.fromkeys(out["required"]) if r in out["properties"]]
    return out


# --- canonical request -> Gemini request ------------------------------------------------------

def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") in ("text", "input_text"))
    return str(content)


def _data_url_part(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        mime, _, encoding = head.partition(";")
        if not sep or encoding != "base64":
            raise InvalidRequest("only base64 data URLs are supported", param=param)
        return {"inlineData": {"mimeType": mime or "application/octet-stream", "data": data}}
    ext = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return {"fileData": {"fileUri": url, "mimeType": _MIME_BY_EXT.get(ext, "image/jpeg")}}


def _user_parts(content: Any, param: str) -> list[dict[str, Any]]:
    """Gemini refuses empty text parts ("empty text parameter"), so they are left out."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        return []
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text"):
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequest("image_url.url must be a string", param=f"{param}[{i}]")
            parts.append(_data_url_part(url, f"{param}[{i}]"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = f"audio/{audio.get('format', 'wav')}"
            parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data", "")}})
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data")
            if not isinstance(data, str):
                raise InvalidRequest("only inline file_data is supported for Gemini", param=f"{param}[{i}]")
            parts.append(_data_url_part(data, f"{param}[{i}]"))
    return parts


def _tool_response(content: Any) -> dict[str, Any]:
    """Gemini wants an object: JSON objects pass as they are, anything else under "output"."""
    text = _text_of(content)
    if text.startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return {"output": text}


def _contents(messages: list[Any], model: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    sign = bool((m := _GEMINI_MAJOR.search(model)) and int(m.group(1)) >= 3)

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:  # Gemini wants alternating turns
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest("each message must be an object", param=f"messages[{i}]")
        role, content = msg.get("role"), msg.get("content")
        if role in ("system", "developer"):
            if isinstance(content, list):  # one part per block: blocks are not glued together
                system.extend({"text": p["text"]} for p in content
                              if isinstance(p, dict) and p.get("type") in ("text", "input_text") and p.get("text"))
            elif text := _text_of(content):
                system.append({"text": text})
        elif role == "user":
            add("user", _user_parts(content, f"messages[{i}].content"))
        elif role == "assistant":
            parts: list[dict[str, Any]] = []
            if text := _text_of(content):
                parts.append({"text": text})
            for j, call in enumerate(msg.get("tool_calls") or ()):
                fn = call.get("function") or {}
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    raise InvalidRequest("tool call arguments are not JSON",
                                         param=f"messages[{i}].tool_calls[{j}]") from None
                names[call.get("id", "")] = fn.get("name", "")
                args = args if isinstance(args, dict) else {}
                part: dict[str, Any] = {"functionCall": {"name": fn.get("name", ""), "args": args}}
                if sign and j == 0:
                    part["thoughtSignature"] = _SIGNATURE_BYPASS
                parts.append(part)
            add("model", parts)
        elif role == "tool":
            name = names.get(msg.get("tool_call_id", "")) or msg.get("name")
            if not name:
                raise InvalidRequest("tool message answers no earlier tool call", param=f"messages[{i}].tool_call_id")
            media = [p for p in content if isinstance(p, dict) and p.get("type") != "text"] \
                if isinstance(content, list) else []
            response = _tool_response(content)
            if msg.get("is_error"):  # Gemini's convention for a failed call: the error under "error"
                response = {"error": response.get("output", response)}
            # images a tool returned follow its functionResponse in the same user turn
            add("user", [{"functionResponse": {"name": name, "response": response}},
                         *_user_parts(media, f"messages[{i}].content")])
        else:
            raise InvalidRequest(f"unsupported message role {role!r}", param=f"messages[{i}].role")
    if not contents:
        raise InvalidRequest("Gemini needs at least one user or assistant message", param="messages")
    return system, contents


def _tools(request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    declarations = []
    for tool in request.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            continue
        decl: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        params = gemini_schema(fn.get("parameters"))
        if params.get("properties"):  # Gemini rejects an OBJECT without properties
            decl["parameters"] = params
        declarations.append(decl)
    choice = request.get("tool_choice")
    config: dict[str, Any] | None = None
    if choice == "none":
        config = {"mode": "NONE"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif choice == "auto":
        config = {"mode": "AUTO"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        config = {"mode": "ANY", "allowedFunctionNames": [(choice.get("function") or {}).get("name", "")]}
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        keep = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or () if isinstance(t, dict)}
        declarations = [d for d in declarations if d["name"] in keep]
        config = {"mode": "ANY" if allowed.get("mode") == "required" else "AUTO"}
    tools = [{"functionDeclarations": declarations}] if declarations else []
    return tools, ({"functionCallingConfig": config} if config and declarations else None)


def _generation_config(request: dict[str, Any]) -> dict[str, Any]:
    n = request.get("n")
    config: dict[str, Any] = {"candidateCount": n if isinstance(n, int) and n > 1 else 1}
    if isinstance(request.get("top_k"), int):
        config["topK"] = request["top_k"]
    budget = reasoning_budget(request)
    if budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget}
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
                     ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if request.get(src) is not None:
            config[dst] = request[src]
    stop = request.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = gemini_schema(schema)
    return config


def gemini_request(request: dict[str, Any], model: str) -> dict[str, Any]:
    """The generateContent body for a canonical chat request."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array", param="messages")
    system, contents = _contents(messages, model)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools, tool_config = _tools(request)
    if tools:
        body["tools"] = tools
    if tool_config:
        body["toolConfig"] = tool_config
    body["generationConfig"] = _generation_config(request)
    for key, value in ((request.get("x_vendor") or {}).get("gemini") or {}).items():  # the Gemini client's own
        section, _, name = key.partition(".")
        if name and section == "generationConfig":
            body["generationConfig"][name] = value
        else:
            body[key] = value
    return body


# --- Gemini answers -> canonical --------------------------------------------------------------

canonical_usage = to_canonical_usage


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    args = call.get("args")
    return {
        "id": call.get("id") or new_call_id(),
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": orjson.dumps({} if args is None else args).decode()},
    }


def _thoughts(candidate: dict[str, Any]) -> str:
    return "".join(p["text"] for p in (candidate.get("content") or {}).get("parts") or ()
                   if isinstance(p, dict) and p.get("thought") and isinstance(p.get("text"), str))


def _split_parts(candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Visible text and function calls of a candidate; thought summaries are not answer text."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            calls.append(_tool_call(part["functionCall"]))
    return "".join(texts), calls


def _finish_reason(raw: Any, has_calls: bool) -> str:
    reason = raw if raw == "content_filter" else FINISH_REASONS.get(raw, "stop") if isinstance(raw, str) else "stop"
    return "tool_calls" if has_calls and reason == "stop" else reason


def _load(raw: bytes | str, target: str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamBadResponse(f"upstream {target} returned a response that is not an object")
    if isinstance(data.get("error"), dict):
        raise _error_from_body(data, None, None, target)
    return data


def _first(candidates: Any) -> dict[str, Any]:
    """Candidate 0 (the request asks for one), or {} when there is none."""
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return {}


def _blocked(data: dict[str, Any]) -> bool:
    return not data.get("candidates") and bool((data.get("promptFeedback") or {}).get("blockReason"))


def _error_from_body(data: Any, status: int | None, retry_after: str | None, target: str) -> GatewayError:
    err = data.get("error") if isinstance(data, dict) else None
    detail = None
    if isinstance(err, dict):
        detail = err.get("message") if isinstance(err.get("message"), str) else None
        code = err.get("code")
        if status is None:
            status = code if isinstance(code, int) and code >= 400 else 502
        if err.get("status") == "RESOURCE_EXHAUSTED":
            status = 429
        for info in err.get("details") or ():
            if not isinstance(info, dict):
                continue
            if info.get("reason") == "API_KEY_INVALID":  # Google answers a bad key with a 400
                status = 401
            delay = info.get("retryDelay")
            if retry_after is None and isinstance(delay, str) and delay.endswith("s"):
                retry_after = str(max(1, round(float(delay[:-1] or 0))))
    return upstream_status_error(status or 502, detail[:500] if detail else None, retry_after, target)


def _choice(candidate: dict[str, Any], i: int) -> dict[str, Any]:
    text, calls = _split_parts(candidate)
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    if thoughts := _thoughts(candidate):
        message["reasoning_content"] = thoughts
    index = candidate.get("index")
    return {"index": index if isinstance(index, int) else i, "message": message,
            "finish_reason": _finish_reason(candidate.get("finishReason"), bool(calls))}


def model_url(base_url: str, model: str, method: str) -> str:
    """`{base}/v1beta/models/{model}:{method}` (a base URL with its own version keeps it)."""
    base = base_url.rstrip("/")
    if not base.endswith(_VERSIONED):
        base += "/v1beta"
    return f"{base}/models/{quote(model.removeprefix('models/'), safe='-._~@')}:{method}"


class GeminiAdapter:
    def chat_request(
        self, provider: ProviderConfig, api_key: str | None, model: str, request: dict[str, Any], stream: bool
    ) -> UpstreamRequest:
        headers = dict(_SSE if stream else _JSON)
        if api_key:
            headers["x-goog-api-key"] = api_key
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = orjson.dumps(gemini_request(request, model))
        return UpstreamRequest("POST", model_url(provider.base_url, model, method), headers, body)

    def chat_response(self, body: bytes, target: str, model: str) -> dict[str, Any]:
        data = _load(body, target)
        rid = "chatcmpl-" + (data.get("responseId") or os.urandom(12).hex())
        completion: dict[str, Any] = {
            "id": rid, "object": "chat.completion", "created": _now(), "model": data.get("modelVersion") or model,
        }
        if _blocked(data):
            message: dict[str, Any] = {"role": "assistant", "content": None}
            finish = "content_filter"
        elif _first(data.get("candidates")):
            completion["choices"] = [_choice(c, i) for i, c in enumerate(data["candidates"]) if isinstance(c, dict)]
        else:
            raise UpstreamBadResponse(f"upstream {target} returned a response without candidates")
        if "choices" not in completion:
            completion["choices"] = [{"index": 0, "message": message, "finish_reason": finish}]
        usage = canonical_usage(data.get("usageMetadata"))
        if usage:
            completion["usage"] = usage
        return completion

    def stream_translator(self, target: str, model: str) -> GeminiStreamTranslator:
        return GeminiStreamTranslator(target, model)

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        return _error_from_body(data, status, headers.get("retry-after"), target)


class GeminiStreamTranslator:
    """Gemini SSE (one GenerateContentResponse per event) -> canonical chunks.

    A role chunk first, then text and whole-function-call deltas, then a final chunk with the
    finish reason and the last usageMetadata seen. A usage update after the finish event goes
    out as a usage-only chunk. A stream that ends before any finishReason is truncated.
    """

    __slots__ = ("calls", "created", "finished", "id", "model", "parser", "started", "target", "usage")

    def __init__(self, target: str, model: str) -> None:
        self.target = target
        self.model = model
        self.parser = SSEParser()
        self.id = ""
        self.created = 0
        self.started = False
        self.finished = False
        self.calls = 0
        self.usage: dict[str, Any] | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _event(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self.started:
            self.started = True
            self.id = "chatcmpl-" + (data.get("responseId") or os.urandom(12).hex())
            self.created = _now()
            self.model = data.get("modelVersion") or self.model
            out.append(self._chunk({"role": "assistant", "content": ""}))
        usage = canonical_usage(data.get("usageMetadata"))
        if self.finished:  # a late usage update: a usage-only chunk
            if usage and usage != self.usage:
                self.usage = usage
                out.append({**self._chunk({}), "choices": [], "usage": usage})
            return out
        self.usage = usage or self.usage
        candidate = _first(data.get("candidates"))
        text, calls = _split_parts(candidate)
        if thoughts := _thoughts(candidate):
            out.append(self._chunk({"reasoning_content": thoughts}))
        if text:
            out.append(self._chunk({"content": text}))
        for call in calls:
            out.append(self._chunk({"tool_calls": [{"index": self.calls, **call}]}))
            self.calls += 1
        reason = "content_filter" if _blocked(data) else candidate.get("finishReason")
        if reason:
            self.finished = True
            out.append(self._chunk({}, _finish_reason(reason, self.calls > 0)))
            if self.usage:
                out[-1]["usage"] = self.usage
        return out

    def _events(self, events) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            out.extend(self._event(_load(event.data, self.target)))
        return out

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._events(self.parser.feed(data))

    def finish(self) -> list[dict[str, Any]]:
        out = self._events(self.parser.flush())
        if not self.finished:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before a finishReason")
        return out


error_from_body = _error_from_body  # the one mapping of Google's error body (passthrough/ uses it too)

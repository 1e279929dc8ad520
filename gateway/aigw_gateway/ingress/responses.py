"""OpenAI's Responses API as a client-facing format, translated to and from canonical chat.

Used for every target that does not speak the Responses API itself (Anthropic, Gemini, Ollama,
Bedrock, OpenAI-compatible servers); OpenAI and Azure OpenAI get the body as it came
(providers/openai_responses.py). What translates:

- `instructions` -> a leading system message; a string `input` -> one user message;
- message items (`user`, `assistant`, `system`, `developer` -> system) with `input_text`,
  `output_text`, `refusal`, `input_image` and `input_file` (inline `file_data`) parts;
- `function_call` items -> assistant `tool_calls` (consecutive calls join one assistant turn),
  `function_call_output` items -> `tool` messages;
- function `tools`, `tool_choice`, `parallel_tool_calls`, `temperature`, `top_p`,
  `max_output_tokens`, `text.format` (json_schema, json_object), `text.verbosity` -> `verbosity`,
  `reasoning.effort` -> `reasoning_effort`, `user`/`safety_identifier` -> `user` (what a target
  does with chat's `verbosity` and `reasoning_effort` is its adapter's decision, as on chat).

Accepted with nothing to translate: `store` (the gateway keeps the conversation unless false),
`metadata` (echoed back), `client_metadata` (Codex's session ids, for the provider's logs), `include`, `prompt_cache_key`, `truncation`, `stream_options`,
`reasoning.summary` (there is no summary to return), `reasoning` items in history (a provider's
private state that another model cannot read). Anything else a translated target cannot honour is
a 400 naming the field, never dropped silently.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import InvalidRequest

# Top-level fields that translate, or that carry nothing a translated target needs.
_KNOWN = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p",
    "max_output_tokens", "text", "reasoning", "user", "safety_identifier", "stream", "previous_response_id",
    "store", "metadata", "include", "prompt_cache_key", "truncation", "stream_options", "client_metadata",
})
_NEUTRAL = {"background": (None, False), "service_tier": (None, "auto", "default"), "top_logprobs": (None, 0),
            "conversation": (None,), "prompt": (None,), "max_tool_calls": (None,)}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "refusal"})
_FINISH_STATUS = {"length": ("incomplete", "max_output_tokens"), "content_filter": ("incomplete", "content_filter")}


def _unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' ({what}) cannot be translated for this model's provider", param=param)


def _content(content: Any, role: str, param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest("expected a string or an array of content parts", param=param)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            text = part.get("text") if kind != "refusal" else part.get("refusal")
            if not isinstance(text, str):
                raise InvalidRequest("a text part needs a string 'text'", param=where)
            parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise _unsupported(where, "images by file_id")
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            if not isinstance(part.get("file_data"), str):
                raise _unsupported(where, "files by file_id or file_url")
            parts.append({"type": "file", "file": {"file_data": part["file_data"],
                                                   "filename": part.get("filename") or "document"}})
        else:
            raise _unsupported(where, f"content part type {kind!r}")
    if role != "user" and all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)  # system and assistant turns take plain text everywhere
    return parts


def _tool_output(output: Any, param: str) -> Any:
    if isinstance(output, str):
        return output
    return _content(output, "tool", param)


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequest(f"unknown role {role!r}", param=param + ".role")
    canonical_role = "system" if role == "developer" else role
    return {"role": canonical_role, "content": _content(item.get("content"), canonical_role, param + ".content")}


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`input` as a list of items (a string is one user message)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    if isinstance(raw, list):
        return raw
    if raw is None:
        return []
    raise InvalidRequest("'input' must be a string or an array of items", param="input")


def messages_of(items: list[dict[str, Any]], param: str = "input") -> list[dict[str, Any]]:
    """Canonical chat messages for Responses items (history first, then the new input)."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest("each input item must be an object", param=where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            name, args, call_id = item.get("name"), item.get("arguments"), item.get("call_id")
            if not isinstance(name, str) or not isinstance(call_id, str):
                raise InvalidRequest("a function_call item needs 'name' and 'call_id'", param=where)
            call = {"id": call_id, "type": "function",
                    "function": {"name": name, "arguments": args if isinstance(args, str) else "{}"}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and not isinstance(last.get("content"), list):
                last.setdefault("tool_calls", []).append(call)  # one assistant turn: its text and calls
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest("a function_call_output item needs 'call_id'", param=where)
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": _tool_output(item.get("output"), where + ".output")})
        elif kind == "reasoning":
            continue  # a provider's private reasoning state: nothing another model can read
        else:
            raise _unsupported(where, f"item type {kind!r}")
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _unsupported(f"tools[{i}]", f"tool type {kind!r}; only function tools translate")
        if not isinstance(tool.get("name"), str):
            raise InvalidRequest("a function tool needs a 'name'", param=f"tools[{i}].name")
        function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _unsupported("tool_choice", "only auto, none, required or one function translate")


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        raise InvalidRequest("'text' must be an object", param="text")
    for key in text:
        if key not in ("format", "verbosity"):
            raise _unsupported(f"text.{key}", "unknown setting")
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise _unsupported("text.format", "unknown format")


def to_chat(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The canonical chat request for a Responses request; `history` are the stored items of
    `previous_response_id` (its input and output). InvalidRequest names what cannot translate."""
    for key, value in body.items():
        if key in _KNOWN:
            continue
        if key in _NEUTRAL and value in _NEUTRAL[key]:
            continue
        raise _unsupported(key, "not supported on a translated target")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise _unsupported("instructions", "only a string translates")
    if history:
        messages.extend(messages_of(history, "previous_response_id"))
    messages.extend(messages_of(input_items(body)))
    if not messages:
        raise InvalidRequest("'input' is required", param="input")
    request: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("stream") is True:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    if body.get("tools"):
        request["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        request["tool_choice"] = _tool_choice(body["tool_choice"])
    for src, dst in (("parallel_tool_calls", "parallel_tool_calls"), ("temperature", "temperature"),
                     ("top_p", "top_p"), ("max_output_tokens", "max_tokens")):
        if body.get(src) is not None:
            request[dst] = body[src]
    if body.get("text") is not None and (fmt := _response_format(body["text"])) is not None:
        request["response_format"] = fmt
    if isinstance(body.get("text"), dict) and body["text"].get("verbosity") is not None:
        request["verbosity"] = body["text"]["verbosity"]  # chat's own name; the target adapter decides
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        request["reasoning_effort"] = reasoning["effort"]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str):
        request["user"] = user
    return request


# --- canonical -> Responses --------------------------------------------------------------------

def usage_of(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Responses usage from canonical usage (cached and reasoning token counts included)."""
    if not usage:
        return None
    inp, out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": int(cached)},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": int(reasoning)},
            "total_tokens": int(usage.get("total_tokens") or inp + out)}


def canonical_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Canonical usage from Responses usage (what limits and cost settle from)."""
    if not isinstance(usage, dict):
        return None
    inp, out = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    canonical: dict[str, Any] = {"prompt_tokens": inp, "completion_tokens": out,
                                 "total_tokens": int(usage.get("total_tokens") or inp + out)}
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if cached:
        canonical["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning:
        canonical["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return canonical


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def function_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def envelope(response_id: str, model: str, body: dict[str, Any], *, status: str, output: list[dict[str, Any]],
             usage: dict[str, Any] | None, created_at: int | None = None,
             incomplete: str | None = None) -> dict[str, Any]:
    """A `response` object echoing the request's settings, as OpenAI returns it."""
    return {
        "id": response_id, "object": "response", "created_at": created_at or int(time.time()), "status": status,
        "background": False, "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": model, "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [], "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"), "usage": usage, "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def from_chat(response: dict[str, Any], model: str, response_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The `response` object for a canonical `chat.completion`."""
    choices = response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    if content:
        output.append(message_item(f"msg_{response_id[5:]}", content))
    elif isinstance(message.get("refusal"), str) and message["refusal"]:
        output.append({"type": "message", "id": f"msg_{response_id[5:]}", "status": "completed", "role": "assistant",
                       "content": [{"type": "refusal", "refusal": message["refusal"]}]})
    for i, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        output.append(function_item(f"fc_{response_id[5:]}_{i}", call.get("id") or f"call_{i}",
                                    function.get("name") or "", function.get("arguments") or "{}"))
    status, reason = _FINISH_STATUS.get(choice.get("finish_reason") or "", ("completed", None))
    return envelope(response_id, model, body, status=status, output=output, usage=usage_of(response.get("usage")),
                    created_at=response.get("created") if isinstance(response.get("created"), int) else None,
                    incomplete=reason)


def finish_status(finish_reason: str | None) -> tuple[str, str | None]:
    return _FINISH_STATUS.get(finish_reason or "", ("completed", None))

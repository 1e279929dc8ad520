"""Guardrails on a native Responses exchange, through the canonical guardrail code.

The guardrails read canonical chat requests, completions and chunks (guardrails/canonical.py).
A Responses body is shown to them as a canonical *view*: one message per text (instructions as
system, message items by role, `function_call` arguments as an assistant tool call,
`function_call_output` as a tool message), and what they rewrite is written back at the same
place in a copy of the body. Answers the same way: one choice per output text or arguments. A
stream's text and argument deltas go through the guard's chunk filter with the output index as
the choice index, so a value split across events is still masked (or restored), and the final
events carry the filtered full texts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..ingress.responses import input_items

Setter = Callable[[dict[str, Any], Any], None]


def _text_parts(content: Any) -> list[int]:
    return [j for j, p in enumerate(content) if isinstance(p, dict) and isinstance(p.get("text"), str)]


def request_view(body: dict[str, Any]) -> tuple[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]:
    """(canonical view, apply): `apply(masked_view)` is a copy of `body` with the view's texts."""
    messages: list[dict[str, Any]] = []
    setters: list[Setter] = []
    string_input = isinstance(body.get("input"), str)
    items = input_items(body)

    def add(message: dict[str, Any], setter: Setter) -> None:
        messages.append(message)
        setters.append(setter)

    if isinstance(body.get("instructions"), str):
        add({"role": "system", "content": body["instructions"]}, lambda out, m: out.__setitem__("instructions", m["content"]))
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = {"developer": "system"}.get(item.get("role"), item.get("role") or "user")
            content = item.get("content")
            if isinstance(content, str):
                add({"role": role, "content": content}, lambda out, m, i=i: out["input"][i].__setitem__("content", m["content"]))
            elif isinstance(content, list):
                for j in _text_parts(content):
                    add({"role": role, "content": content[j]["text"]},
                        lambda out, m, i=i, j=j: out["input"][i]["content"][j].__setitem__("text", m["content"]))
        elif kind == "function_call" and isinstance(item.get("arguments"), str):
            call = {"id": str(item.get("call_id")), "type": "function",
                    "function": {"name": str(item.get("name")), "arguments": item["arguments"]}}
            add({"role": "assistant", "content": None, "tool_calls": [call]},
                lambda out, m, i=i: out["input"][i].__setitem__("arguments", m["tool_calls"][0]["function"]["arguments"]))
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, str):
                add({"role": "tool", "tool_call_id": str(item.get("call_id")), "content": output},
                    lambda out, m, i=i: out["input"][i].__setitem__("output", m["content"]))
            elif isinstance(output, list):
                for j in _text_parts(output):
                    add({"role": "tool", "tool_call_id": str(item.get("call_id")), "content": output[j]["text"]},
                        lambda out, m, i=i, j=j: out["input"][i]["output"][j].__setitem__("text", m["content"]))
    view: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if isinstance(body.get("user"), str):
        view["user"] = body["user"]

    def apply(masked: dict[str, Any]) -> dict[str, Any]:
        if masked is view:
            return body
        out = {**body, "input": copy.deepcopy(items)}
        for setter, message in zip(setters, masked["messages"]):
            setter(out, message)
        if string_input:  # the client's own shape back
            out["input"] = out["input"][0]["content"][0]["text"]
        if "user" in masked:
            out["user"] = masked["user"]
        return out

    return view, apply


def response_view(response: dict[str, Any]) -> tuple[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]:
    """(canonical completion, apply) for a native response object's output texts."""
    output = response.get("output") or []
    choices: list[dict[str, Any]] = []
    places: list[tuple[int, int | None]] = []
    for i, item in enumerate(output):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message" and isinstance(item.get("content"), list):
            for j in _text_parts(item["content"]):
                choices.append({"index": len(choices), "message": {"role": "assistant", "content": item["content"][j]["text"]}})
                places.append((i, j))
        elif item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
            call = {"id": str(item.get("call_id")), "type": "function",
                    "function": {"name": str(item.get("name")), "arguments": item["arguments"]}}
            choices.append({"index": len(choices), "message": {"role": "assistant", "content": None, "tool_calls": [call]}})
            places.append((i, None))
    completion = {"object": "chat.completion", "choices": choices}

    def apply(filtered: dict[str, Any]) -> dict[str, Any]:
        if filtered is completion:
            return response
        out = {**response, "output": copy.deepcopy(output)}
        for (i, j), choice in zip(places, filtered["choices"]):
            message = choice["message"]
            if j is None:
                out["output"][i]["arguments"] = message["tool_calls"][0]["function"]["arguments"]
            else:
                out["output"][i]["content"][j]["text"] = message["content"]
        return out

    return completion, apply


class EventFilter:
    """The guard's chunk filter over native stream events: deltas in, filtered deltas out; the
    done events and the final response carry the filtered full texts."""

    def __init__(self, chunks) -> None:
        self.chunks = chunks  # guardrails.stream.ChunkFilter
        self.texts: dict[int, str] = {}
        self.events: dict[int, dict[str, Any]] = {}  # the last delta event of each output index

    def _feed(self, index: int, delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        chunk = {"id": "native", "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
        return self.chunks.feed(chunk)

    def _deltas(self, safe: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for chunk in safe:
            for choice in chunk.get("choices") or ():
                index, delta = choice.get("index", 0), choice.get("delta") or {}
                template = self.events.get(index)
                if template is None:
                    continue
                text = delta.get("content")
                for call in delta.get("tool_calls") or ():
                    text = (text or "") + ((call.get("function") or {}).get("arguments") or "")
                if text:
                    self.texts[index] = self.texts.get(index, "") + text
                    out.append({**template, "delta": text})
        return out

    def _full(self, item: dict[str, Any], index: int) -> dict[str, Any]:
        if index not in self.texts:
            return item
        if item.get("type") == "function_call":
            return {**item, "arguments": self.texts[index]}
        if item.get("type") == "message" and item.get("content"):
            content = [dict(p) for p in item["content"]]
            content[0]["text"] = self.texts[index]
            return {**item, "content": content}
        return item

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        index = event.get("output_index", 0)
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
            self.events[index] = {k: v for k, v in event.items() if k != "sequence_number"}
            self.texts.setdefault(index, "")
            piece = event.get("delta") or ""
            delta = {"content": piece} if kind == "response.output_text.delta" else \
                {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            return self._deltas(self._feed(index, delta))
        if kind in ("response.output_text.done", "response.function_call_arguments.done"):
            out = self._deltas(self._feed(index, {}, "stop")) if index in self.events else []
            key = "text" if kind == "response.output_text.done" else "arguments"
            return [*out, {**event, key: self.texts.get(index, event.get(key))}]
        if kind == "response.content_part.done" and index in self.texts:
            return [{**event, "part": {**(event.get("part") or {}), "text": self.texts[index]}}]
        if kind == "response.output_item.done" and isinstance(event.get("item"), dict):
            return [{**event, "item": self._full(event["item"], index)}]
        if kind in ("response.completed", "response.incomplete") and isinstance(event.get("response"), dict):
            response = event["response"]
            output = [self._full(item, i) if isinstance(item, dict) else item
                      for i, item in enumerate(response.get("output") or ())]
            return [{**event, "response": {**response, "output": output}}]
        return [event]

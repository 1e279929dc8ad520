"""The Responses API's SSE event sequence, from canonical chunks or from a native upstream.

Canonical chunks (a translated target) become OpenAI's sequence: `response.created`,
`response.in_progress`, then per output item `response.output_item.added`, for text
`response.content_part.added` / `response.output_text.delta`… / `response.output_text.done` /
`response.content_part.done`, for a function call `response.function_call_arguments.delta`… /
`.done`, then `response.output_item.done`, and finally `response.completed` (or
`response.incomplete`) carrying the whole response with usage. Every event has `type` and a
`sequence_number`.

A chunk with an `_event` key comes from a native OpenAI/Azure stream (see
providers/openai_responses.py): the event passes as it came, with the response id and model
name of the client's view put in (and, under an output guardrail, its texts filtered by
responses/guard.EventFilter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..errors import GatewayError
from .responses import envelope, finish_status, function_item, message_item, usage_of


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Call:
    __slots__ = ("item_id", "index", "call_id", "name", "arguments")

    def __init__(self, item_id: str, index: int, call_id: str, name: str) -> None:
        self.item_id, self.index, self.call_id, self.name, self.arguments = item_id, index, call_id, name, ""


class ResponsesStreamEncoder:
    """One streamed response. After `end()`, `response` is the final response object."""

    def __init__(self, model: str, response_id: str, body: dict[str, Any],
                 native_view: Callable[[dict[str, Any]], dict[str, Any]] | None = None, native_filter=None) -> None:
        self.model, self.id, self.body = model, response_id, body
        self.native_view = native_view
        self.native_filter = native_filter  # responses/guard.EventFilter when an output guardrail applies
        self.seq = 0
        self.started = False
        self.ended = False
        self.text_id: str | None = None  # the open text item
        self.text_index = -1
        self.text = ""
        self.text_closed = False
        self.done_texts: list[tuple[int, dict[str, Any]]] = []  # text items closed by a later tool call
        self.calls: dict[int, _Call] = {}
        self.items = 0
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.response: dict[str, Any] | None = None

    def _emit(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return sse(kind, data)

    def _snapshot(self, status: str, output: list[dict[str, Any]], usage=None, incomplete=None) -> dict[str, Any]:
        return envelope(self.id, self.model, self.body, status=status, output=output, usage=usage,
                        incomplete=incomplete)

    def _start(self) -> bytes:
        self.started = True
        snapshot = self._snapshot("in_progress", [])
        return (self._emit("response.created", {"response": snapshot})
                + self._emit("response.in_progress", {"response": snapshot}))

    def _open_text(self) -> bytes:
        self.text_id = f"msg_{self.id[5:]}" + (f"_{self.items}" if self.items else "")
        self.text_index = self.items
        self.text, self.text_closed = "", False
        self.items += 1
        return (self._emit("response.output_item.added", {"output_index": self.text_index,
                                                            "item": {**message_item(self.text_id, "", "in_progress"),
                                                                     "content": []}})
                + self._emit("response.content_part.added", {
                    "item_id": self.text_id, "output_index": self.text_index, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}))

    def _close_text(self) -> bytes:
        if self.text_id is None or self.text_closed:
            return b""
        self.text_closed = True
        where = {"item_id": self.text_id, "output_index": self.text_index, "content_index": 0}
        item = message_item(self.text_id, self.text)
        self.done_texts.append((self.text_index, item))
        return (self._emit("response.output_text.done", {**where, "text": self.text, "logprobs": []})
                + self._emit("response.content_part.done", {**where, "part": item["content"][0]})
                + self._emit("response.output_item.done", {"output_index": self.text_index, "item": item}))

    def _tool_delta(self, delta: dict[str, Any]) -> bytes:
        out = b""
        index = delta.get("index", 0)
        function = delta.get("function") or {}
        call = self.calls.get(index)
        if call is None:
            out += self._close_text()
            call = _Call(f"fc_{self.id[5:]}_{index}", self.items, delta.get("id") or f"call_{index}",
                         function.get("name") or "")
            self.items += 1
            self.calls[index] = call
            item = function_item(call.item_id, call.call_id, call.name, "", "in_progress")
            out += self._emit("response.output_item.added", {"output_index": call.index, "item": item})
        piece = function.get("arguments")
        if piece:
            call.arguments += piece
            out += self._emit("response.function_call_arguments.delta",
                              {"item_id": call.item_id, "output_index": call.index, "delta": piece})
        return out

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        event = chunk.get("_event")
        if event is not None:
            return self._native(event)
        out = b"" if self.started else self._start()
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                if self.text_id is None or self.text_closed:  # text after a tool call: a new item
                    out += self._open_text()
                self.text += content
                out += self._emit("response.output_text.delta", {
                    "item_id": self.text_id, "output_index": self.text_index, "content_index": 0,
                    "delta": content, "logprobs": []})
            for tool_delta in delta.get("tool_calls") or ():
                out += self._tool_delta(tool_delta)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        return out

    def output(self) -> list[dict[str, Any]]:
        items: list[tuple[int, dict[str, Any]]] = list(self.done_texts)
        if self.text_id is not None and not self.text_closed:
            items.append((self.text_index, message_item(self.text_id, self.text)))
        for call in self.calls.values():
            items.append((call.index, function_item(call.item_id, call.call_id, call.name, call.arguments or "{}")))
        return [item for _, item in sorted(items, key=lambda pair: pair[0])]

    def end(self) -> bytes:
        self.ended = True
        if self.native_view is not None and self.response is not None:
            return b""  # the native stream carried its own completion
        out = b"" if self.started else self._start()
        out += self._close_text()
        for call in sorted(self.calls.values(), key=lambda c: c.index):
            where = {"item_id": call.item_id, "output_index": call.index}
            out += self._emit("response.function_call_arguments.done",
                              {**where, "name": call.name, "arguments": call.arguments or "{}"})
            out += self._emit("response.output_item.done", {
                "output_index": call.index,
                "item": function_item(call.item_id, call.call_id, call.name, call.arguments or "{}")})
        status, reason = finish_status(self.finish_reason)
        self.response = self._snapshot(status, self.output(), usage_of(self.usage), reason)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._emit(kind, {"response": self.response})

    def _native(self, event: dict[str, Any]) -> bytes:
        assert self.native_view is not None
        if self.native_filter is None:
            return self._native_one(event)
        out = b""
        for filtered in self.native_filter.feed(event):  # events added or held: numbered anew
            out += self._native_one({**filtered, "sequence_number": self.seq})
            self.seq += 1
        return out

    def _native_one(self, event: dict[str, Any]) -> bytes:
        kind = event.get("type") or "message"
        response = event.get("response")
        if isinstance(response, dict):
            event = {**event, "response": self.native_view(response)}
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                self.response = event["response"]
        return sse(kind, event)

    def error(self, err: GatewayError, request_id: str) -> bytes:
        # OpenAI's error event, plus the `error` object of the gateway's other streams, on which
        # the openai SDKs raise (an APIError with the message) instead of yielding an event.
        body = orjson.loads(err.openai_body(request_id))
        return self._emit("error", {"code": err.code, "message": err.message, "param": err.param, **body})

"""The fake OpenAI provider's Responses API: ``POST /v1/responses`` (JSON and SSE),
``GET`` and ``DELETE /v1/responses/{id}``; used by ``FakeOpenAI``.

Answers follow the chat endpoint's rules on the conversation: the text is
``"echo: <last user text>"`` (or ``"echo: <output>"`` after a ``function_call_output``); with
function ``tools`` (and ``tool_choice`` not ``"none"``, last item not a tool result) the answer
is a ``function_call`` of the first tool (or the forced one) with arguments ``{"arg": "value"}``.
``previous_response_id`` prepends the stored conversation (unknown id: 404 as OpenAI answers).
Usage: ``input_tokens`` = words of all texts, ``output_tokens`` = words generated;
``input_tokens_details.cached_tokens`` = 0 and ``output_tokens_details.reasoning_tokens`` = 0.
Streams send OpenAI's event sequence, one SSE event per write, the text in N deltas.
"""

from __future__ import annotations

import json
import time
from typing import Any

__all__ = ["ResponsesBook", "conversation_text"]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text") or p.get("refusal") or "" for p in content if isinstance(p, dict))
    return ""


def conversation_text(items: list[dict[str, Any]]) -> str:
    return " ".join(_text(i.get("content")) if i.get("type", "message") == "message" else
                    str(i.get("output") or i.get("arguments") or "") for i in items)


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [i for i in raw or () if isinstance(i, dict)]


class ResponsesBook:
    """The fake's stored responses (what `store: true` keeps at OpenAI)."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}  # id -> {"response", "items"}

    def answer(self, body: dict[str, Any], next_id, content: str | None) -> tuple[int, dict[str, Any] | None, list[Any]]:
        """(status, error or None, [response, items, text, tool_call])."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return 400, {"message": "Missing required parameter: 'model'.", "param": "model"}, []
        history: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            record = self.stored.get(previous)
            if record is None:
                return 404, {"message": f"Previous response with id '{previous}' not found.",
                             "param": "previous_response_id"}, []
            history = record["items"]
        items = history + _items(body)
        if not items:
            return 400, {"message": "Missing required parameter: 'input'.", "param": "input"}, []
        last = items[-1]
        if last.get("type") == "function_call_output":
            text = "echo: " + _text(last.get("output"))
        else:
            user = next((i for i in reversed(items) if i.get("role") == "user"), None)
            text = "echo: " + (_text(user.get("content")) if user else "")
        if content is not None:
            text = content
        tools = [t for t in body.get("tools") or () if isinstance(t, dict)]
        choice = body.get("tool_choice")
        call = None
        if tools and choice != "none" and last.get("type") != "function_call_output":
            name = choice.get("name") if isinstance(choice, dict) else None
            name = name or tools[0].get("name") or tools[0].get("type") or "tool"
            call = {"type": "function_call", "id": next_id("fc_"), "call_id": next_id("call_"), "name": name,
                    "arguments": json.dumps({"arg": "value"}), "status": "completed"}
        output: list[dict[str, Any]]
        if call:
            output = [call]
        else:
            output = [{"type": "message", "id": next_id("msg_"), "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}]
        inp = max(1, len((" ".join(filter(None, [body.get("instructions") or "", conversation_text(items)]))).split()))
        out = max(1, len((call["arguments"] if call else text).split()))
        usage = {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": out,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + out}
        response = {
            "id": next_id("resp_"), "object": "response", "created_at": int(time.time()), "status": "completed",
            "background": False, "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": model, "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": previous,
            "reasoning": {"effort": None, "summary": None}, "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0), "truncation": "disabled", "usage": usage, "user": None,
            "metadata": body.get("metadata") or {},
        }
        if body.get("store", True) is not False:
            self.stored[response["id"]] = {"response": response, "items": items + output}
        return 200, None, [response, items, text, call]

    def events(self, response: dict[str, Any], text: str, call: dict[str, Any] | None, n_chunks: int,
               split) -> list[bytes]:
        seq = [0]

        def ev(kind: str, **data: Any) -> bytes:
            data = {"type": kind, "sequence_number": seq[0], **data}
            seq[0] += 1
            return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

        start = {**response, "status": "in_progress", "output": [], "usage": None}
        out = [ev("response.created", response=start), ev("response.in_progress", response=start)]
        item = response["output"][0]
        if call:
            out.append(ev("response.output_item.added", output_index=0, item={**item, "arguments": "",
                                                                              "status": "in_progress"}))
            for piece in split(call["arguments"], n_chunks):
                out.append(ev("response.function_call_arguments.delta", item_id=item["id"], output_index=0,
                              delta=piece))
            out.append(ev("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                          name=call["name"], arguments=call["arguments"]))
        else:
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            out.append(ev("response.output_item.added", output_index=0,
                          item={**item, "status": "in_progress", "content": []}))
            out.append(ev("response.content_part.added", **where,
                          part={"type": "output_text", "text": "", "annotations": [], "logprobs": []}))
            for piece in split(text, n_chunks):
                out.append(ev("response.output_text.delta", **where, delta=piece, logprobs=[]))
            out.append(ev("response.output_text.done", **where, text=text, logprobs=[]))
            out.append(ev("response.content_part.done", **where, part=item["content"][0]))
        out.append(ev("response.output_item.done", output_index=0, item=item))
        out.append(ev("response.completed", response=response))
        return out

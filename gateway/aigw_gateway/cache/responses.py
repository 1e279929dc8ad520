"""The response cache on the Responses API (POST /v1/responses), natively served or translated.

An entry is a `response` object, the answer as the provider gave it to the gateway (a native
OpenAI/Azure answer as it came, a translated one as the gateway renders it from the canonical
answer), before output guardrails restore anyone's values: placeholders stay placeholders. The
key is the masked request as it goes upstream, with a stored `previous_response_id` already
resolved into `input` (cache/key.py drops the item ids, so the same conversation is one key
whoever holds it); a provider-kept conversation bypasses (`provider_state`).

A hit is a new response: a new id (never the cached one, nor its item ids), the caller's own
settings echoed (`store`, `metadata`, `user`, `instructions`, `previous_response_id`), its own
values restored by its output guardrails; it is kept in the response store like a live answer
(responses/flow.py), so `previous_response_id` and GET /v1/responses/{id} work after it. Streamed,
it is the event sequence of a live stream (`response.created` … `response.completed` with usage).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aigw_config.config import RouteConfig

from ..errors import InvalidRequest
from ..ingress.responses import from_chat, to_chat
from .entry import Assembler
from .key import _NEUTRAL
from .service import ResponseCache

if TYPE_CHECKING:
    from ..pipeline import Call
    from ..runtime import Runtime

API = "responses"
_STORED_PREFIX = "resp_aigw_"  # responses/ids.py: an id the gateway made (its items' ids derive from it)
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def semantic_view(body: dict[str, Any], canonical: dict[str, Any] | None) -> dict[str, Any] | None:
    """A canonical chat view of the masked request for the semantic split (the last user turn is
    embedded; the rest, Responses settings included, is the context tag), or None when the
    request does not translate (then only the exact key is used)."""
    if canonical is None:
        try:
            canonical = to_chat({k: v for k, v in body.items() if k != "previous_response_id"})
        except InvalidRequest:
            return None
    neutral = _NEUTRAL[API]
    settings = {k: v for k, v in body.items() if k not in ("input", "instructions", "model") and k not in neutral}
    return {**canonical, "responses_settings": settings}


async def lookup(call: Call, runtime: Runtime, cache: ResponseCache, route: RouteConfig, body: dict[str, Any],
                 canonical: dict[str, Any] | None, headers) -> dict[str, Any] | None:
    """Plan and look up a Responses request (`body`: masked, history resolved); the stored
    `response` object on a hit."""
    identity = runtime.config.gateway
    plan = cache.plan(identity.namespace, identity.name, route, call.tenant, API, body, headers)
    call.cache_plan = plan
    if plan is None:
        return None
    semantic = route.cache is not None and route.cache.mode == "semantic" and (plan.read or plan.write)
    cache.prepare(plan, body, semantic_view(body, canonical) if semantic else None)
    found = await cache.lookup(plan)
    if found is None:
        return None
    response, live_cost = found
    call.cache_saved_usd = live_cost
    cache.saved(plan, live_cost)
    return response


# What a response echoes of its caller that is not in the key (nor masked): never stored; a hit
# echoes its own caller's (`answer`).
_CALLERS_ECHOES = {"metadata": {}, "user": None, "safety_identifier": None, "prompt_cache_key": None,
                   "previous_response_id": None}


def entry_of(response: dict[str, Any]) -> dict[str, Any]:
    """The entry for a native answer as the provider gave it (before output guardrails)."""
    return {**response, **{k: v for k, v in _CALLERS_ECHOES.items() if k in response}}


def entry_of_translated(completion: dict[str, Any], model: str, response_id: str,
                        masked_body: dict[str, Any]) -> dict[str, Any]:
    """The entry for a translated target's canonical answer (echoing the masked request only)."""
    return entry_of(from_chat(completion, model, response_id, masked_body))


class ResponsesRecorder:
    """Rebuilds a streamed miss's `response` object: a native stream's final event carries it
    whole; a translated stream's canonical chunks are assembled and rendered."""

    def __init__(self, model: str, response_id: str, masked_body: dict[str, Any]) -> None:
        self.model, self.response_id, self.masked_body = model, response_id, masked_body
        self.final: dict[str, Any] | None = None
        self.chunks = Assembler()

    def add(self, chunk: dict[str, Any]) -> None:
        event = chunk.get("_event")
        if event is None:
            self.chunks.add(chunk)
        elif event.get("type") in _FINAL_EVENTS and isinstance(event.get("response"), dict):
            self.final = event["response"]

    def response(self) -> dict[str, Any]:
        if self.final is not None:
            return entry_of(self.final)
        if not self.chunks.choices:
            return {}
        return entry_of_translated(self.chunks.response(), self.model, self.response_id, self.masked_body)


def _reid(item: Any, old: str, new: str) -> Any:
    if isinstance(item, dict) and isinstance(item.get("id"), str) and old and old in item["id"]:
        return {**item, "id": item["id"].replace(old, new)}
    return item


def answer(entry: dict[str, Any], body: dict[str, Any], response_id: str, model: str) -> dict[str, Any]:
    """The stored answer as a new response to this request: its own id, the caller's settings."""
    out = {**entry, "id": response_id, "object": "response", "model": model, "created_at": int(time.time()),
           "background": False, "previous_response_id": body.get("previous_response_id"),
           "instructions": body.get("instructions"), "store": body.get("store", True),
           "metadata": body.get("metadata") or {}}
    for key in ("user", "safety_identifier", "prompt_cache_key"):
        if key in entry or key in body:
            out[key] = body.get(key)
    old = entry.get("id")
    if isinstance(old, str) and old.startswith(_STORED_PREFIX):  # item ids the gateway derived from it
        out["output"] = [_reid(item, old[5:], response_id[5:]) for item in entry.get("output") or ()]
    return out


def _numbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": event.pop("type"), "sequence_number": n, **event} for n, event in enumerate(events)]


def events_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a live Responses stream that ends in this response: `response.created`,
    `response.in_progress`, per output item `output_item.added` (text: `content_part.added`,
    `output_text.delta`, `.done`, `content_part.done`; a function call: its arguments' delta and
    done), `output_item.done`, then `response.completed` with the whole response and usage."""
    snapshot = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": snapshot},
                                    {"type": "response.in_progress", "response": snapshot}]
    for index, item in enumerate(response.get("output") or ()):
        kind = item.get("type") if isinstance(item, dict) else None
        item_id = item.get("id") if isinstance(item, dict) else None
        if kind == "message":
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "status": "in_progress", "content": []}})
            for part_index, part in enumerate(item.get("content") or ()):
                where = {"item_id": item_id, "output_index": index, "content_index": part_index}
                events.extend(_part_events(part, where))
        elif kind == "function_call":
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "status": "in_progress", "arguments": ""}})
            where = {"item_id": item_id, "output_index": index}
            arguments = item.get("arguments") or ""
            if arguments:
                events.append({"type": "response.function_call_arguments.delta", **where, "delta": arguments})
            events.append({"type": "response.function_call_arguments.done", **where, "name": item.get("name"),
                           "arguments": arguments})
        else:  # reasoning, a built-in tool's call: announced and done, as they arrive live
            events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    final = "response.completed" if response.get("status") == "completed" else "response.incomplete"
    events.append({"type": final, "response": response})
    return _numbered(events)


def _part_events(part: Any, where: dict[str, Any]) -> list[dict[str, Any]]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "output_text":
        text = part.get("text") or ""
        empty = {**part, "text": "", "annotations": []}
        events = [{"type": "response.content_part.added", **where, "part": empty}]
        if text:
            events.append({"type": "response.output_text.delta", **where, "delta": text, "logprobs": []})
        events.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
    elif kind == "refusal":
        refusal = part.get("refusal") or ""
        events = [{"type": "response.content_part.added", **where, "part": {**part, "refusal": ""}}]
        if refusal:
            events.append({"type": "response.refusal.delta", **where, "delta": refusal})
        events.append({"type": "response.refusal.done", **where, "refusal": refusal})
    else:
        events = [{"type": "response.content_part.added", **where, "part": part}]
    events.append({"type": "response.content_part.done", **where, "part": part})
    return events

"""The response cache on the same-protocol passthrough path (passthrough/flow.py).

An entry is the provider's own bytes (a JSON answer, or the whole SSE stream), as they came to
the gateway: before output guardrails, the upstream's model name in them. A hit is those bytes
run through the caller's own adapter and stream tap, exactly as if the provider had sent them
again: the caller's output guardrails restore its own values, the model is named as it asked,
and what the tap does per request (the OpenAI usage chunk a client did not ask for) is done for
this request. So a cached answer is as faithful as a live passthrough answer, stream events and
all. Unary and streamed requests are kept apart (`<api>/native/unary|stream`): a stream's bytes
are never rebuilt into an answer nor the other way round. The key is the client's body after
input guardrails (masked), normalized as on the translated path.

Whether an answer is whole (finish reasons, tool calls awaiting results) is read from its
canonical translation, in the store task, off the client's path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, InvalidRequest
from ..providers import adapter_for
from .entry import Assembler
from .service import Plan, ResponseCache

if TYPE_CHECKING:
    from ..passthrough.base import NativeApi, NativeRequest, Piece
    from ..pipeline import Call
    from ..runtime import Runtime

API_OF_NATIVE = {"openai": "chat", "anthropic": "messages", "gemini": "gemini"}  # NativeApi.name -> cache API
OBJECT = "aigw.native"
_LABEL = "cache"  # the target named in errors of a replay (a stored answer was whole: none expected)
_background: set[asyncio.Task] = set()


def label(api: NativeApi, stream: bool) -> str:
    return f"{API_OF_NATIVE[api.name]}/native/{'stream' if stream else 'unary'}"


async def lookup(call: Call, runtime: Runtime, cache: ResponseCache, api: NativeApi, native: NativeRequest,
                 headers) -> bytes | None:
    """Plan and look up; the stored provider bytes on a hit. `native.body` is already masked."""
    identity = runtime.config.gateway
    plan = cache.plan(identity.namespace, identity.name, call.route, call.tenant, label(api, native.stream),
                      native.body, headers, API_OF_NATIVE[api.name])
    call.cache_plan = plan
    if plan is None:
        return None
    canonical = None
    settings = call.route.cache
    if settings is not None and settings.mode == "semantic" and (plan.read or plan.write):
        try:
            canonical = native.canonical()
        except (InvalidRequest, GatewayError):
            canonical = None  # does not translate: the exact key only
    cache.prepare(plan, native.body, canonical)
    found = await cache.lookup(plan)
    if found is None:
        return None
    entry, live_cost = found
    raw = entry.get("raw") if entry.get("object") == OBJECT else None
    if not isinstance(raw, str):
        return None
    call.cache_saved_usd = live_cost
    cache.saved(plan, live_cost)
    return raw.encode()


# --- storing a miss -----------------------------------------------------------------------------

def _finish_reasons(provider: ProviderConfig, raw: bytes, stream: bool) -> list[Any] | None:
    """The canonical finish reasons of a provider's answer, or None when it does not read."""
    adapter = adapter_for(provider.provider)
    if adapter is None:
        return None
    try:
        if stream:
            translator = adapter.stream_translator(_LABEL, "")
            assembler = Assembler()
            for chunk in [*translator.feed(raw), *translator.finish()]:
                assembler.add(chunk)
            response = assembler.response()
        else:
            response = adapter.chat_response(raw, _LABEL, "")
    except GatewayError:
        return None
    return [choice.get("finish_reason") for choice in response.get("choices") or ()]


async def _save(cache: ResponseCache, plan: Plan, provider: ProviderConfig, raw: bytes, stream: bool,
                cost_usd: float) -> None:
    reasons = _finish_reasons(provider, raw, stream)
    if reasons is None:
        return
    entry = {"object": OBJECT, "stream": stream, "finish_reasons": reasons, "raw": raw.decode("utf-8", "replace")}
    await cache.save(plan, entry, cost_usd)


def save_later(cache: ResponseCache, call: Call, provider: ProviderConfig, raw: bytes, stream: bool,
               cost_usd: float) -> None:
    """Store a miss's answer off the client's path (bounded by the store's own timeout)."""
    plan: Plan | None = call.cache_plan
    if plan is None or plan.result != "miss" or not plan.write or not raw:
        return
    task = asyncio.get_running_loop().create_task(_save(cache, plan, provider, raw, stream, cost_usd))
    _background.add(task)
    task.add_done_callback(_background.discard)


def wants_recording(call: Call) -> bool:
    plan: Plan | None = call.cache_plan
    return plan is not None and plan.result == "miss" and plan.write


class RecordingTap:
    """A passthrough stream tap that keeps the upstream's bytes; when the stream ended whole
    (the tap's `finish` accepted it), `on_whole(bytes, usage)` stores them."""

    def __init__(self, tap: Any, on_whole: Callable[[bytes, Any], None], max_bytes: int) -> None:
        self._tap = tap
        self._on_whole = on_whole
        self._max = max_bytes
        self._raw: list[bytes] | None = []
        self._size = 0

    def __getattr__(self, name: str) -> Any:  # client_format, usage, substantial, ...
        return getattr(self._tap, name)

    def feed(self, data: bytes) -> list[Piece]:
        if self._raw is not None:
            self._size += len(data)
            if self._size > self._max:
                self._raw = None  # too large to store: stop keeping it
            else:
                self._raw.append(data)
        return self._tap.feed(data)

    def finish(self) -> list[Piece]:
        out = self._tap.finish()  # raises on a truncated stream: nothing is stored
        if self._raw is not None:
            self._on_whole(b"".join(self._raw), self._tap.usage)
        return out


def record_streams(native: NativeRequest, on_whole: Callable[[ProviderConfig, bytes, Any], None],
                   max_bytes: int) -> None:
    """Make the native targets' stream taps keep what the provider sends (a miss being stored)."""
    pick = native.native

    def recording(provider: ProviderConfig):
        adapter = pick(provider)
        if adapter is None:
            return None
        return _RecordingAdapter(adapter, lambda raw, usage: on_whole(provider, raw, usage), max_bytes)

    native.native = recording


class _RecordingAdapter:
    def __init__(self, adapter: Any, on_whole: Callable[[bytes, Any], None], max_bytes: int) -> None:
        self._adapter = adapter
        self._on_whole = on_whole
        self._max = max_bytes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def stream_translator(self, target: str, model: str) -> RecordingTap:
        return RecordingTap(self._adapter.stream_translator(target, model), self._on_whole, self._max)


# --- serving a hit ------------------------------------------------------------------------------

def unary_answer(api: NativeApi, native: NativeRequest, stream_guard, raw: bytes):
    """The stored bytes as the caller's adapter reads a provider's answer (an `Answer`)."""
    return api.adapter(native, stream_guard).chat_response(raw, _LABEL, native.model)


async def replay(api: NativeApi, native: NativeRequest, call: Call, raw: bytes) -> AsyncIterator[bytes]:
    """The stored stream through the caller's own tap (guardrails, model name, usage), settled
    like a live passthrough stream."""
    tap = api.adapter(native, call.stream_guard).stream_translator(_LABEL, native.model)
    status = 200
    try:
        out = b"".join(piece.data for piece in [*tap.feed(raw), *tap.finish()])
        yield out
    except GatewayError as err:  # an output guardrail blocked the stored answer for this caller
        status = err.status_code
        yield api.ingress.stream_encoder(native.model, {}).error(err, call.request_id)
    except BaseException:
        status = 499
        raise
    finally:
        call.usage = tap.usage
        call.finish(status)
        call.settle_detached(status)

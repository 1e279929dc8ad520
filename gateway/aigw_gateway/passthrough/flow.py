"""One request in the client's own API along a route that has a target speaking that API.

The stages are the chat pipeline's (auth, limits, input guardrails, executor with retries,
breakers and fallback, output guardrails, settle, metrics, cost header); only what travels
differs: the client's body to native targets, its canonical translation to the others, and the
provider's answer back as it came. A route without such a target takes `pipeline.chat` as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .. import pipeline
from ..auth import authenticate_request
from ..cache import native as cached
from ..errors import GatewayError, InvalidRequest
from ..limits import format_usd
from ..limits.bounds import check_reservation_bounds
from ..pipeline import Call, _call, resolve_route
from ..routing.executor import Completed, Streaming
from ..upstream import TRANSPORT_ERRORS, map_transport_error
from .answer import JsonBytes
from .base import Answer, NativeApi, NativeRequest, Piece, filter_slots, scan_slots
from .headers import forwarded

log = logging.getLogger("aigw.passthrough")

ESTIMATE_HEADER = "x-aigw-token-count"


def serves_natively(runtime, api: NativeApi, model: str) -> bool:
    """A route with a target speaking the client's API (with or without a response cache: its
    entries are then the provider's own bytes, cache/native.py). A set lookup: the model names
    of each API are worked out once per loaded config."""
    return model in _native_models(runtime, api)


_native: tuple[Any, dict[str, frozenset[str]]] = (None, {})  # (the runtime, API name -> its native models)


def _native_models(runtime, api: NativeApi) -> frozenset[str]:
    global _native
    held, by_api = _native
    if held is not runtime:  # a new config (or another app in this process): start over
        by_api = {}
        _native = (runtime, by_api)
    models = by_api.get(api.name)
    if models is None:
        providers = runtime.providers
        models = by_api[api.name] = frozenset(
            name for name, route in runtime.routes_by_model.items()
            if any(providers[t.credential].provider in api.providers for t in route.targets))
    return models


def _guard_input(call: Call, runtime, api: NativeApi, native: NativeRequest) -> None:
    call.guard = call.state.guardrails.for_request(runtime.config, call.route.guardrail_policy, call.tenant.guardrail_policy)
    if call.guard is None:
        return
    changed, call.restore, call.flags = scan_slots(call.guard, api.request_slots(native.body))
    if changed:
        native.raw = None  # masked texts: the body is serialised again


def _request(call: Call, request: Request, api: NativeApi, operation: str, raw: bytes, body: dict[str, Any],
             model: str, stream: bool, action: str = "") -> NativeRequest:
    native = NativeRequest(api.name, operation, body, raw, model, stream, forwarded(api.name, request.headers), action)
    factory = call.stream_guard

    def adapter(provider):
        return api.adapter(native, factory) if provider.provider in api.providers else None

    native.native = adapter
    if operation == "chat":
        native.translate = lambda b: api.ingress.parse_request(b, model=model, stream=stream)
    return native


def _answer_bytes(call: Call, api: NativeApi, answer: Answer, model: str) -> bytes:
    changed = False
    if call.guard is not None and call.guard.output_active(call.restore):
        changed = filter_slots(call.guard, call.restore, api.answer_slots(answer))
    changed = api.map_model(answer, model) or changed
    return orjson.dumps(dict(answer)) if changed or not answer.raw else answer.raw


async def chat(state, request: Request, api: NativeApi, raw: bytes, body: dict[str, Any], *, model: str,
               stream: bool, validate: Callable[[dict[str, Any]], Any] | None = None) -> Response:
    """A chat request whose route has a native target (see `serves_natively`); `validate` raises
    the API's 400s (after authentication, as on the translated path)."""
    call = _call(state, request, "chat")
    call.stream = stream
    try:
        runtime = state.runtime()
        call.tenant = authenticate_request(runtime, request)
        if validate is not None:
            validate(body)
        check_reservation_bounds(body, api.name, body)  # the client's own field names
        call.route = resolve_route(runtime, call.tenant, model)
        # The prompt part apart: a client that leaves mid-stream is charged the reservation, prompt
        # at the input price and the rest at the output price (as on the translated path).
        prompt = api.prompt_tokens(body)  # walked once: the estimate is the prompt plus the allowance
        admitted = call.start_admit(prompt + api.allowance(body, runtime.config.settings.max_tokens_estimate), prompt)
        try:  # the limits' script is on its way to Redis: the input guardrails run while it answers
            native = _request(call, request, api, "chat", raw, body, model, stream)
            _guard_input(call, runtime, api, native)
        except Exception:
            await admitted  # a refusal by the limits comes first, as when they were asked first
            raise
        except BaseException:  # cancelled (the server stopping): the answer is not waited for
            admitted.close()
            raise
        await admitted  # nothing goes upstream before the admission
        limit_headers = call.limit_headers()
        stored = None
        if call.route.cache is not None:  # keyed on the masked body; entries are the provider's bytes
            hit = await cached.lookup(call, runtime, state.response_cache, api, native, request.headers)
            if hit is not None:
                return await _from_cache(call, api, native, hit, limit_headers)
            if stream and cached.wants_recording(call):
                cached.record_streams(native, lambda provider, data, usage: cached.save_later(
                    state.response_cache, call, provider, data, True, pipeline.cost_of(call.attempts.target, usage)),
                    call.route.cache.max_entry_bytes)
        result = await state.executor.run(runtime, call.route, native, stream, call.attempts)
        if isinstance(result, Completed):
            if isinstance(result.response, Answer):
                call.usage = api.usage_of(result.response)
                if cached.wants_recording(call):
                    stored = result.response.raw  # the provider's bytes, before output guardrails
                out = _answer_bytes(call, api, result.response, model)
            else:  # a fallback target that speaks another API
                call.usage = result.response.get("usage")
                out = orjson.dumps(api.ingress.render_response(call.guard_output(result.response), model))
    except GatewayError as err:
        await call.settle()
        call.finish(err.status_code)
        raise
    if isinstance(result, Completed):
        cost = await call.settle()
        call.finish(200)
        if stored:
            cached.save_later(state.response_cache, call, result.provider, stored, False, cost)
        headers = {**call.headers(), **limit_headers, "x-aigw-cost-usd": format_usd(cost)}
        return JsonBytes(out, headers)
    headers = {**call.headers(), **limit_headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    if getattr(result.translator, "client_format", False):
        body_iter = _relay(result, call, api, model)
    else:
        encoder = api.ingress.stream_encoder(model, native.canonical())
        body_iter = pipeline._relay(result, encoder, call, call.stream_guard())
    return pipeline._RelayResponse(body_iter, call, result, media_type=api.ingress.stream_media_type, headers=headers)


async def _from_cache(call: Call, api: NativeApi, native: NativeRequest, raw: bytes,
                      limit_headers: dict[str, str]) -> Response:
    """A hit: the stored provider bytes through this caller's adapter, as a live answer would go."""
    headers = {**call.headers(), **limit_headers, "x-aigw-cost-usd": format_usd(0.0)}
    if native.stream:
        return StreamingResponse(cached.replay(api, native, call, raw), media_type=api.ingress.stream_media_type,
                                 headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    answer = cached.unary_answer(api, native, call.stream_guard, raw)
    call.usage = api.usage_of(answer)
    out = _answer_bytes(call, api, answer, native.model)
    await call.settle()
    call.finish(200)
    return JsonBytes(out, headers)


async def _relay(stream: Streaming, call: Call, api: NativeApi, model: str) -> AsyncIterator[bytes]:
    """The provider's events as they came; an upstream error event is forwarded and ends it."""
    tap = stream.translator
    label = f"{stream.target.credential}/{stream.target.model}"
    status = 200

    def joined(pieces: list[Piece]) -> tuple[bytes, GatewayError | None]:
        out = b""
        for piece in pieces:
            out += piece.data
            if piece.error is not None:
                return out, piece.error
        return out, None

    try:
        try:
            out, err = joined(stream.first)
            if out:
                yield out
            if err is None:
                async for data in stream.rest:
                    out, err = joined(tap.feed(data))
                    if out:
                        yield out
                    if err is not None:
                        break
            if err is None:
                out, err = joined(tap.finish())
                if out:
                    yield out
            if err is not None:
                status = err.status_code
                log.warning("request %s: %s sent an error event after the first byte: %s", call.request_id, label, err.code)
        except GatewayError as err:  # a broken or truncated stream, or a guardrail block
            status = err.status_code
            log.warning("request %s: stream from %s failed after the first byte: %s", call.request_id, label, err.code)
            yield api.ingress.stream_encoder(model, {}).error(err, call.request_id)
        except TRANSPORT_ERRORS as exc:
            err = map_transport_error(exc, label)
            status = err.status_code
            log.warning("request %s: stream from %s broke after the first byte: %s", call.request_id, label, err.code)
            yield api.ingress.stream_encoder(model, {}).error(err, call.request_id)
    except BaseException:
        status = 499  # the client went away
        raise
    finally:
        usage = tap.usage
        if status == 499 and not (usage or {}).get("completion_tokens"):
            usage = call.reservation_usage()  # the upstream's final usage never came: the reservation is charged
        call.usage = usage
        call.finish(status)
        call.settle_detached()  # detached: this generator may be ending because its task was cancelled
        await stream.close()


async def count_tokens(state, request: Request, api: NativeApi, raw: bytes, body: dict[str, Any], *,
                       model: str) -> Response:
    """The provider's count when a target speaks the API, else the gateway's estimate (said so
    in a header). Counting consumes no tokens: it is not charged against the tenant's limits."""
    call = _call(state, request, "count_tokens")
    try:
        runtime = state.runtime()
        call.tenant = authenticate_request(runtime, request)
        call.route = resolve_route(runtime, call.tenant, model)
        native = _request(call, request, api, "count_tokens", raw, body, model, False)
        _guard_input(call, runtime, api, native)
        if serves_natively(runtime, api, model):
            result = await state.executor.run(runtime, call.route, native, False, call.attempts, operation="count_tokens")
            assert isinstance(result, Completed) and isinstance(result.response, Answer)
            out, extra = _answer_bytes(call, api, result.response, model), {}
        else:
            out, extra = orjson.dumps(api.count_body(api.prompt_tokens(native.body))), {ESTIMATE_HEADER: "estimate"}
    except GatewayError as err:
        call.finish(err.status_code)
        raise
    call.finish(200)
    return JsonBytes(out, {**call.headers(), **extra})


async def embeddings(state, request: Request, api: NativeApi, raw: bytes, body: dict[str, Any], *, model: str,
                     action: str, pick: Callable[[NativeRequest, Any], Any | None],
                     estimate: Callable[[dict[str, Any], int], int]) -> Response:
    """An embeddings method of the client's API; `pick(request, provider)` is the adapter of a
    target that can serve it (natively or translated), or None. A route none of whose targets
    can is a 400 naming the method, not an upstream failure."""
    call = _call(state, request, "embeddings")
    try:
        runtime = state.runtime()
        call.tenant = authenticate_request(runtime, request)
        call.route = resolve_route(runtime, call.tenant, model)
        native = _request(call, request, api, "embeddings", raw, body, model, False, action)
        native.native = lambda provider: pick(native, provider)
        if not any(pick(native, runtime.providers[t.credential]) is not None for t in call.route.targets):
            kinds = ", ".join(sorted({runtime.providers[t.credential].provider for t in call.route.targets}))
            raise InvalidRequest(f"{action} is not supported by the targets of the model {model!r} (providers: {kinds})",
                                 param="model")
        await call.admit(estimate(body, runtime.config.settings.max_tokens_estimate))
        limit_headers = call.limit_headers()
        _guard_input(call, runtime, api, native)
        result = await state.executor.run(runtime, call.route, native, False, call.attempts, operation="embeddings")
        assert isinstance(result, Completed) and isinstance(result.response, Answer)
        call.usage = api.usage_of(result.response)
        out = result.response.raw or orjson.dumps(dict(result.response))
    except GatewayError as err:
        await call.settle()
        call.finish(err.status_code)
        raise
    cost = await call.settle()
    call.finish(200)
    headers = {**call.headers(), **limit_headers, "x-aigw-cost-usd": format_usd(cost)}
    return JsonBytes(out, headers)

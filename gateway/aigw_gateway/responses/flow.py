"""One Responses API request: POST /v1/responses, GET and DELETE /v1/responses/{id}.

The stages are the chat pipeline's (pipeline.Call: auth, limits and budgets, guardrails, the
executor's retries and fallback, metrics, the access log, the cost header). Per target:
- OpenAI and Azure OpenAI get the client's body natively at `/responses` (model name replaced);
  the answer comes back as it came, its id sealed (responses/ids.py) so that a follow-up finds
  the same credential;
- every other provider gets the canonical chat translation (ingress/responses.py) and the
  conversation is kept in the response store for `previous_response_id`.
Guardrails read and rewrite a native exchange through a canonical view (responses/guard.py):
the provider gets the masked body, the client the restored answer, in a stream too.
A request the translation cannot express is served by the native targets only, or refused
with a 400 naming the field when the route has none.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from aigw_config.config import RouteConfig, TenantConfig

from ..auth import authenticate, authenticate_request
from ..cache import responses as cached
from ..cache import serve as cache_serve
from ..errors import GatewayError, InvalidRequest, NotFound
from ..ingress.responses import canonical_usage, from_chat, input_items, to_chat
from ..ingress.responses_stream import ResponsesStreamEncoder
from ..limits import estimate_chat_tokens, format_usd
from ..pipeline import _call, _relay, resolve_route
from ..providers import adapter_for
from ..providers.openai_responses import NativeResponses, item_request, parse_response, speaks_responses
from ..routing.executor import Completed
from ..runtime import Runtime
from ..state import GatewayState
from ..upstream import TRANSPORT_ERRORS, map_transport_error
from . import ids
from .guard import EventFilter, request_view, response_view
from .store import ResponseStore

log = logging.getLogger("aigw.responses")
STORE = ResponseStore()


def _owner(state: GatewayState, tenant: TenantConfig) -> str:
    """Whose stored conversations these are: the tenant within this gateway (namespace/name), like
    the limits' Redis keys, so gateways sharing a Redis never read each other's."""
    runtime = state.holder.current
    scope = runtime.key_scope if runtime is not None else ""
    return f"{scope}/{tenant.name}" if scope else tenant.name


def _pin(route: RouteConfig, credential: str, previous: str) -> RouteConfig:
    """The route's targets on the credential that keeps the previous response."""
    targets = tuple(t for t in route.targets if t.credential == credential)
    if not targets:
        raise InvalidRequest(f"the previous response '{previous}' was served by a provider this model's route "
                             "does not use", param="previous_response_id")
    return route if len(targets) == len(route.targets) else route.model_copy(update={"targets": targets})


def _view(runtime: Runtime, tenant: TenantConfig, credential: str, model: str, previous: Any):
    """The client's view of a native response object: sealed id, the model it asked for."""
    sealed: dict[str, str] = {}  # a stream names its response in several events: sealed once

    def view(response: dict[str, Any]) -> dict[str, Any]:
        out = {**response, "model": model}
        upstream_id = response.get("id")
        if isinstance(upstream_id, str):
            if upstream_id not in sealed:
                sealed[upstream_id] = ids.seal(runtime, tenant, ids.NativeRef(credential, upstream_id, model))
            out["id"] = sealed[upstream_id]
        if "previous_response_id" in response:
            out["previous_response_id"] = previous
        return out
    return view


def _estimate(runtime: Runtime, canonical: dict[str, Any] | None, body: dict[str, Any]) -> int:
    if canonical is not None:
        return estimate_chat_tokens(canonical, runtime.config.settings.max_tokens_estimate)
    allowance = body.get("max_output_tokens")  # untranslatable: about 4 characters of JSON a token
    return (len(orjson.dumps(body)) + 3) // 4 + (
        allowance if isinstance(allowance, int) else runtime.config.settings.max_tokens_estimate)


async def create(state: GatewayState, request: Request, body: dict[str, Any]) -> Response:
    call = _call(state, request, "chat")
    try:
        runtime = state.runtime()
        call.tenant = tenant = authenticate_request(runtime, request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required and must be a string", param="model")
        if not isinstance(body.get("stream", False), bool):
            raise InvalidRequest("'stream' must be a boolean", param="stream")
        stream = call.stream = body.get("stream") is True
        route = cache_route = resolve_route(runtime, tenant, model)
        native_body, history, pinned = dict(body), None, None
        previous = body.get("previous_response_id")
        if previous is not None:
            if not isinstance(previous, str) or not previous:
                raise InvalidRequest("'previous_response_id' must be a string", param="previous_response_id")
            pinned = ids.open_native(runtime, tenant, previous)
            if pinned is not None:  # the provider keeps it: the same credential must answer
                route = _pin(route, pinned.credential, previous)
                native_body["previous_response_id"] = pinned.upstream_id
            else:
                record = await STORE.get(state.redis.client, _owner(state, tenant), previous) if ids.is_stored(previous) else None
                if record is None:
                    raise NotFound(f"Previous response with id '{previous}' not found.", param="previous_response_id")
                history = record["items"]
                del native_body["previous_response_id"]
                native_body["input"] = history + input_items(body)
        call.route = route
        speaks = [t for t in route.targets if speaks_responses(runtime.providers[t.credential])]
        # The guardrails read the Responses body through a canonical view; every target then gets
        # the masked body (natively) or its translation (made from the masked body).
        if state.guardrails.for_request(runtime.config, route.guardrail_policy, tenant.guardrail_policy) is not None:
            view, unview = request_view(native_body)
            native_body = unview(call.guard_input(runtime, view))
        try:  # translated only when a target needs it
            canonical: dict[str, Any] | None = (
                to_chat({k: v for k, v in native_body.items() if k != "previous_response_id"})
                if pinned is None and len(speaks) < len(route.targets) else None)
        except InvalidRequest:
            if not speaks:
                raise
            canonical = None
        if canonical is None and len(speaks) < len(route.targets):
            # only the targets that speak the Responses API can serve it
            route = call.route = route.model_copy(update={"targets": tuple(speaks)})
        await call.admit(_estimate(runtime, canonical, native_body))
        limit_headers = call.limit_headers()
        if cache_route.cache is not None:  # keyed on the masked body, a stored history resolved into it
            hit = await cached.lookup(call, runtime, state.response_cache, cache_route, native_body, canonical,
                                      request.headers)
            if hit is not None:
                return await _from_cache(state, call, hit, body, history, model, stream, limit_headers)
        native = NativeResponses(native_body)
        result = await state.executor.run(runtime, route, canonical or {}, stream, call.attempts, native=native)
        is_native = speaks_responses(result.provider)
        if isinstance(result, Completed):
            entry = result.response  # for the cache: the answer before output guardrails restore values
            if is_native:
                call.usage = canonical_usage(result.response.get("usage"))
                if call.guard is not None:
                    completion, uncompletion = response_view(result.response)
                    result.response = uncompletion(call.guard_output(completion))
            else:
                call.usage = result.response.get("usage")  # charged even if an output guardrail blocks
                result.response = call.guard_output(result.response)
    except GatewayError as err:
        await call.settle()
        call.finish(err.status_code)
        raise
    view = _view(runtime, tenant, result.target.credential, model, previous) if is_native else None
    if isinstance(result, Completed):
        if view is not None:
            out = view(result.response)
        else:
            out = from_chat(result.response, model, ids.new_stored_id(), body)
            await _remember(state, tenant, body, history, out)
        cost = await call.settle()
        call.finish(200)
        if call.cache_plan is not None and call.cache_plan.result == "miss":
            entry = cached.entry_of(entry) if view is not None else \
                cached.entry_of_translated(entry, model, out["id"], native_body)
            cache_serve.save_later(state.response_cache, call, entry, cost)
        headers = {**call.headers(), **limit_headers, "x-aigw-cost-usd": format_usd(cost)}
        return Response(orjson.dumps(out), media_type="application/json", headers=headers)
    chunk_filter = call.stream_guard()
    encoder = ResponsesStreamEncoder(model, ids.new_stored_id(), body, native_view=view,
                                     native_filter=EventFilter(chunk_filter) if is_native and chunk_filter else None)
    if call.cache_plan is not None:  # a miss's stream is rebuilt into an entry as it is relayed
        call.cache_plan.recorder = cached.ResponsesRecorder(model, encoder.id, native_body)
    relay = _relay(result, encoder, call, None if is_native else chunk_filter)
    headers = {**call.headers(), **limit_headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(_remembering(relay, encoder, state, tenant, body, history, view is None),
                             media_type="text/event-stream", headers=headers)


async def _from_cache(state: GatewayState, call, entry: dict[str, Any], body: dict[str, Any],
                      history: list[dict[str, Any]] | None, model: str, stream: bool,
                      limit_headers: dict[str, str]) -> Response:
    """A hit, answered as a new response (cache/responses.py): no upstream, no cost; kept in the
    response store like a live answer, so a follow-up and a GET find it."""
    out = cached.answer(entry, body, ids.new_stored_id(), model)
    call.usage = canonical_usage(out.get("usage"))
    headers = {**call.headers(), **limit_headers, "x-aigw-cost-usd": format_usd(0.0)}
    if stream:
        chunk_filter = call.stream_guard()
        encoder = ResponsesStreamEncoder(model, out["id"], body, native_view=lambda response: response,
                                         native_filter=EventFilter(chunk_filter) if chunk_filter else None)
        replay = cache_serve.replay_chunks(({"_event": e} for e in cached.events_of(out)), encoder, call)
        return StreamingResponse(_remembering(replay, encoder, state, call.tenant, body, history, True),
                                 media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    if call.guard is not None:
        completion, uncompletion = response_view(out)
        out = uncompletion(call.guard_output(completion))
    await _remember(state, call.tenant, body, history, out)
    await call.settle()
    call.finish(200)
    return Response(orjson.dumps(out), media_type="application/json", headers=headers)


async def _remember(state: GatewayState, tenant: TenantConfig, body: dict[str, Any],
                    history: list[dict[str, Any]] | None, response: dict[str, Any]) -> None:
    """Keep a translated response's conversation for follow-ups (unless `store: false`). A store
    failure is logged: the answer is already paid for, only a follow-up would miss it."""
    if body.get("store") is False:
        return
    record = {"response": response, "items": [*(history or ()), *input_items(body), *response["output"]]}
    try:
        await STORE.put(state.redis.client, _owner(state, tenant), response["id"], record)
    except GatewayError as err:
        log.warning("response %s not stored: %s", response["id"], err.message)


async def _remembering(relay: AsyncIterator[bytes], encoder: ResponsesStreamEncoder, state: GatewayState,
                       tenant: TenantConfig, body: dict[str, Any], history, translated: bool) -> AsyncIterator[bytes]:
    """The relayed stream; the conversation is stored before the final event leaves, so a
    follow-up sent the moment `response.completed` arrives finds it."""
    stored = False
    async for piece in relay:
        if translated and encoder.ended and not stored and encoder.response is not None:
            stored = True
            await _remember(state, tenant, body, history, encoder.response)
        yield piece


# --- GET / DELETE ----------------------------------------------------------------------------------

async def _native_item(state: GatewayState, runtime: Runtime, tenant: TenantConfig, ref: ids.NativeRef,
                       method: str) -> dict[str, Any] | None:
    provider = runtime.providers.get(ref.credential)
    if provider is None or not speaks_responses(provider):
        return None
    label = f"{ref.credential}/{ref.model}"
    upstream = item_request(provider, runtime.provider_keys.get(ref.credential), method, ref.upstream_id)
    try:
        resp = await state.client.send(upstream, connect_timeout=10.0, read_timeout=60.0)
        data = await resp.read()
    except TRANSPORT_ERRORS as exc:
        raise map_transport_error(exc, label) from None
    if resp.status == 404:
        return None
    if not 200 <= resp.status < 300:
        raise adapter_for(provider.provider).error_for(resp.status, data, resp.headers, label)
    if method == "DELETE":
        return {}
    return parse_response(data, label, ref.model)


async def retrieve(state: GatewayState, request: Request, response_id: str) -> Response:
    runtime = state.runtime()
    tenant = authenticate(runtime, request.headers)
    ref = ids.open_native(runtime, tenant, response_id)
    if ref is not None:
        data = await _native_item(state, runtime, tenant, ref, "GET")
        if data is not None:
            previous = data.get("previous_response_id")
            if isinstance(previous, str):  # also kept by the same credential
                previous = ids.seal(runtime, tenant, ids.NativeRef(ref.credential, previous, ref.model))
            view = _view(runtime, tenant, ref.credential, ref.model, previous)
            return Response(orjson.dumps(view(data)), media_type="application/json")
    elif ids.is_stored(response_id):
        record = await STORE.get(state.redis.client, _owner(state, tenant), response_id)
        if record is not None:
            return Response(orjson.dumps(record["response"]), media_type="application/json")
    raise NotFound(f"Response with id '{response_id}' not found.")


async def list_input_items(state: GatewayState, request: Request, response_id: str) -> Response:
    """GET /v1/responses/{id}/input_items: the items that led to a response (newest first, as
    OpenAI lists them by default; `order=asc` for oldest first)."""
    runtime = state.runtime()
    tenant = authenticate(runtime, request.headers)
    ref = ids.open_native(runtime, tenant, response_id)
    if ref is not None:
        provider = runtime.providers.get(ref.credential)
        if provider is not None and speaks_responses(provider):
            label = f"{ref.credential}/{ref.model}"
            upstream = item_request(provider, runtime.provider_keys.get(ref.credential), "GET", ref.upstream_id,
                                    "/input_items", request.url.query)
            try:
                resp = await state.client.send(upstream, connect_timeout=10.0, read_timeout=60.0)
                data = await resp.read()
            except TRANSPORT_ERRORS as exc:
                raise map_transport_error(exc, label) from None
            if 200 <= resp.status < 300:
                return Response(data, media_type="application/json")
            if resp.status != 404:
                raise adapter_for(provider.provider).error_for(resp.status, data, resp.headers, label)
    elif ids.is_stored(response_id):
        record = await STORE.get(state.redis.client, _owner(state, tenant), response_id)
        if record is not None:
            produced = len(record["response"].get("output") or ())
            items = record["items"][:len(record["items"]) - produced]
            if request.query_params.get("order") != "asc":
                items = items[::-1]
            body = {"object": "list", "data": items, "has_more": False,
                    "first_id": (items[0].get("id") if items else None), "last_id": (items[-1].get("id") if items else None)}
            return Response(orjson.dumps(body), media_type="application/json")
    raise NotFound(f"Response with id '{response_id}' not found.")


async def delete(state: GatewayState, request: Request, response_id: str) -> Response:
    runtime = state.runtime()
    tenant = authenticate(runtime, request.headers)
    ref = ids.open_native(runtime, tenant, response_id)
    found = False
    if ref is not None:
        found = await _native_item(state, runtime, tenant, ref, "DELETE") is not None
    elif ids.is_stored(response_id):
        found = await STORE.delete(state.redis.client, _owner(state, tenant), response_id)
    if not found:
        raise NotFound(f"Response with id '{response_id}' not found.")
    return Response(orjson.dumps({"id": response_id, "object": "response.deleted", "deleted": True}),
                    media_type="application/json")

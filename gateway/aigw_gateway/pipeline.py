"""One chat request, whatever API the client speaks: auth -> route -> targets -> client format.

The stages work on the canonical (OpenAI) format; the ingress translates at both ends. A stream
is relayed chunk by chunk as it arrives; once bytes reached the client, a failure ends the
stream with an error event in the client's format, never a silent cut. Every request is
recorded once, when it ends (stats for the pod report, metrics, the access log).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from aigw_config.config import RouteConfig, TargetConfig, TenantConfig

from .cache import serve as cached
from .auth import authenticate_request
from .errors import BudgetExceeded, GatewayError, InvalidRequest, ModelNotFound, PermissionDenied, RateLimitExceeded
from .ingress.base import Ingress, StreamEncoder
from .ledger import UsageEvent, api_of
from .limits import Admission, estimate_embedding_tokens, format_usd, usage_cost_nano, usage_counts
from .limits.bounds import check_reservation_bounds
from .limits.cost import NANO
from .limits.estimate import completion_allowance, estimate_prompt_tokens
from .routing.executor import AttemptLog, Completed, Streaming
from .runtime import Runtime
from .state import GatewayState
from .streaming.first_chunk import FirstChunkNow
from .telemetry.tracing import current_trace_id
from .upstream import TRANSPORT_ERRORS, map_transport_error

log = logging.getLogger("aigw.pipeline")
_background: set[asyncio.Task] = set()
access_log = logging.getLogger("aigw.access")


def resolve_route(runtime: Runtime, tenant: TenantConfig, model: str) -> RouteConfig:
    route = runtime.routes_by_model.get(model)
    if route is None:
        raise ModelNotFound(f"The model '{model}' does not exist", param="model")
    if not runtime.may_use(tenant, route):
        raise PermissionDenied(f"this API key may not use the model '{model}'", param="model")
    return route


def _tokens(usage: dict[str, Any] | None) -> tuple[int, int]:
    if not usage:
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def cost_of(target: TargetConfig | None, usage: dict[str, Any] | None) -> float:
    if target is None or target.pricing is None or not usage:
        return 0.0
    return usage_cost_nano(target.pricing, usage) / NANO


@dataclass
class Call:
    """What one request did, filled in as it goes."""

    state: GatewayState
    request_id: str
    method: str
    path: str
    operation: str = "chat"
    client_request_id: str | None = None
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)
    tenant: TenantConfig | None = None
    route: RouteConfig | None = None
    attempts: AttemptLog = field(default_factory=AttemptLog)
    usage: dict[str, Any] | None = None
    admission: Admission | None = None
    guard: Any = None  # the request's combined guardrail policy, or None
    restore: Any = None
    flags: tuple[str, ...] = ()
    finished: bool = False
    status: int = 0  # set by finish()
    settled: bool = False
    reserved_tokens: int = 0  # the admission's estimate: charged when a client leaves mid-stream
    reserved_prompt_tokens: int = 0
    cache_plan: Any = None  # the response cache's decision (cache.service.Plan), or None
    cache_saved_usd: float = 0.0  # a hit's avoided cost

    def guard_input(self, runtime: Runtime, request: dict[str, Any]) -> dict[str, Any]:
        """Input guardrails of the route and the tenant; the (possibly masked) request."""
        self.guard = self.state.guardrails.for_request(runtime.config, self.route.guardrail_policy,
                                                       self.tenant.guardrail_policy)
        if self.guard is None:
            return request
        result = self.guard.scan_request(request)
        self.restore, self.flags = result.restore, result.flags
        return result.request

    def guard_output(self, response: dict[str, Any]) -> dict[str, Any]:
        if self.guard is None or not self.guard.output_active(self.restore):
            return response
        return self.guard.filter_response(response, self.restore)

    def stream_guard(self):
        if self.guard is None or not self.guard.output_active(self.restore):
            return None
        return self.guard.stream_filter(self.restore)

    async def admit(self, tokens: int, prompt_tokens: int | None = None) -> None:
        await self.start_admit(tokens, prompt_tokens)

    def start_admit(self, tokens: int, prompt_tokens: int | None = None) -> Coroutine[Any, Any, None]:
        """`admit` whose store call leaves now (Limiter.start_admit): await it, always, before
        anything goes upstream."""
        self.reserved_tokens = tokens
        self.reserved_prompt_tokens = tokens if prompt_tokens is None else prompt_tokens
        try:
            pending = self.state.limiter.start_admit(self.tenant, tokens)
        except (RateLimitExceeded, BudgetExceeded) as err:
            self._throttled(err)
            raise
        return self._admitted(pending)

    def _throttled(self, err: RateLimitExceeded | BudgetExceeded) -> None:
        self.state.recorder.throttled(self.tenant.name, "budget" if isinstance(err, BudgetExceeded) else err.type)

    async def _admitted(self, pending: Awaitable[Admission]) -> None:
        try:
            self.admission = await pending
            if self.admission.degraded:  # served without limits: counted where it happens (every worker)
                self.state.recorder.export_limiter(self.state.limiter)
        except (RateLimitExceeded, BudgetExceeded) as err:
            self._throttled(err)
            raise

    async def settle(self, status: int | None = None) -> float:
        """Charge the real usage (or keep the reservation when usage never came); the cost.

        A request that reached an upstream also becomes a usage-ledger event: appended to the
        stream by the same settle script, or queued when there is no script call (no limits,
        no Redis, or the settlement failed). `status` defaults to finish()'s, else the
        GatewayError being handled, else 200: so every caller's pattern records the right one.
        """
        admission, self.admission = self.admission, None
        return self._settle(admission, status)

    def _settle(self, admission: Admission | None, status: int | None = None) -> float:
        # Queued, not awaited (Limiter.settle_soon): the response never waits for Redis, and the
        # ledger event goes to the in-process queue if its settlement fails, as it did when awaited.
        target = self.attempts.target  # None on a cache hit: it costs nothing at the provider's price
        nano = usage_cost_nano(target.pricing, self.usage) if target is not None else 0
        ledger = self.state.ledger
        first, self.settled = not self.settled, True  # one event per request, however often settled
        event = self._ledger_event(self._final_status(status), nano) if ledger.enabled and first else None
        queued = False
        if admission is not None:
            limiter = self.state.limiter
            append = ledger.append_for(event, self.state.limits_url is not None)
            done = None if event is None else (lambda appended: appended or ledger.emit(event))
            if self.cache_hit:  # requests count; tokens only if the route says so
                counted = _tokens(self.usage) if self.route.cache.count_tokens_on_hit else (0, 0)
                queued = limiter.settle_soon(admission, *counted, 0.0, append, done)
            elif self.usage:
                prompt, completion = _tokens(self.usage)
                queued = limiter.settle_soon(admission, prompt, completion, nano / NANO, append, done)
            elif target is None:
                queued = limiter.settle_soon(admission, 0, 0, 0.0, append, done)  # nothing was served: released
            else:
                limiter.keep_soon(admission)  # served, usage unknown: the reservation stays
        if event is not None and not queued:
            ledger.emit(event)
        return nano / NANO

    @property
    def cache_hit(self) -> bool:
        return self.cache_plan is not None and self.cache_plan.result == "hit"

    def reservation_usage(self) -> dict[str, Any]:
        """The admission's estimate as usage: what a request is charged when its real usage never came."""
        prompt = min(self.reserved_prompt_tokens, self.reserved_tokens)
        completion = self.reserved_tokens - prompt
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _final_status(self, status: int | None) -> int:
        if status is not None:
            return status
        if self.finished:
            return self.status
        handling = sys.exc_info()[1]
        return handling.status_code if isinstance(handling, GatewayError) else 200

    def _ledger_event(self, status: int, cost_nano: int) -> UsageEvent | None:
        if self.attempts.attempts == 0 and not self.cache_hit:  # refused before any upstream: metrics, not rows
            return None
        runtime = self.state.holder.current
        identity = runtime.config.gateway if runtime is not None else None
        target = self.attempts.target
        prompt, completion, cache_read, cache_write, reasoning = usage_counts(self.usage)
        return UsageEvent(
            self.request_id, self.client_request_id, time.time_ns() // 1000,
            identity.namespace if identity else "default", identity.name if identity else "local",
            self.tenant.name if self.tenant else "", self.route.name if self.route else "",
            f"{target.credential}/{target.model}" if target else "", self.attempts.provider_type if target else "",
            target.model if target else "", api_of(self.path, self.operation), status, self.stream,
            self.cache_plan.result if self.cache_plan is not None else None,
            prompt, completion, cache_read, cache_write, reasoning, cost_nano,
            (time.perf_counter() - self.started) * 1000, self.attempts.attempts,
        )  # fmt: skip

    def settle_detached(self, status: int | None = None) -> None:
        """`settle` in a task of its own, taken over at once: for paths that may be cancelled (a
        client that went away) or that end with an unexpected exception. Idempotent."""
        if self.admission is None and (self.settled or not self.state.ledger.enabled):
            return
        admission, self.admission = self.admission, None
        try:
            self._settle(admission, status)  # nothing in it awaits: a cancelled path cannot interrupt it
        except Exception:  # never mask what the caller is handling
            log.exception("request %s: settlement failed", self.request_id)

    def limit_headers(self) -> dict[str, str]:
        return self.state.limiter.headers(self.admission) if self.admission is not None else {}

    def headers(self) -> dict[str, str]:
        headers = {"x-aigw-attempts": str(self.attempts.attempts)}
        if self.cache_plan is not None:
            headers["x-aigw-cache"] = self.cache_plan.result
        if self.flags:
            headers["x-aigw-guardrail-flags"] = ",".join(self.flags)
        if self.route is not None:
            headers["x-aigw-route"] = self.route.name
        if self.attempts.dropped:
            headers["x-aigw-dropped-fields"] = ",".join(self.attempts.dropped)
        target = self.attempts.target
        if target is not None:
            headers["x-aigw-target"] = f"{target.credential}/{target.model}"
        overhead = (time.perf_counter() - self.started - self.attempts.upstream_seconds) * 1000
        headers["x-aigw-overhead-ms"] = f"{max(overhead, 0.0):.2f}"
        return headers

    def finish(self, status: int) -> None:
        if self.finished:
            return
        self.finished = True
        self.status = status
        seconds = time.perf_counter() - self.started
        recorder = self.state.recorder
        if self.guard is not None:  # counted in this worker's process, not only at a scrape
            recorder.export_guardrails(self.state.guardrail_counts())
        target = self.attempts.target
        route_name = self.route.name if self.route else "-"
        tenant_name = self.tenant.name if self.tenant else "-"
        target_label = f"{target.credential}/{target.model}" if target else "-"
        # A route's error ratio counts what went wrong upstream or in the gateway, not a tenant
        # refused by its own limits (a 429 before any attempt).
        failed = status >= 500 or (status == 429 and self.attempts.attempts > 0)
        if self.cache_plan is not None:
            recorder.cache(route_name, self.cache_plan.result, self.cache_saved_usd)
        recorder.request(route=route_name, target=target_label, tenant=tenant_name, status=status, seconds=seconds,
                         fallbacks=self.attempts.fallbacks, retries=self.attempts.retries,
                         retried_target=self.attempts.last_retried, failed=failed)
        cost = cost_of(target, self.usage)
        if self.usage and target is not None:
            recorder.usage(tenant=tenant_name, route=route_name, provider_type=self.attempts.provider_type,
                           model=target.model, usage=self.usage, cost_usd=cost, operation=self.operation)
        if self.state.settings.access_log:
            usage = self.usage or {}
            access_log.info("%s", orjson.dumps({
                "request_id": self.request_id, "client_request_id": self.client_request_id,
                "trace_id": current_trace_id(), "method": self.method,
                "path": self.path, "status": status, "route": route_name, "target": target_label,
                "tenant": tenant_name, "attempts": self.attempts.attempts, "duration_ms": round(seconds * 1000, 2),
                "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
                "cost_usd": round(cost, 9), "cache": self.cache_plan.result if self.cache_plan is not None else None,
            }).decode())


def _call(state: GatewayState, request: Request, operation: str) -> Call:
    scope = request.scope  # not request.url: building a URL object costs more than the rest of this
    scope_state = scope.setdefault("state", {})
    scope_state["access_logged"] = True  # Call.finish logs it; the middleware logs the rest
    return Call(state, scope_state.get("request_id", ""), scope["method"], scope["path"], operation,
                scope_state.get("client_request_id"))


async def chat(state: GatewayState, request: Request, ingress: Ingress, body: dict[str, Any], *,
               model: str | None = None, stream: bool | None = None) -> Response:
    call = _call(state, request, "chat")
    try:
        runtime = state.runtime()
        call.tenant = authenticate_request(runtime, request)
        canonical = ingress.parse_request(body, model=model, stream=stream)
        check_reservation_bounds(canonical, ingress.name, body)
        requested_model: str = canonical["model"]
        is_stream = call.stream = bool(canonical.get("stream"))
        call.route = resolve_route(runtime, call.tenant, requested_model)
        prompt_estimate = estimate_prompt_tokens(canonical)
        await call.admit(prompt_estimate + completion_allowance(canonical, runtime.config.settings.max_tokens_estimate),
                         prompt_estimate)
        limit_headers = call.limit_headers()
        upstream_request = call.guard_input(runtime, canonical)
        hit = None
        if call.route.cache is not None:
            hit = await cached.lookup(call, runtime, state.response_cache, cached.API_OF_INGRESS[ingress.name],
                                      upstream_request, upstream_request, request.headers)
        if hit is not None:
            call.usage = hit.get("usage")
            if not is_stream:
                hit = call.guard_output(hit)
            result = Completed(hit, None, None)  # type: ignore[arg-type]  # no upstream target
        else:
            result = await state.executor.run(runtime, call.route, upstream_request, is_stream, call.attempts)
            if isinstance(result, Completed):
                call.usage = result.response.get("usage")  # charged even if an output guardrail blocks
                stored = result.response
                result.response = call.guard_output(result.response)
    except GatewayError as err:
        await call.settle()
        call.finish(err.status_code)
        raise
    except BaseException:
        call.settle_detached()  # an unexpected exception or a cancelled request: never keep the reservation
        raise
    try:
        if hit is not None and is_stream:
            encoder = ingress.stream_encoder(requested_model, canonical)
            headers = {**call.headers(), **limit_headers, "cache-control": "no-cache", "x-accel-buffering": "no",
                       "x-aigw-cost-usd": format_usd(0.0)}
            return StreamingResponse(cached.replay(hit, encoder, call, call.stream_guard()),
                                     media_type=ingress.stream_media_type, headers=headers)
        if isinstance(result, Completed):
            call.usage = result.response.get("usage")
            body_out = ingress.render_response(result.response, requested_model)
            cost = await call.settle()
            call.finish(200)
            if hit is None and call.cache_plan is not None:
                cached.save_later(state.response_cache, call, stored, cost)
            headers = {**call.headers(), **limit_headers, "x-aigw-cost-usd": format_usd(cost)}
            return Response(orjson.dumps(body_out), media_type="application/json", headers=headers)
        encoder = ingress.stream_encoder(requested_model, canonical)
        headers = {**call.headers(), **limit_headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
        return _RelayResponse(_relay(result, encoder, call, call.stream_guard()), call, result,
                              media_type=ingress.stream_media_type, headers=headers)
    except BaseException:
        call.settle_detached()
        raise


async def embeddings(state: GatewayState, request: Request, body: dict[str, Any]) -> Response:
    call = _call(state, request, "embeddings")
    try:
        runtime = state.runtime()
        call.tenant = authenticate_request(runtime, request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required and must be a string", param="model")
        if not isinstance(body.get("input"), (str, list)) or not body["input"]:
            raise InvalidRequest("'input' is required: a string or an array", param="input")
        call.route = resolve_route(runtime, call.tenant, model)
        body = _guard_embedding_input(call, runtime, body)
        await call.admit(estimate_embedding_tokens(body))
        limit_headers = call.limit_headers()
        result = await state.executor.run(runtime, call.route, body, False, call.attempts, operation="embeddings")
    except GatewayError as err:
        await call.settle()
        call.finish(err.status_code)
        raise
    except BaseException:
        call.settle_detached()  # an unexpected exception or a cancelled request: never keep the reservation
        raise
    assert isinstance(result, Completed)
    call.usage = result.response.get("usage")
    cost = await call.settle()
    call.finish(200)
    headers = {**call.headers(), **limit_headers, "x-aigw-cost-usd": format_usd(cost)}
    return Response(orjson.dumps(result.response), media_type="application/json", headers=headers)


def _guard_embedding_input(call: Call, runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    guard = call.state.guardrails.for_request(runtime.config, call.route.guardrail_policy, call.tenant.guardrail_policy)
    if guard is None:
        return body
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    masked = []
    for text in texts:
        if isinstance(text, str):
            result = guard.scan_request({"messages": [{"role": "user", "content": text}]})
            masked.append(result.request["messages"][0]["content"])
            call.flags += tuple(f for f in result.flags if f not in call.flags)
        else:
            masked.append(text)  # token arrays carry no text to scan
    return {**body, "input": masked if isinstance(body["input"], list) else masked[0]}


async def _relay(stream: Streaming, encoder: StreamEncoder, call: Call, guard=None) -> AsyncIterator[bytes]:
    label = f"{stream.target.credential}/{stream.target.model}"
    status = 200
    recording = cached.recorder_for_stream(call)

    def encode(chunks) -> bytes:
        out = b""
        for chunk in chunks:
            if recording is not None:
                recording.add(chunk)
            if chunk.get("usage"):
                call.usage = chunk["usage"]
            for safe in (guard.feed(chunk) if guard is not None else (chunk,)):
                out += encoder.chunk(safe)
        return out

    try:
        try:
            out = encode(stream.first)
            if out:
                yield out
            async for data in stream.rest:
                out = encode(stream.translator.feed(data))
                if out:
                    yield out
            out = encode(stream.translator.finish())
            if guard is not None:
                out += b"".join(encoder.chunk(c) for c in guard.flush())
            if out:
                yield out
        except GatewayError as err:  # an upstream error event, a broken stream, or a guardrail block
            status = err.status_code
            log.warning("request %s: stream from %s failed after the first byte: %s", call.request_id, label, err.code)
            yield encoder.error(err, call.request_id)
            return
        except TRANSPORT_ERRORS as exc:
            err = map_transport_error(exc, label)
            status = err.status_code
            log.warning("request %s: stream from %s broke after the first byte: %s", call.request_id, label, err.code)
            yield encoder.error(err, call.request_id)
            return
        yield encoder.end()
        if recording is not None:  # a whole stream: stored once the answer is out
            cached.save_later(call.state.response_cache, call, recording.response(), cost_of(stream.target, call.usage))
    except BaseException:
        status = 499  # the client went away (nginx's convention)
        if not call.usage:  # the upstream's usage never came: the reservation is charged
            call.usage = call.reservation_usage()
        raise
    finally:
        call.finish(status)
        # Settle detached: this generator may be finishing because its task was cancelled.
        call.settle_detached()
        await stream.close()


class _RelayResponse(FirstChunkNow):
    """A streamed answer whose reservation is settled however the response ends: also when the
    client went away before the relay generator ever started (its `finally` then never runs)."""

    def __init__(self, content: AsyncIterator[bytes], call: Call, stream: Streaming, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._call, self._stream = call, stream

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self._call.finished:  # the relay never started, so its own cleanup never ran
                self._call.finish(499)
                self._call.settle_detached()
                task = asyncio.get_running_loop().create_task(self._stream.close())
                _background.add(task)
                task.add_done_callback(_background.discard)

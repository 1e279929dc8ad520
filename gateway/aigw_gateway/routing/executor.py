"""Run one canonical chat request along a route: targets in order, retries, breakers, fallback.

Retryable failures (connect errors, timeouts, 429, 5xx, garbage answers) are retried on the same
target with exponential backoff and full jitter, honouring a provider's Retry-After up to the
route's maxBackoffMs (a longer Retry-After moves on to the next target at once); then the next
target is tried. Client errors (4xx) are never retried and never count against a target's
circuit. A target whose circuit is open is skipped; when every target's circuit is open, the one
that opened first is tried anyway (panic routing) rather than answering 503 untried.
`firstByteSeconds` bounds the wait for the response head of a plain request, and for streams the
wait for the first canonical chunk with substance, so a stalled stream fails over before any byte
reaches the client; such a first-byte timeout moves on to the next target at once (no retry on
the stalled one while another target is left).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


from aigw_config.config import ProviderConfig, RouteConfig, TargetConfig

from opentelemetry.trace import SpanKind, Status, StatusCode

from ..errors import FirstByteTimeout, GatewayError, InvalidRequest, OperationNotSupported, UpstreamBadResponse, UpstreamError
from ..providers import adapter_for
from ..providers.base import ProviderAdapter, StreamTranslator, UpstreamRequest
from ..runtime import Runtime
from ..upstream import TRANSPORT_ERRORS, UpstreamClient, UpstreamResponse, map_transport_error
from ..telemetry.tracing import tracer
from ..wire import UnsupportedField, fit, rules_for
from ..wire.canonical import client_param
from .deadline import AttemptDeadline
from .health import HealthRegistry
from .strategies import order_targets

log = logging.getLogger("aigw.routing")


class AllTargetsUnavailable(UpstreamError):
    status_code = 503
    code = "no_healthy_target"


@dataclass
class AttemptLog:
    """What happened, for headers, metrics and the status report."""

    attempts: int = 0
    fallbacks: int = 0
    retries: int = 0
    target: TargetConfig | None = None
    provider_type: str = ""
    upstream_seconds: float = 0.0  # time in upstream attempts and backoff waits
    last_retried: str = ""
    errors: list[str] = field(default_factory=list)
    dropped: tuple[str, ...] = ()  # request fields the serving target could not honour (unsupportedFields: drop)


@dataclass
class Completed:
    response: dict[str, Any]
    target: TargetConfig
    provider: ProviderConfig


@dataclass
class Streaming:
    """An upstream stream whose first canonical chunks have arrived."""

    first: list[dict[str, Any]]
    rest: AsyncIterator[bytes]
    translator: StreamTranslator
    response: UpstreamResponse
    target: TargetConfig
    provider: ProviderConfig

    async def close(self) -> None:
        await self.response.aclose()


class _NoSpan:
    """Stands in for a span when tracing is off: no context switching on the hot path."""

    def __enter__(self) -> "_NoSpan":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_status(self, *args: object) -> None:
        pass

    def set_attribute(self, *args: object) -> None:
        pass


_NO_SPAN = _NoSpan()


def _has_substance(chunk: dict[str, Any]) -> bool:
    if chunk.get("usage"):
        return True
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or choice.get("finish_reason"):
            return True
    return False


def _plan(provider: ProviderConfig, request: Any, operation: str) -> tuple[Any, Any]:
    """(adapter, payload) of one target, (None, None) when it cannot serve the request. A
    request in the client's own API (passthrough/) decides per target: native or translated."""
    plan = getattr(request, "plan", None)
    if plan is not None:
        return plan(provider)
    adapter = adapter_for(provider.provider)
    if adapter is None or (operation == "embeddings" and not hasattr(adapter, "embeddings_request")):
        return None, None
    return adapter, request


def _label(target: TargetConfig) -> str:
    return f"{target.credential}/{target.model}"


def _backoff(route: RouteConfig, retry_index: int, err: GatewayError, rng: random.Random) -> float | None:
    """Seconds to wait before retry number `retry_index` (0-based), or None to move on."""
    policy = route.retry
    cap = policy.max_backoff_ms / 1000
    delay = rng.uniform(0, min(cap, policy.initial_backoff_ms / 1000 * (2 ** retry_index)))
    retry_after = err.headers.get("retry-after")
    if retry_after:
        try:
            wanted = float(retry_after)
        except ValueError:
            return delay
        if wanted > cap:
            return None  # the provider asks for longer than the route may wait: fall back instead
        delay = max(delay, wanted)
    return delay


class Executor:
    def __init__(self, client: UpstreamClient, health: HealthRegistry, recorder=None,
                 rng: random.Random | None = None, tracing: bool = False) -> None:
        self.tracing = tracing
        self.client = client
        self.health = health
        self.recorder = recorder
        self.rng = rng or random.Random()

    async def run(self, runtime: Runtime, route: RouteConfig, request: dict[str, Any], stream: bool,
                  log_: AttemptLog, operation: str = "chat", native: Any = None) -> Completed | Streaming:
        """`operation` is "chat" (streamed or not) or "embeddings". `native` (optional) stands in
        for the adapter of the targets it `serves`: it sends the request in the client's own API
        (providers/openai_responses.NativeResponses)."""
        last: GatewayError | None = None
        refused: InvalidRequest | None = None  # a target that cannot honour a field or operation is no candidate
        now = time.monotonic
        tried_any = False
        targets = order_targets(route, self.health, self.rng)
        panic = all(self.health.of(route, t).blocked(route.circuit_breaker, now()) for t in targets)
        if panic:
            # Panic routing (Envoy's): every circuit is open. Rather than a 503 without trying,
            # send this request to the target whose circuit opened first; it may have recovered.
            targets = [min(targets, key=lambda t: self.health.of(route, t).opened_at)]
        for position, target in enumerate(targets):
            health = self.health.of(route, target)
            provider = runtime.providers[target.credential]
            adapter, payload = _plan(provider, request, operation)
            if native is not None and native.serves(provider):
                adapter, payload = native, request
            if adapter is None:
                refused = refused or OperationNotSupported(
                    f"the model '{route.model}' cannot serve {operation}: no target of route {route.name} supports it "
                    f"(provider type {provider.provider!r} of {target.credential} does not)", param="model")
                continue
            client_format = getattr(adapter, "client_format", False) or adapter is native
            fitted, dropped = payload, ()
            rules = rules_for(provider.provider) if operation == "chat" and not client_format else None
            if rules is not None:
                try:
                    fitted, dropped = fit(rules, payload, route.unsupported_fields, _label(target))
                except UnsupportedField as err:
                    refused = refused or err
                    continue
            if tried_any:
                log_.fallbacks += 1
            for retry_index in range(route.retry.attempts + 1):
                if not panic and not health.allow(route.circuit_breaker, now()):
                    last = last or AllTargetsUnavailable(f"circuit open for {_label(target)}")
                    break
                tried_any = True
                log_.attempts += 1
                started = now()
                key = runtime.provider_keys.get(target.credential)
                if operation == "embeddings" and not client_format:
                    upstream = adapter.embeddings_request(provider, key, target.model, payload)
                else:
                    try:
                        upstream = adapter.chat_request(provider, key, target.model, fitted, stream)
                    except InvalidRequest as err:  # name the client's own message, not the canonical one
                        err.param = client_param(fitted, err.param)
                        raise
                with (tracer.start_as_current_span(
                    f"{operation} {target.model}", kind=SpanKind.CLIENT,
                    attributes={"gen_ai.operation.name": operation, "gen_ai.provider.name": provider.provider,
                                "gen_ai.request.model": target.model, "aigw.route": route.name,
                                "aigw.target": _label(target), "aigw.attempt": log_.attempts},
                ) if self.tracing else _NO_SPAN) as span:
                    try:
                        if stream:
                            result: Completed | Streaming = await self._stream(adapter, upstream, route, target, provider)
                        else:
                            result = await self._unary(adapter, upstream, route, target, provider, operation)
                    except GatewayError as err:
                        span.set_status(Status(StatusCode.ERROR, err.code or ""))
                        span.set_attribute("error.type", err.code or err.type)
                        elapsed = now() - started
                        log_.upstream_seconds += elapsed
                        if self.recorder:
                            self.recorder.attempt(route, target, provider.provider, elapsed, err.code or "error", operation)
                        if err.target_failure:
                            health.failure(route.circuit_breaker, now())
                        else:
                            health.release()  # the request's fault, or our config's: not the target's health
                        if not err.retryable:
                            raise
                        last = err
                        log_.errors.append(f"{_label(target)}: {err.code}")
                        if retry_index == route.retry.attempts or not err.retry_same_target or panic:
                            break
                        if isinstance(err, FirstByteTimeout) and position < len(targets) - 1:
                            break  # a stalled target: the next one answers sooner than another wait here
                        delay = _backoff(route, retry_index, err, self.rng)
                        if delay is None:
                            break
                        log_.retries += 1
                        log_.last_retried = _label(target)
                        log_.upstream_seconds += delay
                        await asyncio.sleep(delay)
                        continue
                    except BaseException:
                        health.release()
                        raise
                    if isinstance(result, Completed) and isinstance(result.response.get("model"), str):
                        span.set_attribute("gen_ai.response.model", result.response["model"])
                elapsed = now() - started
                log_.upstream_seconds += elapsed
                if self.recorder:
                    if stream:  # recorded once the first chunk is written: the request's task goes on to it first
                        asyncio.get_running_loop().call_soon(self._record_stream, route, target, provider.provider,
                                                             elapsed, operation)
                    else:
                        self.recorder.attempt(route, target, provider.provider, elapsed, None, operation)
                log_.provider_type = provider.provider
                health.success(now() - started, now())
                log_.target = target
                log_.dropped = dropped
                return result
        if refused is not None and not tried_any:
            raise refused
        if last is None:
            last = AllTargetsUnavailable(f"no target of route {route.name} can serve the request")
        if isinstance(last, AllTargetsUnavailable) and not tried_any:
            last = AllTargetsUnavailable(f"every target of route {route.name} has an open circuit; try again later")
        raise last

    def _record_stream(self, route: RouteConfig, target: TargetConfig, provider_type: str, elapsed: float,
                       operation: str) -> None:
        self.recorder.attempt(route, target, provider_type, elapsed, None, operation)
        self.recorder.first_token(target, provider_type, elapsed)

    def _send(self, upstream: UpstreamRequest, route: RouteConfig):
        timeouts = route.timeouts
        return self.client.send(upstream, connect_timeout=min(timeouts.first_byte_seconds, 10.0),
                                read_timeout=timeouts.request_seconds, max_bytes=route.limits.max_response_bytes)

    async def _unary(self, adapter: ProviderAdapter, upstream: UpstreamRequest, route: RouteConfig,
                     target: TargetConfig, provider: ProviderConfig, operation: str) -> Completed:
        """firstByteSeconds bounds the wait for the response head (a stalled target fails over
        like a stalled stream); requestSeconds bounds the whole attempt."""
        label = _label(target)
        timeouts = route.timeouts
        loop = asyncio.get_running_loop()
        now = loop.time()
        head = True
        try:
            async with AttemptDeadline(loop, now + min(timeouts.first_byte_seconds, timeouts.request_seconds),
                                       now + timeouts.request_seconds) as budget:
                resp = await self._send(upstream, route)
                head = False
                budget.head_arrived()
                body = await resp.read()
        except TRANSPORT_ERRORS as exc:
            if head and isinstance(exc, TimeoutError):
                raise FirstByteTimeout(f"upstream {label} sent nothing within {timeouts.first_byte_seconds:g}s") from None
            raise map_transport_error(exc, label) from None
        if not 200 <= resp.status < 300:
            raise adapter.error_for(resp.status, body, resp.headers, label)
        native = getattr(adapter, "client_format", False)
        parse = adapter.chat_response if operation == "chat" or native else adapter.embeddings_response
        return Completed(parse(body, label, target.model), target, provider)

    async def _stream(self, adapter: ProviderAdapter, upstream: UpstreamRequest, route: RouteConfig,
                      target: TargetConfig, provider: ProviderConfig) -> Streaming:
        label = _label(target)
        resp: UpstreamResponse | None = None
        try:
            async with asyncio.timeout(route.timeouts.first_byte_seconds):
                resp = await self._send(upstream, route)
                if not 200 <= resp.status < 300:
                    body = await resp.read()
                    raise adapter.error_for(resp.status, body, resp.headers, label)
                translator = adapter.stream_translator(label, target.model)
                rest = resp.iter_chunks()
                first: list[Any] = []
                substantial = getattr(translator, "substantial", _has_substance)
                # Commit to this target only once a chunk with substance arrived: a bare role
                # chunk followed by a reset or a stall still fails over invisibly.
                while not any(substantial(c) for c in first):
                    data = await anext(rest, None)
                    if data is None:
                        first.extend(translator.finish())
                        if not first:
                            raise UpstreamBadResponse(f"upstream {label} closed the stream without sending anything")
                        break
                    first.extend(translator.feed(data))
                for piece in first:  # an upstream error event before anything of substance: fail over
                    if getattr(piece, "error", None) is not None:
                        raise piece.error
                    if substantial(piece):
                        break
        except GatewayError:
            if resp is not None:
                await resp.aclose()
            raise
        except TRANSPORT_ERRORS as exc:
            if resp is not None:
                await resp.aclose()
            if isinstance(exc, TimeoutError):
                raise FirstByteTimeout(f"upstream {label} sent no first token within "
                                       f"{route.timeouts.first_byte_seconds:g}s") from None
            raise map_transport_error(exc, label) from None
        except BaseException:
            if resp is not None:
                await resp.aclose()
            raise
        return Streaming(first, rest, translator, resp, target, provider)

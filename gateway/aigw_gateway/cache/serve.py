"""The cache inside one request: look up after the input guardrails, answer a hit in the client's
format (unary or as a stream), store a miss's answer after it went out.

A hit goes through the caller's own output guardrails (its own values restored) and its own
encoder, exactly like a live answer; it costs the tenant nothing at the provider's price (the
request counts toward requestsPerMinute; its tokens toward tokensPerMinute only when the route's
`countTokensOnHit` says so), and the avoided cost is recorded as saved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import GatewayError
from ..routing.executor import AttemptLog
from ..telemetry import metrics
from .entry import Assembler, chunks_of
from .service import Plan, ResponseCache

if TYPE_CHECKING:
    from ..pipeline import Call
    from ..runtime import Runtime
    from ..state import GatewayState

log = logging.getLogger("aigw.cache")
_background: set[asyncio.Task] = set()

# The client API of each ingress, as the cache and its metrics name it.
API_OF_INGRESS = {"openai": "chat", "anthropic": "messages", "gemini": "gemini", "responses": "responses"}


def embedder(state: GatewayState):
    """Embeddings for the semantic cache through the gateway's own routing. These calls are the
    gateway's, not a tenant's: no tenant limit or budget is charged; their cost is counted under
    the tenant label `aigw-cache`."""

    async def embed(route_model: str, text: str) -> list[float]:
        runtime = state.runtime()
        route = runtime.routes_by_model.get(route_model)
        if route is None:
            raise LookupError(f"embedding route '{route_model}' is not served")
        attempts = AttemptLog()
        result = await state.executor.run(runtime, route, {"model": route_model, "input": text}, False, attempts,
                                          operation="embeddings")
        from ..pipeline import cost_of  # the one cost rule

        cost = cost_of(attempts.target, result.response.get("usage"))
        if cost:
            metrics.COST.labels("aigw-cache", route.name).inc(cost)
        return [float(x) for x in result.response["data"][0]["embedding"]]

    return embed


async def lookup(call: Call, runtime: Runtime, cache: ResponseCache, api: str, keyed: dict[str, Any],
                 canonical: dict[str, Any] | None, headers) -> dict[str, Any] | None:
    """Plan and look up; the stored canonical answer on a hit. `keyed` is the masked request the
    key is made of: the canonical one on a translated path, the client's own body on passthrough."""
    identity = runtime.config.gateway
    rule_body, rule_api = (canonical, "chat") if canonical is not None else (keyed, api)
    plan = cache.plan(identity.namespace, identity.name, call.route, call.tenant, api, rule_body, headers, rule_api)
    call.cache_plan = plan
    if plan is None:
        return None
    cache.prepare(plan, keyed, canonical)
    found = await cache.lookup(plan)
    if found is None:
        return None
    response, live_cost = found
    call.cache_saved_usd = live_cost
    cache.saved(plan, live_cost)
    return response


def header(call: Call) -> dict[str, str]:
    plan: Plan | None = call.cache_plan
    return {} if plan is None else {"x-aigw-cache": plan.result}


def save_later(cache: ResponseCache, call: Call, response: dict[str, Any], cost_usd: float) -> None:
    """Store a miss's answer without holding up the client (bounded by the store's own timeout)."""
    plan: Plan | None = call.cache_plan
    if plan is None or plan.result != "miss" or not plan.write:
        return
    task = asyncio.get_running_loop().create_task(cache.save(plan, response, cost_usd))
    _background.add(task)
    task.add_done_callback(_background.discard)


def recorder_for_stream(call: Call) -> Assembler | None:
    """What rebuilds a miss's streamed answer for storing: the plan's own (set by an API whose
    entries are not canonical answers, cache/responses.py), else an Assembler of canonical chunks."""
    plan: Plan | None = call.cache_plan
    if plan is None or plan.result != "miss" or not plan.write:
        return None
    return plan.recorder if plan.recorder is not None else Assembler()


def replay(response: dict[str, Any], encoder, call: Call, guard=None) -> AsyncIterator[bytes]:
    """A stored answer as the stream a live one would have been (same events, usage included)."""
    return replay_chunks(chunks_of(response), encoder, call, guard)


async def replay_chunks(chunks: Iterable[dict[str, Any]], encoder, call: Call, guard=None) -> AsyncIterator[bytes]:
    """Chunks of a stored answer through the caller's guard and encoder, settled like a live stream."""
    status = 200
    try:
        out = b""
        for chunk in chunks:
            for safe in (guard.feed(chunk) if guard is not None else (chunk,)):
                out += encoder.chunk(safe)
        if guard is not None:
            out += b"".join(encoder.chunk(c) for c in guard.flush())
        yield out + encoder.end()
    except GatewayError as err:  # an output guardrail blocked the stored answer for this caller
        status = err.status_code
        yield encoder.error(err, call.request_id)
    except BaseException:
        status = 499
        raise
    finally:
        call.finish(status)
        call.settle_detached(status)  # detached: this generator may be ending because its task was cancelled

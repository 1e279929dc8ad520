"""One usage event: what the ledger stores about a request, and its wire form on the stream.

The gateway builds the event when the request is settled and appends it to the gateway's
Redis Stream in the same Lua call that settles the request (or hands it to the in-process
queue); the writer turns stream entries back into `aigw_usage` rows. No prompt or answer
content is ever part of an event. An entry is `v` (format version, "1") and `e`: a JSON array of the
columns in order, the cost an integer count of nano-USD, the end time integer microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson

NANO = Decimal(1_000_000_000)
GROUP = "aigw-ledger"  # the writers' consumer group

# The columns of aigw_usage, in table order (the writer inserts them in this order).
COLUMNS = (
    "request_id", "client_request_id", "ts", "namespace", "gateway", "tenant", "route", "target", "provider",
    "model", "api", "status", "stream", "cache", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "attempts",
)  # fmt: skip


def stream_key(namespace: str, gateway: str) -> str:
    """The one stream of a gateway (all its replicas and workers append to it)."""
    return f"aigw:ledger:{namespace}:{gateway}"


def api_of(path: str, operation: str) -> str:
    """The client API of a request, from its path (so a new endpoint gets its own name)."""
    if path.startswith("/v1/messages"):
        return "messages"
    if path.startswith("/v1/responses"):
        return "responses"
    if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
        return "gemini"
    if path.startswith("/v1/embeddings"):
        return "embeddings"
    if path.startswith("/v1/chat/completions"):
        return "chat"
    return operation or "other"


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    client_request_id: str | None
    ts_us: int  # when the request ended, microseconds since the epoch (UTC)
    namespace: str
    gateway: str
    tenant: str
    route: str
    target: str
    provider: str
    model: str
    api: str
    status: int
    stream: bool
    cache: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_nano: int
    latency_ms: float
    attempts: int

    def fields(self) -> list[str | bytes]:
        """`field, value, ...` for XADD (and the settle script's ARGV): the values as one compact
        JSON array (two arguments to marshal instead of forty-four), with a format version."""
        return ["v", "1", "e", orjson.dumps([
            self.request_id, self.client_request_id, self.ts_us, self.namespace, self.gateway, self.tenant,
            self.route, self.target, self.provider, self.model, self.api, self.status, self.stream, self.cache,
            self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens,
            self.reasoning_tokens, self.cost_nano, round(self.latency_ms, 3), self.attempts,
        ])]  # fmt: skip

    def row(self) -> tuple[Any, ...]:
        """The `aigw_usage` row, in COLUMNS order."""
        return (
            self.request_id, self.client_request_id, datetime.fromtimestamp(self.ts_us / 1e6, timezone.utc),
            self.namespace, self.gateway, self.tenant, self.route, self.target, self.provider, self.model, self.api,
            self.status, self.stream, self.cache, self.input_tokens, self.output_tokens, self.cache_read_tokens,
            self.cache_write_tokens, self.reasoning_tokens, Decimal(self.cost_nano) / NANO, self.latency_ms,
            self.attempts,
        )  # fmt: skip


class BadEntry(ValueError):
    """A stream entry that is not a usage event (never retried: it could never be inserted)."""


def event_from_fields(data: dict[bytes, bytes]) -> UsageEvent:
    """A stream entry back into an event; raises BadEntry when it is not one."""
    if data.get(b"v") != b"1":
        raise BadEntry(f"unknown event format {data.get(b'v')!r}")
    try:
        values = orjson.loads(data[b"e"])
        if len(values) != 22 or not values[0]:
            raise BadEntry(f"{len(values)} values")
        (request_id, client_request_id, ts_us, namespace, gateway, tenant, route, target, provider, model, api,
         status, stream, cache, input_tokens, output_tokens, cache_read, cache_write, reasoning, cost_nano,
         latency_ms, attempts) = values
        return UsageEvent(
            str(request_id), client_request_id, int(ts_us), namespace, gateway, tenant, route, target, provider,
            model, api, int(status), bool(stream), cache, int(input_tokens), int(output_tokens), int(cache_read),
            int(cache_write), int(reasoning), int(cost_nano), float(latency_ms), int(attempts),
        )  # fmt: skip
    except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadEntry(f"{type(exc).__name__}: {exc}") from None

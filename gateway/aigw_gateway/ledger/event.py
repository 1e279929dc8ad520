"""One usage event: what the ledger stores about a request, and its wire form on the stream.

The gateway builds the event when the request is settled and appends it to the gateway's
Redis Stream in the same Lua call that settles the request (or hands it to the in-process
queue); the writer turns stream entries back into `aigw_usage` rows. No prompt or answer
content is ever part of an event. Stream fields are the column names; values are strings
(empty: NULL), the cost an integer count of nano-USD, the end time integer microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

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

    def fields(self) -> list[str]:
        """Flat `field, value, ...` for XADD (and for the settle script's ARGV)."""
        return [
            "request_id", self.request_id, "client_request_id", self.client_request_id or "",
            "ts_us", str(self.ts_us), "namespace", self.namespace, "gateway", self.gateway,
            "tenant", self.tenant, "route", self.route, "target", self.target, "provider", self.provider,
            "model", self.model, "api", self.api, "status", str(self.status), "stream", "1" if self.stream else "0",
            "cache", self.cache or "", "input_tokens", str(self.input_tokens), "output_tokens", str(self.output_tokens),
            "cache_read_tokens", str(self.cache_read_tokens), "cache_write_tokens", str(self.cache_write_tokens),
            "reasoning_tokens", str(self.reasoning_tokens), "cost_nano", str(self.cost_nano),
            "latency_ms", repr(round(self.latency_ms, 3)), "attempts", str(self.attempts),
        ]  # fmt: skip

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


def _text(data: dict[bytes, bytes], name: str) -> str:
    return data.get(name.encode(), b"").decode("utf-8", "replace")


def event_from_fields(data: dict[bytes, bytes]) -> UsageEvent:
    """A stream entry back into an event; raises BadEntry when it is not one."""
    try:
        request_id = _text(data, "request_id")
        if not request_id:
            raise BadEntry("no request_id")
        return UsageEvent(
            request_id, _text(data, "client_request_id") or None, int(data[b"ts_us"]),
            _text(data, "namespace"), _text(data, "gateway"), _text(data, "tenant"), _text(data, "route"),
            _text(data, "target"), _text(data, "provider"), _text(data, "model"), _text(data, "api"),
            int(data[b"status"]), data.get(b"stream") == b"1", _text(data, "cache") or None,
            int(data[b"input_tokens"]), int(data[b"output_tokens"]), int(data[b"cache_read_tokens"]),
            int(data[b"cache_write_tokens"]), int(data[b"reasoning_tokens"]), int(data[b"cost_nano"]),
            float(data[b"latency_ms"]), int(data[b"attempts"]),
        )  # fmt: skip
    except (KeyError, ValueError) as exc:
        raise BadEntry(f"{type(exc).__name__}: {exc}") from None

"""The counter stores behind the limiter: one semantics, two homes (Redis, or this process).

A store keeps, per tenant,
- one hash per one-minute window: `r` (admitted requests) and `t` (reserved plus settled tokens);
- one integer per budget period: spend in nano-USD;
- one set of in-flight request slots, each with a lease end (concurrentRequests).

`admit` checks budget, then requests, then tokens, and reserves only if all pass: all or
nothing, atomically (a Lua script in Redis; code without an `await` in `MemoryStore`).
`settle` moves a window's tokens by `actual - reserved` and adds spend, atomically too.
Key names and expiry times are chosen by the caller, so both stores agree on them and the
Redis scripts never read Redis's own clock (tests move the caller's clock across windows).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

# Outcomes of `Store.admit`.
ADMITTED = 0
REFUSED_REQUESTS = 1
REFUSED_TOKENS = 2
REFUSED_BUDGET = 3
REFUSED_CONCURRENCY = 4


class StoreUnavailable(Exception):
    """The store could not be asked (Redis down, slow, or answering with an error).

    `outage` is True when the store itself is in trouble (no connection, a timeout): only those
    count toward the limiter's trip. False: this one call failed (a script error on its
    arguments, say); the request is failed by the fail mode, and nobody else is affected.
    """

    def __init__(self, message: str, *, outage: bool = True) -> None:
        super().__init__(message)
        self.outage = outage


@dataclass(slots=True)
class AdmitRequest:
    """One admission as a store sees it. Limits of 0 mean unlimited; `budget_nano` -1 means none."""

    window_key: str
    spend_key: str
    rpm: int
    tpm: int
    tokens: int
    budget_nano: int
    block: bool
    window_ttl: int
    now: float
    # Concurrency: a slot in the tenant's in-flight set, leased until `lease_until` (0: no limit).
    inflight_key: str = ""
    concurrency: int = 0
    slot: str = ""
    lease_until: float = 0.0
    lease_ttl: int = 0


@dataclass(slots=True)
class Counters:
    """What a store saw: the window's counts (after a reservation, if one was made) and the spend."""

    outcome: int
    requests: int
    tokens: int
    spend_nano: int
    inflight: int = 0  # in-flight requests seen (on a concurrency refusal)


@dataclass(slots=True)
class StreamAppend:
    """An entry a settlement also appends to a stream (the usage ledger's), in the same atomic call."""

    key: str
    maxlen: int  # approximate bound (XADD MAXLEN ~)
    fields: list[str | bytes]  # field, value, ...


@dataclass(slots=True)
class Settlement:
    """One `Store.settle` call as data, for `settle_many` (the arguments have the same meaning)."""

    window_key: str
    spend_key: str
    token_delta: int
    reserved: bool
    window_ttl: int
    spend_nano: int
    spend_ttl: int
    now: float
    inflight_key: str = ""
    slot: str = ""
    append: StreamAppend | None = None


class Store(Protocol):
    def admit(self, req: AdmitRequest) -> Awaitable[Counters]: ...

    async def settle(
        self,
        window_key: str,
        spend_key: str,
        token_delta: int,
        reserved: bool,
        window_ttl: int,
        spend_nano: int,
        spend_ttl: int,
        now: float,
        inflight_key: str = "",
        slot: str = "",
        append: StreamAppend | None = None,
    ) -> bool:
        """Add `token_delta` to the window's tokens and `spend_nano` to the spend, free the
        concurrency `slot` (if any), and append `append` to its stream (the usage ledger) in the
        same atomic call; True when the append happened.

        With `reserved`, the window is only touched if it still exists (a settlement that
        arrives after its window expired must not resurrect it with a negative count);
        without (a degraded admission reserved nothing), the tokens are counted anyway.
        Returns whether `append` was appended too (only a Redis store can).
        """
        ...

    async def settle_many(self, batch: list[Settlement]) -> list[bool | StoreUnavailable]:
        """`settle` each, in one round trip where the store has trips: per settlement, whether its
        append happened, or the error of that one settlement (its script failed on its
        arguments). Raises `StoreUnavailable` when the store could not be asked at all."""
        ...

    async def renew(self, inflight_key: str, slots: list[str], lease_until: float, lease_ttl: int, now: float) -> None:
        """Extend the leases of live slots (those not freed or expired meanwhile)."""
        ...

    async def read(self, window_key: str, spend_key: str, now: float) -> Counters: ...


class MemoryStore:
    """The store of a single gateway process, for running without Redis.

    Semantics are the Redis scripts', line by line. Every method runs without awaiting,
    so on one event loop each call is atomic; the store is not shared between processes.
    """

    def __init__(self) -> None:
        self._windows: dict[str, list[int]] = {}  # key -> [requests, tokens]
        self._spend: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._inflight: dict[str, dict[str, float]] = {}  # key -> slot -> lease end
        self._next_sweep = 0.0

    def _live(self, key: str, now: float) -> bool:
        expires = self._expiry.get(key)
        if expires is not None and expires <= now:
            self._windows.pop(key, None)
            self._spend.pop(key, None)
            del self._expiry[key]
            return False
        return True

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60
        for key in [k for k, at in self._expiry.items() if at <= now]:
            self._live(key, now)

    async def admit(self, req: AdmitRequest) -> Counters:
        now = req.now
        self._sweep(now)
        self._live(req.window_key, now)
        window = self._windows.get(req.window_key)
        requests, tokens = (window[0], window[1]) if window else (0, 0)
        spend = 0
        if req.budget_nano >= 0 and self._live(req.spend_key, now):
            spend = self._spend.get(req.spend_key, 0)
        if req.block and req.budget_nano >= 0 and spend >= req.budget_nano:
            return Counters(REFUSED_BUDGET, requests, tokens, spend)
        if req.rpm and requests + 1 > req.rpm:
            return Counters(REFUSED_REQUESTS, requests, tokens, spend)
        if req.tpm and tokens + req.tokens > req.tpm:
            return Counters(REFUSED_TOKENS, requests, tokens, spend)
        if req.concurrency:
            slots = self._inflight.setdefault(req.inflight_key, {})
            for slot in [s for s, until in slots.items() if until <= now]:
                del slots[slot]
            if len(slots) >= req.concurrency:
                return Counters(REFUSED_CONCURRENCY, requests, tokens, spend, len(slots))
            slots[req.slot] = req.lease_until
        if window is None:
            window = self._windows[req.window_key] = [0, 0]
            self._expiry[req.window_key] = now + req.window_ttl
        window[0] += 1
        window[1] += req.tokens
        return Counters(ADMITTED, window[0], window[1], spend)

    async def settle(
        self,
        window_key: str,
        spend_key: str,
        token_delta: int,
        reserved: bool,
        window_ttl: int,
        spend_nano: int,
        spend_ttl: int,
        now: float,
        inflight_key: str = "",
        slot: str = "",
        append: StreamAppend | None = None,
    ) -> bool:
        if slot:
            slots = self._inflight.get(inflight_key)
            if slots is not None:
                slots.pop(slot, None)
                if not slots:
                    del self._inflight[inflight_key]
        window = self._windows.get(window_key) if self._live(window_key, now) else None
        if window is not None:
            window[1] += token_delta
        elif not reserved:
            self._windows[window_key] = [0, token_delta]
            self._expiry[window_key] = now + window_ttl
        if spend_nano >= 0 and spend_ttl > 0:
            live = self._live(spend_key, now)
            self._spend[spend_key] = (self._spend.get(spend_key, 0) if live else 0) + spend_nano
            self._expiry[spend_key] = now + spend_ttl
        return False  # no stream here: the caller queues the event in process

    async def settle_many(self, batch: list[Settlement]) -> list[bool | StoreUnavailable]:
        for s in batch:
            await self.settle(s.window_key, s.spend_key, s.token_delta, s.reserved, s.window_ttl, s.spend_nano,
                              s.spend_ttl, s.now, s.inflight_key, s.slot, s.append)  # fmt: skip
        return [False] * len(batch)

    async def renew(self, inflight_key: str, slots: list[str], lease_until: float, lease_ttl: int, now: float) -> None:
        live = self._inflight.get(inflight_key, {})
        for slot in slots:
            if slot in live:
                live[slot] = lease_until

    async def read(self, window_key: str, spend_key: str, now: float) -> Counters:
        window = self._windows.get(window_key) if self._live(window_key, now) else None
        spend = self._spend.get(spend_key, 0) if self._live(spend_key, now) else 0
        return Counters(ADMITTED, window[0] if window else 0, window[1] if window else 0, spend)

"""The limiter facade: admit a request (reserve), settle it (real usage and cost), report usage.

    limiter = Limiter(RedisStore.from_url(url), fail_mode="open")       # or MemoryStore()
    admission = await limiter.admit(tenant, estimate_chat_tokens(body, settings.max_tokens_estimate))
    response_headers.update(limiter.headers(admission))
    ...                                                                 # the upstream call
    await limiter.settle(admission, usage.prompt_tokens, usage.completion_tokens, cost_usd(...))

The request path uses `settle_soon` (and `keep_soon`): the same settlement, queued and sent in
batches by a drain task (settle_queue.py), so the response never waits for Redis; `flush` sends
what is queued (the app calls it at shutdown, `usage` before reading).

`admit` raises `RateLimitExceeded` (kind "requests" or "tokens", `retry_after` = seconds to the
window's end, the rate-limit headers attached), `ConcurrencyLimitExceeded` (the tenant's
`concurrentRequests` are all in flight) or `BudgetExceeded` (budget with `onExceeded: block`);
with `warn` it admits and flags `over_budget`. Every admission must be settled, released when
the call failed, or kept (`keep`) when it was served without usage: on every path, streams and
client disconnects included. One that never is frees itself when its window ends (its
concurrency slot when its lease does: `LEASE_SECONDS`, renewed by `renew_leases` while alive).

Keys are `aigw:{<namespace>/<gateway>/<tenant>}:…` (`key_prefix`): gateways sharing a Redis
never share a tenant's counters.

Tenants without limits and budget cost no store call at all. When the store fails:
- `fail_mode="open"`: the request is admitted unlimited (`degraded=True`) and counted in
  `fail_open_total`; `fail_mode="closed"`: `LimitsUnavailable` (503), counted in
  `fail_closed_total`. A warning is logged at most once per `log_interval` seconds.
- After `trip_after` outages in a row (connection errors, timeouts) the store is not asked for `retry_interval` seconds,
  so a hung Redis delays at most a few requests by `op_timeout`, not all of them. Then the
  next request tries again: recovery needs no restart and nothing else remembers the failure.
  A store error of one call (a script failing on its arguments) fails that request by the fail
  mode and never trips: one tenant's odd request cannot switch off everybody's limits.
- A failed settlement never raises; it is counted in `settle_failed_total`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget

from ..errors import BudgetExceeded, ConcurrencyLimitExceeded, LimitsUnavailable, RateLimitExceeded
from .bounds import MAX_RESERVATION_TOKENS
from .cost import NANO, format_usd, usd_to_nano
from .settle_queue import Pending, SettleQueue
from .store import (
    ADMITTED,
    REFUSED_BUDGET,
    REFUSED_CONCURRENCY,
    REFUSED_REQUESTS,
    AdmitRequest,
    Counters,
    Settlement,
    Store,
    StoreUnavailable,
    StreamAppend,
)
from .windows import WINDOW_SECONDS, Period, PeriodCache, go_duration, iso_utc, window_start

log = logging.getLogger("aigw.limits")

WINDOW_TTL_GRACE = 120  # a window's counters outlive it this long, for late settlements
SPEND_TTL_GRACE = 7 * 86400  # a period's spend stays readable a week after it ends
# A concurrency slot is leased: a live request's lease is renewed every LEASE_SECONDS / 3 by its
# pod, so a pod that crashed (and can neither renew nor free its slots) holds them at most this long.
LEASE_SECONDS = 60
FailMode = Literal["open", "closed"]


@dataclass(slots=True)
class Admission:
    """One admitted request: what was reserved where, and what the store saw at that moment."""

    tenant: str
    tokens: int  # reserved against tokensPerMinute
    now: float
    window_start: int
    rpm: int  # 0: unlimited
    tpm: int
    requests_used: int = 0  # in the window, this request included
    tokens_used: int = 0  # reserved plus settled in the window, this reservation included
    budget: Budget | None = None
    period: Period | None = None
    spend_nano: int = 0  # in the period, before this request
    over_budget: bool = False  # admitted although the budget is spent (onExceeded: warn)
    degraded: bool = False  # the store failed and fail_mode is open: nothing was checked
    limited: bool = True  # False: the tenant has no limits and no budget (no store calls)
    settled: bool = False
    window_key: str = ""
    spend_key: str = ""
    concurrency: int = 0  # concurrentRequests; 0: unlimited
    inflight_key: str = ""
    slot: str = ""  # this request's slot in the in-flight set ("" when it holds none)

    @property
    def reset_seconds(self) -> float:
        return self.window_start + WINDOW_SECONDS - self.now


class _Throttled:
    """A warning logger that speaks at most once per interval, with a count of what it skipped."""

    __slots__ = ("interval", "level", "_next", "_skipped")

    def __init__(self, interval: float, level: int = logging.WARNING) -> None:
        self.interval = interval
        self.level = level
        self._next = 0.0
        self._skipped = 0

    def __call__(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return
        skipped, self._skipped, self._next = self._skipped, 0, now + self.interval
        suffix = f" ({skipped} more since the last message)" if skipped else ""
        log.log(self.level, message + suffix, *args)


async def _ready(admission: Admission) -> Admission:
    return admission


class Limiter:
    def __init__(
        self,
        store: Store,
        *,
        fail_mode: FailMode = "open",
        clock: Callable[[], float] = time.time,
        log_interval: float = 30.0,
        trip_after: int = 2,
        retry_interval: float = 0.5,
        key_scope: Callable[[], str] | None = None,
    ) -> None:
        self.store = store  # may be replaced at a config swap (a Redis URL appearing)
        self.fail_mode: FailMode = fail_mode  # may be changed at a config swap
        self.clock = clock
        # "<namespace>/<gateway>" of the config being served: part of every key, so gateways that
        # share a Redis never share counters. None (tests of the limiter alone): keys per tenant only.
        self.key_scope = key_scope
        self.trip_after = trip_after
        self.retry_interval = retry_interval
        self.fail_open_total = 0
        self.fail_closed_total = 0
        self.settle_failed_total = 0
        self.call_failed_total = 0  # admissions failed by a store error of that call only (not an outage)
        self._periods = PeriodCache()
        self._failures = 0  # consecutive store failures
        self._skip_until = 0.0  # monotonic time before which the store is not asked
        self._admit_log = _Throttled(log_interval)
        self._settle_log = _Throttled(log_interval)
        self._recovery_log = _Throttled(log_interval, logging.INFO)
        self._slot_ids = (f"{os.urandom(6).hex()}:{n}" for n in itertools.count())  # unique across pods
        self._held: dict[str, dict[str, None]] = {}  # inflight key -> this process's live slots
        self._next_renewal = 0.0
        self.settlements = SettleQueue(self._settle_batch)  # settle_soon's, sent in batches

    def key_prefix(self, tenant: str) -> str:
        """`aigw:{<namespace>/<gateway>/<tenant>}:`: the braces are the Redis Cluster hash tag, so
        one tenant's keys of one gateway share a slot and one script may touch them all."""
        scope = self.key_scope() if self.key_scope is not None else ""
        return f"aigw:{{{scope}/{tenant}}}:" if scope else f"aigw:{{{tenant}}}:"

    @property
    def store_healthy(self) -> bool:
        return self._failures == 0

    # --- admission ----------------------------------------------------------------------------

    async def admit(self, tenant: TenantConfig, tokens: int) -> Admission:
        return await self.start_admit(tenant, tokens)

    def start_admit(self, tenant: TenantConfig, tokens: int) -> Awaitable[Admission]:
        """`admit` in two halves: the store's script is sent now (RedisStore.admit),
        the admission (or its refusal) comes when the result is awaited, so the request's own
        work (its input guardrails) runs while Redis answers. A refusal known without the store
        (a request larger than the TPM limit, the store skipped in fail-closed mode) raises here.
        The result must be awaited before anything is sent upstream, and always awaited: the
        script may have reserved tokens that only the admission's settlement gives back."""
        limits, budget = tenant.limits, tenant.budget
        rpm = (limits.requests_per_minute or 0) if limits is not None else 0
        tpm = (limits.tokens_per_minute or 0) if limits is not None else 0
        concurrency = (limits.concurrent_requests or 0) if limits is not None else 0
        now = self.clock()
        start = window_start(now)
        if not rpm and not tpm and not concurrency and budget is None:
            return _ready(Admission(tenant.name, tokens, now, start, 0, 0, limited=False))
        tokens = min(max(int(tokens), 0), MAX_RESERVATION_TOKENS)
        if tpm and tokens > tpm:
            raise self._too_large(tenant.name, tpm, tokens, now, start)
        prefix = self.key_prefix(tenant.name)
        period = self._periods.get(budget.period, now) if budget is not None else None
        admission = Admission(
            tenant.name, tokens, now, start, rpm, tpm,
            budget=budget, period=period,
            window_key=f"{prefix}w:{start}",
            spend_key=f"{prefix}spend:{period.label}" if period is not None else f"{prefix}spend:-",
            concurrency=concurrency, inflight_key=f"{prefix}inflight",
        )  # fmt: skip
        if time.monotonic() < self._skip_until:
            return _ready(self._unavailable(admission, "not asked for a moment after repeated failures"))
        request = AdmitRequest(
            admission.window_key, admission.spend_key, rpm, tpm, tokens,
            round(budget.amount * NANO) if budget is not None else -1,
            budget is not None and budget.on_exceeded == "block",
            start + WINDOW_SECONDS - int(now) + WINDOW_TTL_GRACE, now,
        )  # fmt: skip
        if concurrency:
            request.inflight_key, request.concurrency, request.slot = admission.inflight_key, concurrency, next(self._slot_ids)
            request.lease_until, request.lease_ttl = now + LEASE_SECONDS, LEASE_SECONDS
        return self._admitted(admission, request, self.store.admit(request))  # RedisStore's leaves now

    async def _admitted(self, admission: Admission, request: AdmitRequest, answer: Awaitable[Counters]) -> Admission:
        concurrency, budget = admission.concurrency, admission.budget
        try:
            seen = await answer
        except StoreUnavailable as exc:
            if exc.outage:
                self._failed()
            else:
                self.call_failed_total += 1
            return self._unavailable(admission, str(exc))
        self._succeeded()
        admission.requests_used, admission.tokens_used = seen.requests, seen.tokens
        admission.spend_nano = seen.spend_nano
        if seen.outcome != ADMITTED:
            raise self._refusal(admission, seen)
        if concurrency:
            admission.slot = request.slot
            self._held.setdefault(admission.inflight_key, {})[request.slot] = None
        if budget is not None and seen.spend_nano >= request.budget_nano:
            admission.over_budget = True
        return admission

    def _unavailable(self, admission: Admission, reason: str) -> Admission:
        if self.fail_mode == "closed":
            self.fail_closed_total += 1
            self._admit_log("limits store unavailable, refusing requests (redisFailMode closed): %s", reason)
            raise LimitsUnavailable(
                "rate limits and budgets cannot be checked right now (the limits store is unreachable) "
                "and this gateway is configured to refuse requests then (redisFailMode: closed)",
                headers={"retry-after": "1"},
            )
        self.fail_open_total += 1
        self._admit_log("limits store unavailable, serving without limits (redisFailMode open): %s", reason)
        admission.degraded = True
        admission.tokens = 0  # nothing was reserved
        return admission

    def _failed(self) -> None:
        self._failures += 1
        if self._failures >= self.trip_after:
            self._skip_until = time.monotonic() + self.retry_interval

    def _succeeded(self) -> None:
        if self._failures:
            self._recovery_log("limits store reachable again after %d failed calls", self._failures)
            self._failures = 0
            self._skip_until = 0.0

    def _too_large(self, tenant: str, tpm: int, tokens: int, now: float, start: int) -> RateLimitExceeded:
        err = RateLimitExceeded(
            f"Request too large for tenant {tenant} on tokens per minute (TPM): Limit {tpm}, Requested {tokens} "
            "(the prompt's estimated tokens plus max_tokens, or the gateway's maxTokensEstimate when the request "
            "sets none). This request can never fit: reduce the input or max_tokens.",
            kind="tokens",
            retry_after=start + WINDOW_SECONDS - now,
            headers={"x-should-retry": "false"},
        )
        err.param = "max_tokens"
        return err

    def _refusal(self, admission: Admission, seen: Counters) -> Exception:
        who = f"tenant {admission.tenant}"
        if seen.outcome == REFUSED_CONCURRENCY:
            return ConcurrencyLimitExceeded(
                f"Concurrency limit reached for {who}: {seen.inflight} requests in flight, Limit "
                f"{admission.concurrency} (concurrentRequests). Retry when one of them has finished.",
                headers={"x-aigw-concurrency-limit": str(admission.concurrency)},
            )
        if seen.outcome == REFUSED_BUDGET:
            budget, period = admission.budget, admission.period
            assert budget is not None and period is not None
            admission.over_budget = True  # headers then say "x-aigw-budget-exceeded: block"
            headers = self.headers(admission)
            headers["x-should-retry"] = "false"  # retrying cannot help before the period ends
            return BudgetExceeded(
                f"Budget exceeded for {who}: spent ${format_usd(seen.spend_nano / NANO)} of "
                f"${format_usd(budget.amount)} in the {budget.period} period {period.label} (UTC). "
                f"The budget resets at {period.end_iso}.",
                headers=headers,
            )
        headers = self.headers(admission)
        retry_after = admission.reset_seconds
        if seen.outcome == REFUSED_REQUESTS:
            kind, name, limit, used, asked = "requests", "requests per minute (RPM)", admission.rpm, seen.requests, 1
        else:
            kind, name, limit, used = "tokens", "tokens per minute (TPM)", admission.tpm, seen.tokens
            asked = admission.tokens
        return RateLimitExceeded(
            f"Rate limit reached for {who} on {name}: Limit {limit}, Used {used}, Requested {asked}. "
            f"Please try again in {go_duration(retry_after)}.",
            kind=kind,
            retry_after=retry_after,
            headers=headers,
        )

    # --- settlement ---------------------------------------------------------------------------

    async def settle(self, admission: Admission, prompt_tokens: int, completion_tokens: int, cost_usd: float,
                     append: StreamAppend | None = None) -> bool:
        """Replace the reservation by the real usage (in the window it was reserved in) and add the
        cost to the spend of the period it was admitted in. Idempotent; never raises. `append` (the
        usage ledger's event) is appended in the same store call when the store can; the result
        says whether it was, so the caller can queue it otherwise."""
        s = self._settlement(admission, prompt_tokens, completion_tokens, cost_usd, append)
        if s is None:
            return False
        if time.monotonic() < self._skip_until:
            self._settle_failed("not asked for a moment after repeated failures")
            return False
        try:
            appended = await self.store.settle(
                s.window_key, s.spend_key, s.token_delta, s.reserved, s.window_ttl, s.spend_nano, s.spend_ttl,
                s.now, inflight_key=s.inflight_key, slot=s.slot, append=s.append,
            )  # fmt: skip
        except StoreUnavailable as exc:
            if exc.outage:
                self._failed()
            self._settle_failed(str(exc))
            return False
        except Exception as exc:  # settlement runs after the response: it must never break it
            self._settle_failed(f"{type(exc).__name__}: {exc}")
            return False
        self._succeeded()
        return bool(appended)

    def settle_soon(self, admission: Admission, prompt_tokens: int, completion_tokens: int, cost_usd: float,
                    append: StreamAppend | None = None, done: Callable[[bool], object] | None = None) -> bool:
        """`settle` without waiting for the store: queued, and sent with others in one round trip
        (settle_queue.py). True when queued: `done(appended)` is then called once it was sent
        (False also when it failed: the caller queues its ledger event elsewhere, as after a
        failed `settle`). False: nothing to settle (an unlimited tenant, settled already), and
        `done` is never called. Idempotent; never raises."""
        settlement = self._settlement(admission, prompt_tokens, completion_tokens, cost_usd, append)
        if settlement is None:
            return False
        self.settlements.put(Pending(settlement, done))
        return True

    def _settlement(self, admission: Admission, prompt_tokens: int, completion_tokens: int, cost_usd: float,
                    append: StreamAppend | None) -> Settlement | None:
        """Close the admission here (its concurrency slot is no longer renewed) and what the store
        must do for it; None when there is nothing to settle."""
        if admission.settled or not admission.limited:
            return None
        admission.settled = True
        if admission.slot:
            held = self._held.get(admission.inflight_key)
            if held is not None:
                held.pop(admission.slot, None)
                if not held:
                    del self._held[admission.inflight_key]
        # Bounded like the reservation: an upstream reporting absurd usage must not make the script fail.
        actual = min(max(int(prompt_tokens), 0) + max(int(completion_tokens), 0), MAX_RESERVATION_TOKENS)
        period = admission.period
        spend_ttl = int(period.end - admission.now) + SPEND_TTL_GRACE if period is not None else 0
        window_ttl = admission.window_start + WINDOW_SECONDS - int(admission.now) + WINDOW_TTL_GRACE
        return Settlement(
            admission.window_key, admission.spend_key, actual - admission.tokens, not admission.degraded,
            window_ttl, usd_to_nano(cost_usd), spend_ttl, self.clock(), admission.inflight_key, admission.slot, append,
        )  # fmt: skip

    async def _settle_batch(self, batch: list[Pending]) -> None:
        """Send a batch of queued settlements; the same rules as `settle`, per settlement. Never raises
        (but a cancellation, which fails the batch's settlements first)."""
        outcomes: list[bool | StoreUnavailable | str] = []
        try:
            if time.monotonic() < self._skip_until:
                outcomes = ["not asked for a moment after repeated failures"] * len(batch)
            else:
                outcomes = await self.store.settle_many([p.settlement for p in batch])  # type: ignore[assignment]
                self._succeeded()
        except StoreUnavailable as exc:
            if exc.outage:
                self._failed()
            outcomes = [str(exc)] * len(batch)
        except asyncio.CancelledError:  # the loop is going away: whether the scripts ran is unknown
            outcomes = ["cancelled"] * len(batch)
            raise
        except Exception as exc:  # settlement runs after the response: it must never break it
            outcomes = [f"{type(exc).__name__}: {exc}"] * len(batch)
        finally:
            for pending, outcome in zip(batch, outcomes or ["cancelled"] * len(batch)):
                appended = outcome is True
                if not isinstance(outcome, bool):
                    self._settle_failed(str(outcome))
                if pending.done is not None:
                    try:
                        pending.done(appended)
                    except Exception:  # one caller's callback must not cost the others theirs
                        log.exception("settlement callback failed")

    async def flush(self) -> None:
        """Wait until every settlement queued by `settle_soon` so far has been sent."""
        await self.settlements.flush()

    async def flush_for_shutdown(self, timeout: float = 5.0) -> None:
        """`flush`, bounded (each batch is bounded by the store's timeout, but a queue may hold many)."""
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            log.error("%d queued settlements not sent at shutdown", self.settlements.queued)

    async def release(self, admission: Admission, append: StreamAppend | None = None) -> bool:
        """Give the reservation back: the call failed before any usage was reported."""
        return await self.settle(admission, 0, 0, 0.0, append)

    def keep_soon(self, admission: Admission) -> None:
        """`keep` without waiting for the store."""
        if admission.slot:
            self.settle_soon(admission, admission.tokens, 0, 0.0)
        else:
            admission.settled = True

    async def keep(self, admission: Admission) -> None:
        """Close the admission keeping its reservation as the usage (served, but no usage came).
        Only a concurrency slot needs the store for that; otherwise nothing is asked."""
        if admission.slot:
            await self.settle(admission, admission.tokens, 0, 0.0)
        else:
            admission.settled = True

    async def renew_leases(self) -> None:
        """Extend the leases of this process's in-flight slots; a no-op until a third of the lease
        has passed since the last renewal. Called about every second by the app; never raises."""
        now = time.monotonic()
        if now < self._next_renewal or not self._held:
            return
        self._next_renewal = now + LEASE_SECONDS / 3
        until = self.clock() + LEASE_SECONDS
        for key, slots in list(self._held.items()):
            try:
                await self.store.renew(key, list(slots), until, LEASE_SECONDS, self.clock())
            except Exception as exc:  # Redis away: the leases run out; admissions then fail by mode anyway
                self._settle_log("concurrency leases not renewed: %s", f"{type(exc).__name__}: {exc}")
                return

    def _settle_failed(self, reason: str) -> None:
        self.settle_failed_total += 1
        self._settle_log("settlement lost (usage and spend not recorded): %s", reason)

    # --- reporting ----------------------------------------------------------------------------

    def headers(self, admission: Admission) -> dict[str, str]:
        """OpenAI's rate-limit headers for the tenant's limits, plus the budget headers:
        `x-aigw-budget-limit-usd`, `x-aigw-budget-remaining-usd` (before this request's cost),
        `x-aigw-budget-reset` (ISO time), and `x-aigw-budget-exceeded: warn` (or `block`, on the 429)
        when the budget is spent. A degraded admission gets none: nothing was counted."""
        headers: dict[str, str] = {}
        if admission.degraded or not admission.limited:
            return headers
        reset = go_duration(admission.reset_seconds)
        if admission.rpm:
            headers["x-ratelimit-limit-requests"] = str(admission.rpm)
            headers["x-ratelimit-remaining-requests"] = str(max(admission.rpm - admission.requests_used, 0))
            headers["x-ratelimit-reset-requests"] = reset
        if admission.tpm:
            headers["x-ratelimit-limit-tokens"] = str(admission.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(admission.tpm - admission.tokens_used, 0))
            headers["x-ratelimit-reset-tokens"] = reset
        budget, period = admission.budget, admission.period
        if budget is not None and period is not None:
            headers["x-aigw-budget-limit-usd"] = format_usd(budget.amount)
            headers["x-aigw-budget-remaining-usd"] = format_usd(max(budget.amount - admission.spend_nano / NANO, 0.0))
            headers["x-aigw-budget-reset"] = period.end_iso
            if admission.over_budget:
                headers["x-aigw-budget-exceeded"] = budget.on_exceeded
        return headers

    async def usage(self, tenant: TenantConfig) -> dict[str, Any]:
        """The tenant's current window and period, for `GET /v1/usage`. Raises `LimitsUnavailable`
        when the store cannot be read, whatever the fail mode: there is nothing true to show."""
        limits, budget = tenant.limits, tenant.budget
        rpm = (limits.requests_per_minute or 0) if limits is not None else 0
        tpm = (limits.tokens_per_minute or 0) if limits is not None else 0
        now = self.clock()
        start = window_start(now)
        period = self._periods.get(budget.period, now) if budget is not None else None
        seen = Counters(ADMITTED, 0, 0, 0)
        tracked = bool(rpm or tpm or budget is not None)
        if tracked:
            await self.flush()  # this process's queued settlements first: a read after a response sees it
            prefix = self.key_prefix(tenant.name)
            try:
                seen = await self.store.read(
                    f"{prefix}w:{start}", f"{prefix}spend:{period.label}" if period else f"{prefix}spend:-", now
                )
            except StoreUnavailable as exc:
                if exc.outage:
                    self._failed()
                raise LimitsUnavailable(
                    "usage cannot be read right now: the limits store is unreachable", headers={"retry-after": "1"}
                ) from exc
            self._succeeded()
        window = {"start": iso_utc(start), "end": iso_utc(start + WINDOW_SECONDS),
                  "reset_seconds": round(start + WINDOW_SECONDS - now, 3)}  # fmt: skip
        report: dict[str, Any] = {
            "tenant": tenant.name,
            "window": window,
            "requests": _counter(seen.requests if tracked else None, rpm),
            "tokens": _counter(seen.tokens if tracked else None, tpm),
            "budget": None,
        }
        if budget is not None and period is not None:
            spend = seen.spend_nano / NANO
            report["budget"] = {
                "amount_usd": budget.amount,
                "currency": budget.currency,
                "period": budget.period,
                "period_label": period.label,
                "period_start": iso_utc(period.start),
                "period_end": iso_utc(period.end),
                "spend_usd": round(spend, 9),
                "remaining_usd": round(max(budget.amount - spend, 0.0), 9),
                "exceeded": seen.spend_nano >= round(budget.amount * NANO),
                "on_exceeded": budget.on_exceeded,
            }
        return report


def _counter(used: int | None, limit: int) -> dict[str, int | None]:
    return {
        "used": used,
        "limit": limit or None,
        "remaining": max(limit - used, 0) if limit and used is not None else None,
    }

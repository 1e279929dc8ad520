"""The limiter facade: admit a request (reserve), settle it (real usage and cost), report usage.

    limiter = Limiter(RedisStore.from_url(url), fail_mode="open")       # or MemoryStore()
    admission = await limiter.admit(tenant, estimate_chat_tokens(body, settings.max_tokens_estimate))
    response_headers.update(limiter.headers(admission))
    ...                                                                 # the upstream call
    await limiter.settle(admission, usage.prompt_tokens, usage.completion_tokens, cost_usd(...))

`admit` raises `RateLimitExceeded` (kind "requests" or "tokens", `retry_after` = seconds to the
window's end, the rate-limit headers attached) or `BudgetExceeded` (budget with
`onExceeded: block`); with `warn` it admits and flags `over_budget`. Every admission must be
settled, or released when the call failed; one that never is frees itself when its window ends.

Tenants without limits and budget cost no store call at all. When the store fails:
- `fail_mode="open"`: the request is admitted unlimited (`degraded=True`) and counted in
  `fail_open_total`; `fail_mode="closed"`: `LimitsUnavailable` (503), counted in
  `fail_closed_total`. A warning is logged at most once per `log_interval` seconds.
- After `trip_after` failures in a row the store is not asked for `retry_interval` seconds,
  so a hung Redis delays at most a few requests by `op_timeout`, not all of them. Then the
  next request tries again: recovery needs no restart and nothing else remembers the failure.
- A failed settlement never raises; it is counted in `settle_failed_total`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aigw_config.config import TenantConfig
from aigw_config.kinds import Budget

from ..errors import BudgetExceeded, LimitsUnavailable, RateLimitExceeded
from .cost import NANO, format_usd, usd_to_nano
from .store import (
    ADMITTED,
    REFUSED_BUDGET,
    REFUSED_REQUESTS,
    AdmitRequest,
    Counters,
    Store,
    StoreUnavailable,
    StreamAppend,
)
from .windows import WINDOW_SECONDS, Period, PeriodCache, go_duration, iso_utc, window_start

log = logging.getLogger("aigw.limits")

WINDOW_TTL_GRACE = 120  # a window's counters outlive it this long, for late settlements
SPEND_TTL_GRACE = 7 * 86400  # a period's spend stays readable a week after it ends
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
    ) -> None:
        self.store = store  # may be replaced at a config swap (a Redis URL appearing)
        self.fail_mode: FailMode = fail_mode  # may be changed at a config swap
        self.clock = clock
        self.trip_after = trip_after
        self.retry_interval = retry_interval
        self.fail_open_total = 0
        self.fail_closed_total = 0
        self.settle_failed_total = 0
        self._periods = PeriodCache()
        self._failures = 0  # consecutive store failures
        self._skip_until = 0.0  # monotonic time before which the store is not asked
        self._admit_log = _Throttled(log_interval)
        self._settle_log = _Throttled(log_interval)
        self._recovery_log = _Throttled(log_interval, logging.INFO)

    @property
    def store_healthy(self) -> bool:
        return self._failures == 0

    # --- admission ----------------------------------------------------------------------------

    async def admit(self, tenant: TenantConfig, tokens: int) -> Admission:
        limits, budget = tenant.limits, tenant.budget
        rpm = (limits.requests_per_minute or 0) if limits is not None else 0
        tpm = (limits.tokens_per_minute or 0) if limits is not None else 0
        now = self.clock()
        start = window_start(now)
        if not rpm and not tpm and budget is None:
            return Admission(tenant.name, tokens, now, start, 0, 0, limited=False)
        tokens = max(int(tokens), 0)
        if tpm and tokens > tpm:
            raise self._too_large(tenant.name, tpm, tokens, now, start)
        prefix = f"aigw:{{{tenant.name}}}:"
        period = self._periods.get(budget.period, now) if budget is not None else None
        admission = Admission(
            tenant.name, tokens, now, start, rpm, tpm,
            budget=budget, period=period,
            window_key=f"{prefix}w:{start}",
            spend_key=f"{prefix}spend:{period.label}" if period is not None else f"{prefix}spend:-",
        )  # fmt: skip
        if time.monotonic() < self._skip_until:
            return self._unavailable(admission, "not asked for a moment after repeated failures")
        request = AdmitRequest(
            admission.window_key, admission.spend_key, rpm, tpm, tokens,
            round(budget.amount * NANO) if budget is not None else -1,
            budget is not None and budget.on_exceeded == "block",
            start + WINDOW_SECONDS - int(now) + WINDOW_TTL_GRACE, now,
        )  # fmt: skip
        try:
            seen = await self.store.admit(request)
        except StoreUnavailable as exc:
            self._failed()
            return self._unavailable(admission, str(exc))
        self._succeeded()
        admission.requests_used, admission.tokens_used = seen.requests, seen.tokens
        admission.spend_nano = seen.spend_nano
        if seen.outcome != ADMITTED:
            raise self._refusal(admission, seen)
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
        if admission.settled or not admission.limited:
            return False
        admission.settled = True
        actual = max(int(prompt_tokens), 0) + max(int(completion_tokens), 0)
        if time.monotonic() < self._skip_until:
            self._settle_failed("not asked for a moment after repeated failures")
            return False
        period = admission.period
        spend_ttl = int(period.end - admission.now) + SPEND_TTL_GRACE if period is not None else 0
        window_ttl = admission.window_start + WINDOW_SECONDS - int(admission.now) + WINDOW_TTL_GRACE
        try:
            appended = await self.store.settle(
                admission.window_key, admission.spend_key, actual - admission.tokens, not admission.degraded,
                window_ttl, usd_to_nano(cost_usd), spend_ttl, self.clock(), append,
            )  # fmt: skip
        except StoreUnavailable as exc:
            self._failed()
            self._settle_failed(str(exc))
            return False
        except Exception as exc:  # settlement runs after the response: it must never break it
            self._settle_failed(f"{type(exc).__name__}: {exc}")
            return False
        self._succeeded()
        return bool(appended)

    async def release(self, admission: Admission, append: StreamAppend | None = None) -> bool:
        """Give the reservation back: the call failed before any usage was reported."""
        return await self.settle(admission, 0, 0, 0.0, append)

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
            prefix = f"aigw:{{{tenant.name}}}:"
            try:
                seen = await self.store.read(
                    f"{prefix}w:{start}", f"{prefix}spend:{period.label}" if period else f"{prefix}spend:-", now
                )
            except StoreUnavailable as exc:
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

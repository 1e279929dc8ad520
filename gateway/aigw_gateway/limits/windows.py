"""Time windows of limits and budgets, and the formats they are shown in.

Rate limits count in fixed one-minute windows aligned to the clock's minute
(`[floor(now / 60) * 60, +60)`). That is a deliberate choice over sliding windows:

- it makes "admitted tokens per window <= limit" exact and checkable with one counter per
  tenant and window, updated atomically by one script; a sliding *log* needs one entry per
  request (memory grows with traffic) and a sliding *counter* interpolates between two
  windows, so its bound is only approximate;
- every replica derives the same window from its own clock, without coordination, and the
  reset time it reports (`x-ratelimit-reset-*`) is the true moment capacity comes back;
- a reservation that is never settled (a crashed worker) frees itself when its window ends.

The price is the known burst at a boundary: up to twice the limit can pass within one
minute straddling two windows. Each window on its own never exceeds the limit.

Budgets run in calendar periods in UTC: a day from midnight, an ISO week from Monday
midnight, a month from the 1st at midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

WINDOW_SECONDS = 60


def window_start(now: float) -> int:
    """Start (epoch seconds) of the one-minute window holding `now`."""
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS


@dataclass(frozen=True, slots=True)
class Period:
    """One calendar budget period: `[start, end)` in epoch seconds, and a readable label."""

    kind: str
    start: int
    end: int
    label: str
    end_iso: str  # when the budget resets, as the headers show it

    def contains(self, now: float) -> bool:
        return self.start <= now < self.end


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def calendar_period(kind: str, now: float) -> Period:
    """The daily, weekly (ISO, Monday first) or monthly UTC period holding `now`."""
    today = datetime.fromtimestamp(now, tz=UTC).date()
    if kind == "daily":
        first, after = today, today + timedelta(days=1)
        label = first.isoformat()
    elif kind == "weekly":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
        iso = first.isocalendar()
        label = f"{iso.year}-W{iso.week:02d}"
    elif kind == "monthly":
        first = today.replace(day=1)
        after = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        label = f"{first.year:04d}-{first.month:02d}"
    else:
        raise ValueError(f"unknown budget period {kind!r}")
    end = _epoch(after)
    return Period(kind, _epoch(first), end, label, iso_utc(end))


class PeriodCache:
    """Remembers the current period of each kind, so the hot path builds no datetimes."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: dict[str, Period] = {}

    def get(self, kind: str, now: float) -> Period:
        period = self._current.get(kind)
        if period is None or not period.contains(now):
            period = calendar_period(kind, now)
            self._current[kind] = period
        return period


def go_duration(seconds: float) -> str:
    """A duration the way OpenAI's `x-ratelimit-reset-*` headers write it: "12ms", "1.5s", "1m0s"."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = str(rest // 1000) if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def iso_utc(epoch: float) -> str:
    """`2025-02-01T00:00:00Z`."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

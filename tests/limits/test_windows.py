"""Windows, calendar periods and the duration format of the reset headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aigw_gateway.limits.windows import PeriodCache, calendar_period, go_duration, iso_utc, window_start


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def test_window_is_aligned_to_the_clock_minute():
    assert window_start(ts("2025-01-15T12:00:00")) == ts("2025-01-15T12:00:00")
    assert window_start(ts("2025-01-15T12:00:59.999")) == ts("2025-01-15T12:00:00")
    assert window_start(ts("2025-01-15T12:01:00")) == ts("2025-01-15T12:01:00")


@pytest.mark.parametrize(
    ("kind", "now", "start", "end", "label"),
    [
        ("daily", "2025-01-31T23:59:59", "2025-01-31T00:00:00", "2025-02-01T00:00:00", "2025-01-31"),
        ("daily", "2025-02-01T00:00:00", "2025-02-01T00:00:00", "2025-02-02T00:00:00", "2025-02-01"),
        # ISO weeks start on Monday: 2025-01-05 is a Sunday, 2025-01-06 a Monday.
        ("weekly", "2025-01-05T23:59:59", "2024-12-30T00:00:00", "2025-01-06T00:00:00", "2025-W01"),
        ("weekly", "2025-01-06T00:00:00", "2025-01-06T00:00:00", "2025-01-13T00:00:00", "2025-W02"),
        # The ISO year of a week can differ from the calendar year of its days.
        ("weekly", "2026-12-31T10:00:00", "2026-12-28T00:00:00", "2027-01-04T00:00:00", "2026-W53"),
        ("monthly", "2025-01-31T23:59:59", "2025-01-01T00:00:00", "2025-02-01T00:00:00", "2025-01"),
        ("monthly", "2025-02-01T00:00:00", "2025-02-01T00:00:00", "2025-03-01T00:00:00", "2025-02"),
        ("monthly", "2024-02-29T12:00:00", "2024-02-01T00:00:00", "2024-03-01T00:00:00", "2024-02"),
        ("monthly", "2025-12-31T23:59:59", "2025-12-01T00:00:00", "2026-01-01T00:00:00", "2025-12"),
    ],
)
def test_calendar_periods_in_utc(kind, now, start, end, label):
    period = calendar_period(kind, ts(now))
    assert (period.start, period.end, period.label) == (ts(start), ts(end), label)
    assert period.contains(ts(now))


def test_unknown_period_is_an_error():
    with pytest.raises(ValueError, match="yearly"):
        calendar_period("yearly", 0)


def test_period_cache_moves_on_at_the_boundary():
    cache = PeriodCache()
    jan = cache.get("monthly", ts("2025-01-31T23:59:59"))
    assert cache.get("monthly", ts("2025-01-01T00:00:00")) is jan
    feb = cache.get("monthly", ts("2025-02-01T00:00:00"))
    assert feb.label == "2025-02"
    assert cache.get("daily", ts("2025-02-01T00:00:00")).label == "2025-02-01"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (-1, "0s"), (0.012, "12ms"), (0.9994, "999ms"), (1, "1s"), (1.5, "1.5s"), (12, "12s"),
     (12.3456, "12.346s"), (59.9999, "1m0s"), (60, "1m0s"), (61.25, "1m1.25s"), (360, "6m0s"),
     (3600, "1h0m0s"), (3725, "1h2m5s")],
)  # fmt: skip
def test_go_duration_matches_openai_reset_headers(seconds, text):
    assert go_duration(seconds) == text


def test_iso_utc():
    assert iso_utc(ts("2025-02-01T00:00:00")) == "2025-02-01T00:00:00Z"

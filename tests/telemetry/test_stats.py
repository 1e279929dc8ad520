"""The pod report's sliding window: counts, errors and percentiles of recent samples, in a
bounded ring that stays small per sample (it is held per route and per target)."""

from __future__ import annotations

from aigw_gateway.telemetry.stats import MAX_SAMPLES, WINDOW_SECONDS, Series, TrafficStats


def test_window_counts_recent_samples_and_their_latency_percentiles() -> None:
    series = Series()
    series.add(100.0, 999.0, False)  # outside the window
    for i in range(1, 101):
        series.add(200.0, float(i), i % 10 == 0)  # 10 errors, their latencies left out of the percentiles
    n, errors, p50, p95 = series.window(200.0 + WINDOW_SECONDS - 1, WINDOW_SECONDS)
    assert (n, errors) == (100, 10)
    assert (series.total, series.errors) == (101, 10)
    assert p50 == 49.0 and p95 == 95.0  # of the 90 good latencies 1..99 without the tens


def test_the_ring_keeps_the_latest_samples_only() -> None:
    series = Series()
    for i in range(MAX_SAMPLES + 10):
        series.add(float(i), float(i), False)
    assert len(series) == MAX_SAMPLES and series.total == MAX_SAMPLES + 10
    n, _, p50, _ = series.window(float(MAX_SAMPLES + 9), float(MAX_SAMPLES + 10))
    assert n == MAX_SAMPLES
    assert p50 is not None and p50 >= 10 + (MAX_SAMPLES - 1) / 2 - 1  # the 10 oldest were overwritten


def test_a_full_ring_costs_under_20_bytes_a_sample() -> None:
    series = Series()
    for i in range(MAX_SAMPLES):
        series.add(float(i), 1.0, False)
    held = sum(buf.buffer_info()[1] * buf.itemsize for buf in (series._at, series._ms)) + len(series._error)
    assert held / MAX_SAMPLES < 20


def test_route_reports_include_targets_and_windows() -> None:
    now = [1000.0]
    stats = TrafficStats(clock=lambda: now[0])
    stats.route("r").series.add(now[0], 5.0, False)
    stats.attempt("r", "cred", "m", 4.0, True)
    (report,) = stats.route_reports(lambda *_: "closed")
    assert (report.name, report.requests, report.window_requests) == ("r", 1, 1)
    (target,) = report.targets
    assert (target.requests, target.errors, target.window_errors, target.latency_p50_ms) == (1, 1, 1, None)

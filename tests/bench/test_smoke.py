"""`bench/run --smoke`: the benchmark starts its processes, measures every target, prints the
table, and stops everything it started. No timing assertions: only that it ran end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("direct", "bare", "aigw")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_smoke_run_starts_measures_prints_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "bench-out"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run([str(ROOT / "bench" / "run"), "--smoke", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"

    # It printed the table: a header and one row per target, in order, direct (the baseline) first.
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| target |"))
    assert "req/s c=32" in header and "added p50 / p99 @300 req/s (ms)" in header and "peak RSS" in header
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and line != header]
    assert rows == list(TARGETS)
    assert (out / "table.md").read_text().strip() in proc.stdout

    # It measured: every test of every target has a result, each request went through (smoke "ok").
    summaries = [json.loads(line) for line in (out / "summaries.jsonl").read_text().splitlines()]
    assert [s["label"] for s in summaries] == list(TARGETS)
    for s in summaries:
        assert s["smoke"] == {"plain": "ok", "stream": "ok"}, s
        assert set(s["tests"]) == {"stream", "open_100", "open_300", "closed_c32", "closed_c128"}
        assert s["tests"]["closed_c32"]["rps"] > 0
    gateway = next(s for s in summaries if s["label"] == "aigw")
    assert gateway["peak_rss_per_process_mb"] > 0
    assert "aigw /metrics: aigw_requests_total" in proc.stdout
    # Issue 15's goals, each with its verdict.
    for goal in ("aigw req/s c=32 vs bare", "CPU per request c=32", "added p50 @300 req/s", "added p99 @300 req/s",
                 "stream time to first token added p50", "peak RSS per worker"):
        line = next(line for line in lines if line.startswith(f"- {goal}: "))
        assert line.endswith((" holds", " MISSED")), line

    # It stopped every process it started.
    started = [json.loads(line) for line in (out / "processes.jsonl").read_text().splitlines()]
    assert {p["name"] for p in started} >= {"fake-upstream", "redis", "bare", "aigw"}
    assert [p for p in started if _alive(p["pid"])] == []


def test_short_soak_samples_and_reports(tmp_path: Path) -> None:
    """`bench/run --soak`: measures the max, loads aigw open loop, samples RSS and fds, reports
    (the verdicts of a few seconds mean nothing, so only the report is checked)."""
    out = tmp_path / "soak-out"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run([str(ROOT / "bench" / "run"), "--soak", "6", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert "aigw soak: 6 s at" in proc.stdout, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    for row in ("| RSS per worker (MB) |", "| open fds (all processes) |", "- requests: "):
        assert row in proc.stdout
    goals = [line for line in proc.stdout.splitlines() if line.startswith(("- RSS growth", "- errors:", "- fds flat"))]
    assert len(goals) == 3 and all(g.endswith((" holds", " MISSED")) for g in goals), goals
    samples = [json.loads(line) for line in (out / "soak.jsonl").read_text().splitlines()]
    assert len(samples) >= 3 and all(s["rss_mb_worker_max"] > 0 and s["fds_total"] > 0 for s in samples)
    assert samples[-1]["plain_ok"] > 0 and samples[-1]["stream_ok"] > 0
    # each sample says what the box and the gateway saw, to tell whose a stall is
    assert all(s["gw_cpu_pct"] >= 0 and s["gw_requests"] >= 0 and "gw_slow_1s" in s for s in samples), samples
    assert "Intervals with client errors or a client p99 over 1 s: " in proc.stdout
    started = [json.loads(line) for line in (out / "processes.jsonl").read_text().splitlines()]
    assert [p for p in started if _alive(p["pid"])] == []

"""Turn run_bench.py summaries (one per target per round) into medians and a Markdown table.

Latency is reported as added over `direct` (the fake upstream called without any proxy) and
throughput as a ratio to `bare` (the Python pass-through), both measured in the same run.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

# The goals of issue 15 (performance, round two) for aigw, checked when aigw, bare and direct ran
# side by side in one run: throughput as a ratio to bare, latency added over direct.
GOAL_RPS_RATIO = 0.6
GOAL_CPU_MS_PER_REQ = 0.35
GOAL_ADDED_P50_300 = 1.0
GOAL_ADDED_P99_300 = 2.5
GOAL_TTFT_ADDED = 1.0
GOAL_RSS_MB = 80.0


@dataclass
class Aggregate:
    """Medians over rounds per label and test."""

    order: list[str] = field(default_factory=list)
    values: dict[str, dict[str, dict[str, list[float]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    rss: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    rss_one: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, summary: dict[str, Any]) -> None:
        label = summary["label"]
        if label not in self.order:
            self.order.append(label)
        bad = {k: v for k, v in summary.get("smoke", {}).items() if v != "ok"}
        if bad or "error" in summary:
            self.failures[label].append("; ".join(f"{k}: {v}" for k, v in bad.items()) or str(summary.get("error")))
        if "peak_rss_mb" in summary:
            self.rss[label].append(summary["peak_rss_mb"])
            self.rss_one[label].append(summary.get("peak_rss_per_process_mb", summary["peak_rss_mb"]))
        for test, t in summary.get("tests", {}).items():
            for k, v in t.items():
                if isinstance(v, (int, float)) and not k.endswith("_range"):
                    self.values[label][test][k].append(v)

    def get(self, label: str, test: str, key: str) -> float | None:
        vals = self.values.get(label, {}).get(test, {}).get(key)
        return statistics.median(vals) if vals else None

    def spread_pct(self, label: str, test: str, key: str) -> float | None:
        vals = self.values.get(label, {}).get(test, {}).get(key)
        if not vals or len(vals) < 2 or not statistics.median(vals):
            return None
        return 100 * (max(vals) - min(vals)) / 2 / statistics.median(vals)

    def errors(self, label: str) -> int:
        return int(sum(sum(t.get("errors", [])) for t in self.values.get(label, {}).values()))

    def added(self, label: str, test: str, key: str, baseline: str = "direct") -> float | None:
        v, b = self.get(label, test, key), self.get(baseline, test, key)
        return None if v is None or b is None else v - b

    def ratio(self, label: str, test: str, to: str = "bare") -> float | None:
        v, b = self.get(label, test, "rps"), self.get(to, test, "rps")
        return None if v is None or not b else v / b

    def cpu_ms_per_request(self, label: str, test: str) -> float | None:
        cpu, rps = self.get(label, test, "target_cpu_pct"), self.get(label, test, "rps")
        return None if cpu is None or not rps else 10.0 * cpu / rps  # (cpu% / 100) s per s / rps * 1000

    def peak_rss(self, label: str) -> tuple[float | None, float | None]:
        """(largest single process = per worker, whole process tree)."""
        return (max(self.rss_one[label]) if self.rss_one.get(label) else None,
                max(self.rss[label]) if self.rss.get(label) else None)


def _f(x: float | None, nd: int = 1, sign: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+,.{nd}f}" if sign else f"{x:,.{nd}f}"


def table(agg: Aggregate, conc: list[int], rates: list[int], workers: int) -> str:
    c_lo = conc[0] if conc else None
    heads = ["target"]
    heads += [f"req/s c={c}" for c in dict.fromkeys(conc)]
    heads += ["× bare" + (f" c={'/'.join(str(c) for c in dict.fromkeys(conc))}" if conc else "")]
    heads += [f"CPU ms/req c={c_lo}"] if c_lo else []
    heads += [f"added p50 / p99 @{r} req/s (ms)" for r in rates]
    heads += ["stream TTFB / first token added p50 (ms)", "peak RSS per worker (MB)" + (" (all)" if workers > 1 else ""), "errors"]
    rows = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for label in agg.order:
        if agg.failures.get(label) and not agg.values.get(label):
            rows.append(f"| {label} | failed: {agg.failures[label][0][:120]} |" + " |" * (len(heads) - 2))
            continue
        cells = [label + (f" ({workers} workers)" if workers > 1 and label not in ("direct",) else "")]
        for c in dict.fromkeys(conc):
            s = agg.spread_pct(label, f"closed_c{c}", "rps")
            cells.append(_f(agg.get(label, f"closed_c{c}", "rps"), 0) + (f" (±{s:.0f}%)" if s is not None else ""))
        cells.append(" / ".join(_f(agg.ratio(label, f"closed_c{c}"), 2) for c in dict.fromkeys(conc)) or "–")
        if c_lo:
            cells.append("–" if label == "direct" else _f(agg.cpu_ms_per_request(label, f"closed_c{c_lo}"), 2))
        for r in rates:
            t = f"open_{r}"
            if label == "direct":
                cells.append(f"({_f(agg.get(label, t, 'lat_p50_ms'), 2)} / {_f(agg.get(label, t, 'lat_p99_ms'), 2)} "
                             "absolute)")
            else:
                cells.append(f"{_f(agg.added(label, t, 'lat_p50_ms'), 2, True)} / "
                             f"{_f(agg.added(label, t, 'lat_p99_ms'), 2, True)}")
        if label == "direct":
            cells.append(f"({_f(agg.get(label, 'stream', 'ttfb_p50_ms'), 2)} / "
                         f"{_f(agg.get(label, 'stream', 'ttft_p50_ms'), 2)} absolute)")
        else:
            cells.append(f"{_f(agg.added(label, 'stream', 'ttfb_p50_ms'), 2, True)} / "
                         f"{_f(agg.added(label, 'stream', 'ttft_p50_ms'), 2, True)}")
        one, total = agg.peak_rss(label)
        cells.append("–" if one is None else _f(one, 0) + (f" ({_f(total, 0)})" if workers > 1 else ""))
        cells.append(str(agg.errors(label)) + (" + failed" if agg.failures.get(label) else ""))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def goals(agg: Aggregate) -> list[str]:
    """Issue 15's goals for aigw, each with the measured value and whether it holds."""
    if "aigw" not in agg.order:
        return []
    out = []

    def check(name: str, value: float | None, limit: float, higher_is_better: bool, unit: str = "") -> None:
        if value is None:
            out.append(f"- {name}: not measured")
            return
        ok = value >= limit if higher_is_better else value <= limit
        out.append(f"- {name}: {value:.2f}{unit} ({'≥' if higher_is_better else '≤'} {limit:g}{unit}) "
                   f"{'holds' if ok else 'MISSED'}")

    check("aigw req/s c=32 vs bare", agg.ratio("aigw", "closed_c32"), GOAL_RPS_RATIO, True, "×")
    check("CPU per request c=32", agg.cpu_ms_per_request("aigw", "closed_c32"), GOAL_CPU_MS_PER_REQ, False, " ms")
    check("added p50 @300 req/s", agg.added("aigw", "open_300", "lat_p50_ms"), GOAL_ADDED_P50_300, False, " ms")
    check("added p99 @300 req/s", agg.added("aigw", "open_300", "lat_p99_ms"), GOAL_ADDED_P99_300, False, " ms")
    check("stream time to first token added p50", agg.added("aigw", "stream", "ttft_p50_ms"), GOAL_TTFT_ADDED, False,
          " ms")
    ttfb = agg.added("aigw", "stream", "ttfb_p50_ms")
    if ttfb is not None:
        out.append(f"  (first byte added p50: {ttfb:.2f} ms; aigw holds a stream until its first chunk with "
                   "content, so its first byte comes with the first token, after the fake's role-only chunk)")
    check("peak RSS per worker", agg.peak_rss("aigw")[0], GOAL_RSS_MB, False, " MB")
    return out


def noise(agg: Aggregate) -> str:
    """Largest CPU share used by processes that are not part of the bench, during any test."""
    worst = 0.0
    for label in agg.order:
        for t in agg.values.get(label, {}).values():
            worst = max([worst] + t.get("other_cpu_pct", []))
    return (f"noise: other processes used up to {worst:.0f}% of one core during a test"
            + (" (noisy: compare ratios, not absolute figures)" if worst > 20 else ""))

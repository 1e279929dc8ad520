#!/usr/bin/env python3
"""aigw's benchmark: one command, everything on 127.0.0.1, every process stopped at the end.

    bench/run [--quick | --smoke] [--targets direct,bare,aigw,litellm] [--workers N] [--repeats R]
    bench/run --soak SECONDS [--workers N]
    bench/run --profile SECONDS
    bench/run --rss SECONDS
    bench/run --inproc N [--stream] [--cprofile]

Starts the fake upstream and a real Redis (CPU 0), then the targets (CPU 1; CPUs 0-1 with
--workers 2): the bare pass-through, aigw with a realistic config, and LiteLLM's proxy when it is
installed. Runs run_bench.py against each target in turn (direct first: it is the baseline), in
interleaved rounds, and prints a Markdown table: req/s at c=32 and c=128 and their ratio to the
bare pass-through, latency added over direct at 100 and 300 req/s, streaming TTFB added, peak RSS
per worker. Raw results go to .bench-out/<run>/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import report
import targets
from procs import Supervisor, run_captured

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

MODES: dict[str, dict[str, int | float]] = {  # closed-loop s, open-loop s, stream s, rest between tests s, rounds
    "full": {"duration": 15, "open_duration": 10.0, "stream_duration": 10.0, "pause": 1.0, "repeats": 3},
    "quick": {"duration": 5, "open_duration": 5.0, "stream_duration": 5.0, "pause": 1.0, "repeats": 1},
    "smoke": {"duration": 1, "open_duration": 1.0, "stream_duration": 1.0, "pause": 0.2, "repeats": 1},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="5 s per test, one round (about 2 minutes)")
    mode.add_argument("--smoke", action="store_true", help="1 s per test, direct+bare+aigw: for CI, not for numbers")
    mode.add_argument("--soak", type=float, metavar="SECONDS",
                      help="soak aigw at 70%% of its max throughput (20%% streams) for SECONDS; see soak.py")
    mode.add_argument("--rss", type=float, metavar="SECONDS",
                      help="aigw's RSS per worker idle, under SECONDS of plain and of stream load, and after; see rss.py")
    mode.add_argument("--inproc", type=int, metavar="N",
                      help="N chat requests through aigw's ASGI app in process: its CPU per request; see inproc.py")
    mode.add_argument("--profile", type=float, metavar="SECONDS",
                      help="py-spy aigw under load for SECONDS, print CPU per request by stage (profile_stages.py)")
    ap.add_argument("--targets", help=f"comma list from {','.join(targets.ALL_TARGETS)} "
                                      "(default: all available; smoke: direct,bare,aigw)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes of aigw, bare and litellm (default 1)")
    ap.add_argument("--repeats", type=int, help="interleaved rounds (default: 3 full, 1 quick/smoke)")
    ap.add_argument("--duration", type=int, help="closed-loop seconds per test")
    ap.add_argument("--open-duration", type=float, help="open-loop seconds per test")
    ap.add_argument("--stream-duration", type=float, help="stream-test seconds")
    ap.add_argument("--conc", default="32,128", help="closed-loop concurrencies (default 32,128)")
    ap.add_argument("--rates", default="100,300", help="open-loop rates in req/s (default 100,300)")
    ap.add_argument("--stream-rate", type=float, default=50, help="streams per second in the stream test")
    ap.add_argument("--closed-tool", choices=("auto", "wrk", "python"), default="auto",
                    help="closed-loop load generator (auto: wrk when installed)")
    ap.add_argument("--with-litellm", action="store_true",
                    help="pip install litellm[proxy] into .bench-venv/litellm if missing, and bench it")
    ap.add_argument("--stream", action="store_true", help="--inproc: streamed requests")
    ap.add_argument("--cprofile", action="store_true", help="--inproc: under cProfile, print the top functions")
    ap.add_argument("--top", type=int, default=45, help="--inproc --cprofile: how many functions to print")
    ap.add_argument("--out", help="output folder (default .bench-out/<time>-<mode>)")
    a = ap.parse_args(argv)
    a.mode = ("smoke" if a.smoke else "quick" if a.quick else "soak" if a.soak is not None
              else "profile" if a.profile is not None else "rss" if a.rss is not None
              else "inproc" if a.inproc is not None else "full")
    for k, v in MODES[a.mode if a.mode in MODES else "full"].items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    if a.targets is None:
        a.targets = "direct,bare,aigw" if a.mode == "smoke" else ",".join(targets.ALL_TARGETS)
    a.target_list = [t.strip() for t in a.targets.split(",") if t.strip()]
    unknown = set(a.target_list) - set(targets.KNOWN_TARGETS)
    if unknown:
        ap.error(f"unknown target(s) {', '.join(sorted(unknown))}; known: {', '.join(targets.KNOWN_TARGETS)}")
    if "direct" in a.target_list:  # the baseline goes first
        a.target_list.remove("direct")
        a.target_list.insert(0, "direct")
    if a.workers < 1:
        ap.error("--workers must be at least 1")
    return a


def run_bench(a: argparse.Namespace, infra: targets.Infra, target: targets.Target, rnd: int) -> dict:
    """One run_bench.py invocation (one round of every test against one target): its summary."""
    cmd = [infra.python, str(BENCH / "run_bench.py"), target.base_url, "--label", target.label,
           "--repeats", "1", "--duration", str(a.duration), "--open-duration", str(a.open_duration),
           "--stream-duration", str(a.stream_duration), "--stream-rate", str(a.stream_rate), "--conc", a.conc,
           "--rates", a.rates, "--pause", str(a.pause), "--closed-tool", a.closed_tool,
           "--raw-out", str(infra.out / "raw.jsonl")]
    if infra.layout.infra:
        cmd += ["--loadgen-cpus", infra.layout.infra]
    for pid in target.pids:
        cmd += ["--pid", str(pid)]
    for pid in infra.infra_pids:
        cmd += ["--upstream-pid", str(pid)]
    for h in target.headers:
        cmd += ["-H", h]
    print(f"# round {rnd + 1}/{a.repeats}: {target.label}", file=sys.stderr, flush=True)
    code, stdout = run_captured(cmd)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"label": target.label, "error": f"run_bench exited with {code} and no summary"}
    summary = json.loads(lines[-1])
    summary["round"] = rnd
    return summary


def scrape(url: str) -> tuple[dict[str, float], dict[str, float]]:
    """One /metrics scrape (a new connection each): sums per metric name, and requests by status."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    sums: dict[str, float] = {}
    by_status: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name_labels, value = line.rsplit(" ", 1)
        name = name_labels.split("{", 1)[0]
        sums[name] = sums.get(name, 0.0) + float(value)
        if name == "aigw_requests_total" and 'status="' in name_labels:
            status = name_labels.split('status="', 1)[1].split('"', 1)[0]
            by_status[status] = by_status.get(status, 0.0) + float(value)
    return sums, by_status


def metrics_check(target: targets.Target, raw_path: Path, workers: int) -> str:
    """Compare aigw's own /metrics (merged over workers) with what the clients saw completed.
    Scraped 2N+1 times: with N workers each scrape is served by one of them, and a value that
    differs between scrapes is a metric that is not merged across workers."""
    assert target.metrics_url is not None
    time.sleep(1.5)  # requests still in flight when the last closed-loop test stopped
    try:
        scrapes = [scrape(target.metrics_url) for _ in range(2 * workers + 1)]
    except OSError as e:
        return f"aigw /metrics: unreachable ({e})"
    sums, by_status = scrapes[-1]
    names = ("aigw_requests_total", "aigw_limits_fail_open_total", "aigw_ratelimit_rejections_total",
             "aigw_guardrail_actions_total")
    unstable = [n for n in names if len({s.get(n, 0.0) for s, _ in scrapes}) > 1]
    seen = 0
    for line in raw_path.read_text().splitlines() if raw_path.exists() else []:
        r = json.loads(line)
        if r.get("label") == "aigw":
            seen += int(r.get("ok") or 0)
    statuses = ", ".join(f"{k}: {int(v):,}" for k, v in sorted(by_status.items()))
    text = (f"aigw /metrics: aigw_requests_total {int(sums.get('aigw_requests_total', 0)):,} ({statuses}); "
            f"clients completed {seen:,} (plus smoke checks and requests in flight when a closed-loop test "
            f"stopped); fail-open {int(sums.get('aigw_limits_fail_open_total', 0))}, rate-limited "
            f"{int(sums.get('aigw_ratelimit_rejections_total', 0))}, guardrail actions "
            f"{int(sums.get('aigw_guardrail_actions_total', 0))}")
    if unstable:
        text += (f"; WARNING: {', '.join(unstable)} changed between {len(scrapes)} back-to-back scrapes "
                 f"({', '.join(str(int(s.get(unstable[0], 0))) for s, _ in scrapes)}): not merged across workers")
    return text


def log_findings(target: targets.Target) -> str | None:
    """Warnings and errors a target logged during the run (e.g. aigw serving without limits)."""
    if target.proc is None or not target.proc.log_path.exists():
        return None
    hits = [line for line in target.proc.log_path.read_text(errors="replace").splitlines()
            if any(w in line for w in ("WARNING", "ERROR", "CRITICAL", "Traceback"))]
    if not hits:
        return f"{target.label} log: no warnings or errors"
    distinct: dict[str, int] = {}
    for line in hits:
        msg = line.split(" ", 2)[-1] if line[:2] == "20" else line  # without the timestamp
        distinct[msg[:160]] = distinct.get(msg[:160], 0) + 1
    shown = "; ".join(f"{m} (x{n})" for m, n in list(distinct.items())[:3])
    return f"{target.label} log: {len(hits)} warning/error lines, e.g. {shown}"


def benchmark(a: argparse.Namespace, infra: targets.Infra) -> int:
    if "litellm" in a.target_list and a.with_litellm:
        targets.install_litellm(infra.python)
    started: list[targets.Target] = []
    agg = report.Aggregate()
    for label in a.target_list:
        try:
            t = targets.start_target(label, infra)
        except RuntimeError as e:  # the others are still worth measuring; the run fails at the end
            print(f"# {label} did not start: {e}", file=sys.stderr, flush=True)
            agg.add({"label": label, "error": f"did not start ({str(e).splitlines()[0][:100]})"})
            continue
        if t is not None:
            started.append(t)
    with open(infra.out / "summaries.jsonl", "a") as summaries:
        for rnd in range(a.repeats):
            for t in started:
                s = run_bench(a, infra, t, rnd)
                summaries.write(json.dumps(s) + "\n")
                summaries.flush()
                agg.add(s)
    conc = [int(x) for x in a.conc.split(",") if x]
    rates = [int(float(x)) for x in a.rates.split(",") if x]
    lines = [f"aigw bench ({a.mode}, {a.repeats} round{'s' if a.repeats > 1 else ''}, {a.workers} worker"
             f"{'s' if a.workers > 1 else ''}; gateway CPUs {infra.layout.target or 'any'}, upstream + Redis + "
             f"load generator CPU {infra.layout.infra or 'any'}; medians over rounds)", "",
             report.table(agg, conc, rates, a.workers), ""]
    lines += report.goals(agg)
    aigw = next((t for t in started if t.label == "aigw"), None)
    if aigw is not None:
        lines.append("- " + metrics_check(aigw, infra.out / "raw.jsonl", a.workers))
    for t in started:
        found = log_findings(t)
        if found:
            lines.append("- " + found)
    lines.append("- " + report.noise(agg))
    lines.append(f"- raw results: {infra.out.relative_to(ROOT) if infra.out.is_relative_to(ROOT) else infra.out}/")
    text = "\n".join(lines)
    (infra.out / "table.md").write_text(text + "\n")
    print(text, flush=True)
    failed = [label for label in agg.order if agg.failures.get(label)]
    if failed:
        print(f"# failed: {', '.join(failed)} (see the logs in {infra.out})", file=sys.stderr)
    return 1 if failed or not agg.order else 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(a.out) if a.out else ROOT / ".bench-out" / f"{stamp}-{a.mode}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps({k: v for k, v in vars(a).items()}, default=str) + "\n")
    layout = targets.Layout.for_workers(a.workers)
    try:
        with Supervisor(out) as sup:
            infra = targets.Infra(sup=sup, out=out, python=sys.executable, workers=a.workers, layout=layout)
            targets.start_upstream(infra)
            if a.mode in ("soak", "profile", "rss", "inproc") or {"aigw", "aigw-ledger"} & set(a.target_list):
                targets.start_redis(infra)
            if a.mode == "soak":
                import soak

                return soak.soak(a, infra)
            if a.mode == "inproc":
                import inproc

                return inproc.inproc(a, infra)
            if a.mode == "rss":
                import rss

                return rss.probe(a, infra)
            if a.mode == "profile":
                import profile_stages

                return profile_stages.profile(a, infra)
            return benchmark(a, infra)
    except KeyboardInterrupt:
        print("# interrupted: every process the bench started is stopped", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"# bench failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())

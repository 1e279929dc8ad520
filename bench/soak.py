"""Soak: aigw at 70 % of its measured max throughput, streams mixed in, for a given time.

    bench/run --soak 600 [--workers N]

1. Measure aigw's max: closed loop, plain requests (c=32) and streams (c=128), a few seconds each,
   with the Python load generator the soak then uses (it shares CPU 0 with the upstream and Redis).
   The capacity of the mix is 1 / (0.8 / plain_max + 0.2 / stream_max) requests per second.
   Then the mix's open-loop maximum: offered 1.2 × that for a few seconds, what the gateway
   completes (its own /metrics). Open loop costs the gateway more per request than closed loop
   (events arrive one per loop turn instead of in batches, a stream's chunks one by one): 70 % of
   the closed-loop max kept the gateway at 100 % of its core, an overload, not a soak.
2. Open loop at 70 % of the smaller of the two (80 % plain, 20 % streams: two load generators on
   the infra CPU).
3. Every ~10 s: RSS and open file descriptors of every gateway process, and the load
   generators' progress (requests done, errors, interval latency).
4. RSS at the end of the warm-up (the first 10 % of the run, 10 to 60 s) against the end; errors;
   fds; aigw's own /metrics and warnings in its log.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gateway_config
import targets
from procs import cmdline, open_fds, process_tree, rss_kb, taskset

BENCH = Path(__file__).resolve().parent
STREAM_SHARE = 0.2
# the 70 %; AIGW_SOAK_SHARE=0.5 tells a leak (grows at any load) from an overload (grows
# only while offered more than the box sustains: the generators share CPU 0 with upstream and Redis)
LOAD_SHARE = float(os.environ.get("AIGW_SOAK_SHARE", "0.7"))
OVERLOAD = 1.2  # the open-loop maximum is what the gateway completes when offered this much of the closed-loop one
GOAL_GROWTH_PCT = 5.0
# fds are flat when the idle count after the load is the idle count before it (a few kept-alive
# connections may come or go). Under load the count follows the clients' concurrency (open loop:
# one connection per request in flight, which a latency burst raises), so it is reported, not judged.
FD_SLACK = 4
# The upstream pool closes a connection idle for 30 s, in a sweep that itself runs every 30 s
# (aiohttp's connector): one may live up to 60 s after its last answer.
IDLE_WAIT = 75.0


class LoadGen:
    """One loadgen.py process; its progress lines are read while it runs."""

    def __init__(self, name: str, infra: targets.Infra, url: str, body: Path, args: list[str], headers: list[str]):
        argv = [*taskset(infra.layout.infra), infra.python, str(BENCH / "loadgen.py"), url, "--body-file", str(body),
                *args]
        for h in headers:
            argv += ["-H", h]
        self.name = name
        self.last: dict[str, Any] = {}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        infra.sup.closers.append(self.kill)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.startswith("{"):
                try:
                    self.last = json.loads(line)
                except ValueError:
                    pass

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return {"error": f"{self.name}: load generator did not finish"}
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {"error": f"{self.name}: no result (exit {self.proc.returncode})"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _closed_max(infra: targets.Infra, gw: targets.Target, body: Path, conc: int, seconds: float, stream: bool) -> float:
    args = ["--mode", "closed", "--concurrency", str(conc), "--duration", str(seconds), "--timeout", "10"]
    lg = LoadGen("max", infra, gw.base_url + "/chat/completions", body, args + (["--stream"] if stream else []),
                 gw.headers)
    res = lg.result(seconds + 60)
    if "error" in res or not res.get("rps"):
        raise RuntimeError(f"could not measure aigw's max throughput: {res}")
    return float(res["rps"])


def _sample(root_pid: int) -> dict[str, Any]:
    procs = {p: (rss_kb(p), open_fds(p)) for p in process_tree(root_pid)}
    procs = {p: v for p, v in procs.items() if v[0] > 0}
    # Workers are the processes that serve; the uvicorn supervisor of a multi-worker gateway and
    # multiprocessing's helpers are reported in the totals only.
    workers = {p: v for p, v in procs.items()
               if len(procs) == 1 or "multiprocessing" in cmdline(p) and "resource_tracker" not in cmdline(p)}
    workers = workers or procs
    return {"rss_mb_total": round(sum(v[0] for v in procs.values()) / 1024, 1),
            "rss_mb_worker_max": round(max(v[0] for v in workers.values()) / 1024, 1),
            "fds_total": sum(v[1] for v in procs.values()),
            "fds_worker_max": max(v[1] for v in workers.values()),
            "processes": len(procs)}


def _cpu_ticks() -> dict[str, tuple[int, int]]:
    """Per CPU of the box: (busy + idle ticks, steal ticks) from /proc/stat; {} where it is absent."""
    out: dict[str, tuple[int, int]] = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3:4].isdigit():
                    name, *vals = line.split()
                    ticks = [int(v) for v in vals[:8]]
                    out[name] = (sum(ticks), ticks[7] if len(ticks) > 7 else 0)
    except OSError:
        pass
    return out


def _proc_ticks(root_pid: int) -> int:
    """User + system ticks of a process tree (the gateway and its workers)."""
    total = 0
    for pid in process_tree(root_pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def _gateway_durations(url: str) -> tuple[float, float]:
    """(requests, of which slower than 1 s) as aigw's own duration histogram has them."""
    import urllib.request

    count = slow_le = 0.0
    with urllib.request.urlopen(url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("aigw_request_duration_seconds_count"):
                count += float(line.rsplit(" ", 1)[1])
            elif line.startswith("aigw_request_duration_seconds_bucket") and 'le="1.0"' in line:
                slow_le += float(line.rsplit(" ", 1)[1])
    return count, count - slow_le


def _metrics(url: str) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("aigw_requests_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            out[f"status_{status}"] = out.get(f"status_{status}", 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith(("aigw_limits_fail_open_total ", "aigw_ratelimit_rejections_total{")):
            key = line.split("{", 1)[0].split(" ", 1)[0]
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def _watch(gens: list[LoadGen], gw_pid: int, seconds: float, every: float, path: Path,
           metrics_url: str | None = None) -> list[dict[str, Any]]:
    """Sample the gateway and the load generators' progress every `every` s while they run; with
    each sample the box's view of the interval (steal time per CPU, the gateway's CPU) and the
    gateway's own (requests it saw take over 1 s), so a stall can be told apart: the box's (steal,
    an idle gateway), the gateway's (busy or slow by its own clock) or the load generator's."""
    samples: list[dict[str, Any]] = []
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    cpu_prev, gw_prev, t_prev = _cpu_ticks(), _proc_ticks(gw_pid), time.monotonic()
    dur_prev = _safe_durations(metrics_url)
    t0 = time.monotonic()
    lag = min(1.0, every / 4)  # sample just after the load generators' progress lines
    k = 0
    with open(path, "w") as log:
        while any(g.proc.poll() is None for g in gens):
            k += 1
            if every * k > seconds:
                break
            time.sleep(max(0.0, t0 + every * k + lag - time.monotonic()))
            t = time.monotonic() - t0
            s = {"t": round(t, 1), **_sample(gw_pid)}
            cpu_now, gw_now, t_now = _cpu_ticks(), _proc_ticks(gw_pid), time.monotonic()
            for name, (total, steal) in cpu_now.items():
                d_total = total - cpu_prev.get(name, (0, 0))[0]
                if d_total > 0:
                    s[f"steal_pct_{name}"] = round(100 * (steal - cpu_prev[name][1]) / d_total, 1)
            s["gw_cpu_pct"] = round(100 * (gw_now - gw_prev) / hz / max(1e-6, t_now - t_prev), 1)
            dur_now = _safe_durations(metrics_url)
            if dur_now is not None and dur_prev is not None:
                s["gw_requests"] = int(dur_now[0] - dur_prev[0])
                s["gw_slow_1s"] = int(dur_now[1] - dur_prev[1])
            cpu_prev, gw_prev, t_prev, dur_prev = cpu_now, gw_now, t_now, dur_now
            for g in gens:
                s[f"{g.name}_ok"] = g.last.get("ok", 0)
                s[f"{g.name}_errors"] = g.last.get("errors", 0)
                s[f"{g.name}_p99_ms"] = g.last.get("lat_p99_ms")
                s[f"{g.name}_interval_errors"] = g.last.get("interval_errors", 0)
            samples.append(s)
            log.write(json.dumps(s) + "\n")
            log.flush()
            print(f"# t={t:5.0f}s rss/worker {s['rss_mb_worker_max']:.1f} MB (all {s['rss_mb_total']:.1f}) "
                  f"fds {s['fds_total']} ok {s['plain_ok']:,}+{s['stream_ok']:,} errors "
                  f"{s['plain_errors'] + s['stream_errors']} p99 {s['plain_p99_ms']} / {s['stream_p99_ms']} ms; gateway CPU "
                  f"{s.get('gw_cpu_pct')} %, over 1 s by its clock {s.get('gw_slow_1s', '?')}, steal max "
                  f"{max((v for k, v in s.items() if k.startswith('steal_pct_')), default=0):g} %",
                  file=sys.stderr, flush=True)
    return samples


def _safe_durations(url: str | None) -> tuple[float, float] | None:
    if not url:
        return None
    try:
        return _gateway_durations(url)
    except (OSError, ValueError):
        return None


def _stalls(samples: list[dict[str, Any]]) -> list[str]:
    """One line per interval with client errors or a client p99 over 1 s, with what the box and
    the gateway saw in it."""
    out = []
    for s in samples:
        errs = s.get("plain_interval_errors", 0) + s.get("stream_interval_errors", 0)
        p99 = max(s.get("plain_p99_ms") or 0, s.get("stream_p99_ms") or 0)
        if errs or p99 > 1000:
            steal = ", ".join(f"{k[10:]} {v:g} %" for k, v in s.items() if k.startswith("steal_pct_"))
            out.append(f"t={s['t']:.0f} s: client errors {errs}, client p99 {p99:g} ms; gateway CPU "
                       f"{s.get('gw_cpu_pct', '?')} %, gateway-timed requests over 1 s: {s.get('gw_slow_1s', '?')} "
                       f"of {s.get('gw_requests', '?')}; steal {steal or '?'}")
    return out


def _open_mix(infra: targets.Infra, gw: targets.Target, plain: Path, stream: Path, rate: float, seconds: float,
              every: float) -> list[LoadGen]:
    """The soak's traffic: two open-loop load generators, plain and streams, `rate` req/s in all."""
    common = ["--mode", "open", "--duration", str(seconds), "--timeout", "10", "--progress", str(every),
              "--max-inflight", "4000"]
    url = gw.base_url + "/chat/completions"
    return [LoadGen("plain", infra, url, plain, common + ["--rate", f"{rate * (1 - STREAM_SHARE):.1f}"], gw.headers),
            LoadGen("stream", infra, url, stream, common + ["--rate", f"{rate * STREAM_SHARE:.1f}", "--stream"],
                    gw.headers)]


def _open_capacity(infra: targets.Infra, gw: targets.Target, plain: Path, stream: Path, rate: float, seconds: float,
                   ) -> tuple[float, float]:
    """(the mix's open-loop maximum: requests per second the gateway completes when offered more
    than it can take, its CPU share meanwhile): the soak's own traffic at `rate` (above the
    closed-loop capacity) for `seconds`, counted by the gateway's own /metrics over the middle
    half. The load generators are stopped after it (the overloaded gateway is not the soak's)."""
    assert gw.proc is not None and gw.metrics_url is not None
    hz = os.sysconf("SC_CLK_TCK")
    gens = _open_mix(infra, gw, plain, stream, rate, seconds, seconds)
    time.sleep(seconds / 4)
    t0, c0, n0 = time.monotonic(), _proc_ticks(gw.proc.pid), _gateway_durations(gw.metrics_url)[0]
    time.sleep(seconds / 2)
    t1, c1, n1 = time.monotonic(), _proc_ticks(gw.proc.pid), _gateway_durations(gw.metrics_url)[0]
    for g in gens:
        g.kill()
    return (n1 - n0) / max(1e-6, t1 - t0), (c1 - c0) / hz / max(1e-6, t1 - t0)


def soak(a: argparse.Namespace, infra: targets.Infra) -> int:
    seconds = float(a.soak)
    # The maxima are measured on a gateway of their own: the overload leaves a high-water mark in
    # its RSS and connections behind, which would hide the soak's growth. The soak starts afresh.
    gw = targets._start_aigw(infra, label="aigw-max")
    assert gw.proc is not None and gw.metrics_url is not None
    body = json.loads((BENCH / "body_chat.json").read_text())
    plain, stream = infra.out / "plain.json", infra.out / "stream.json"
    plain.write_text(json.dumps(dict(body, model=gateway_config.PLAIN_MODEL)))
    stream.write_text(json.dumps(dict(body, model=gateway_config.STREAM_MODEL)))  # loadgen adds "stream"
    probe = max(3.0, min(10.0, seconds / 20))
    print(f"# soak: measuring aigw's max ({probe:.0f} s plain c=32, {probe:.0f} s streams c=128)", file=sys.stderr)
    # The max with the load generator the soak itself uses: it shares CPU 0 with the upstream and
    # Redis and costs more of it than wrk, so 70 % of a max measured with wrk overloaded the soak.
    plain_max = _closed_max(infra, gw, plain, 32, probe, False)
    time.sleep(2)
    stream_max = _closed_max(infra, gw, stream, 128, probe, True)
    closed_capacity = 1.0 / ((1 - STREAM_SHARE) / plain_max + STREAM_SHARE / stream_max)
    time.sleep(2)
    open_capacity, share = _open_capacity(infra, gw, plain, stream, OVERLOAD * closed_capacity, max(8.0, probe))
    capacity = min(closed_capacity, open_capacity)
    rate = LOAD_SHARE * capacity
    infra.sup.stop(gw.proc)
    gw = targets.start_target("aigw", infra)
    assert gw is not None and gw.proc is not None and gw.metrics_url is not None
    time.sleep(3)
    idle_before = _sample(gw.proc.pid)
    every = min(10.0, max(1.0, seconds / 20))
    warmup = min(60.0, max(10.0, seconds / 10)) if seconds >= 30 else seconds / 3
    head = (f"aigw soak: {seconds:.0f} s at {rate:,.0f} req/s = {LOAD_SHARE:.0%} of the mix's max {capacity:,.0f} "
            f"(open loop: {open_capacity:,.0f} req/s completed when offered {OVERLOAD * closed_capacity:,.0f}, "
            f"gateway CPU {share:.0%}; closed loop: {closed_capacity:,.0f} from plain max "
            f"{plain_max:,.0f} req/s, stream max {stream_max:,.0f} streams/s), {STREAM_SHARE:.0%} streams "
            f"(20 chunks 5 ms apart), {a.workers} worker{'s' if a.workers > 1 else ''}; warm-up {warmup:.0f} s")
    print("# " + head, file=sys.stderr, flush=True)
    gens = _open_mix(infra, gw, plain, stream, rate, seconds, every)
    samples = _watch(gens, gw.proc.pid, seconds, every, infra.out / "soak.jsonl", gw.metrics_url)
    results = [g.result(60) for g in gens]
    # Idle again: kept-alive connections (the upstream pool's close after 30 s idle) may take a
    # while to go; wait for the count to come back, at most IDLE_WAIT seconds.
    deadline = time.monotonic() + IDLE_WAIT
    time.sleep(3)
    idle_after = _sample(gw.proc.pid)
    while idle_after["fds_total"] - idle_before["fds_total"] > FD_SLACK and time.monotonic() < deadline:
        time.sleep(1)
        idle_after = _sample(gw.proc.pid)
    return _report(a, infra, gw, head, samples, results, idle_before, idle_after, warmup, rate)


def _report(a: argparse.Namespace, infra: targets.Infra, gw: targets.Target, head: str, samples: list[dict[str, Any]],
            results: list[dict[str, Any]], idle_before: dict[str, Any], idle_after: dict[str, Any], warmup: float,
            rate: float) -> int:
    after_warmup = [s for s in samples if s["t"] >= warmup] or samples
    if not after_warmup:
        print("aigw soak: no samples (run too short?)")
        return 1
    start, end = after_warmup[0], after_warmup[-1]
    peak = max(s["rss_mb_worker_max"] for s in samples)
    growth = 100 * (end["rss_mb_worker_max"] - start["rss_mb_worker_max"]) / start["rss_mb_worker_max"]
    growth_total = 100 * (end["rss_mb_total"] - start["rss_mb_total"]) / start["rss_mb_total"]
    fds = [s["fds_total"] for s in after_warmup]
    half = max(1, len(after_warmup) // 2)
    fd_first, fd_second = max(fds[:half]), max(fds[half:] or fds[:half])
    fds_ok = idle_after["fds_total"] - idle_before["fds_total"] <= FD_SLACK
    errors = sum(int(r.get("errors", 0)) for r in results)
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in (r.get("error_kinds") or {}).items():
            kinds[k] = kinds.get(k, 0) + v
    ok = sum(int(r.get("ok", 0)) for r in results)
    mem_ok = growth <= GOAL_GROWTH_PCT
    try:
        m = _metrics(gw.metrics_url or "")
    except OSError as e:
        m = {"unreachable": 1.0}
        print(f"# /metrics: {e}", file=sys.stderr)
    statuses = ", ".join(f"{k[7:]}: {int(v):,}" for k, v in sorted(m.items()) if k.startswith("status_"))
    warn = sum(1 for line in (infra.out / "aigw.log").read_text(errors="replace").splitlines()
               if any(w in line for w in ("WARNING", "ERROR", "Traceback")))
    plain, stream = results
    lines = [head, "",
             "| | after warm-up | end | growth |", "|---|---|---|---|",
             f"| RSS per worker (MB) | {start['rss_mb_worker_max']:.1f} (t={start['t']:.0f} s) | "
             f"{end['rss_mb_worker_max']:.1f} (t={end['t']:.0f} s) | {growth:+.1f} % |",
             f"| RSS all processes (MB) | {start['rss_mb_total']:.1f} | {end['rss_mb_total']:.1f} | {growth_total:+.1f} % |",
             f"| open fds (all processes) | {start['fds_total']} | {end['fds_total']} | "
             f"{end['fds_total'] - start['fds_total']:+d} (min {min(fds)}, max {max(fds)} under load) |",
             f"| open fds idle (before / after the load) | {idle_before['fds_total']} | {idle_after['fds_total']} | "
             f"{idle_after['fds_total'] - idle_before['fds_total']:+d} |", "",
             f"- requests: {ok:,} completed (plain {plain.get('ok', 0):,} at {plain.get('rps', 0):,.0f} req/s, "
             f"streams {stream.get('ok', 0):,}), offered {rate:,.0f} req/s; errors {errors}"
             + (f" ({kinds})" if kinds else ""),
             f"- latency over the whole run: plain p50 {plain.get('lat_p50_ms')} / p99 {plain.get('lat_p99_ms')} ms; "
             f"stream TTFB p50 {stream.get('ttfb_p50_ms')} / p99 {stream.get('ttfb_p99_ms')} ms",
             f"- peak RSS per worker {peak:.1f} MB; aigw /metrics requests by status: {statuses or '–'}; fail-open "
             f"{int(m.get('aigw_limits_fail_open_total', 0))}, rate-limited "
             f"{int(m.get('aigw_ratelimit_rejections_total', 0))}; warning/error lines in aigw's log: {warn}",
             f"- samples: {len(samples)} every ~{samples[1]['t'] - samples[0]['t'] if len(samples) > 1 else 0:.0f} s; "
             f"RSS per worker median {statistics.median(s['rss_mb_worker_max'] for s in after_warmup):.1f} MB; "
             f"raw: {infra.out}/soak.jsonl",
             f"- fds under load (the clients' connections, reported, not judged): max {fd_first} in the first half, "
             f"{fd_second} in the second",
             "", "Goals (issue 15):",
             f"- RSS growth after warm-up: {growth:+.1f} % (≤ {GOAL_GROWTH_PCT:g} %) {'holds' if mem_ok else 'MISSED'}",
             f"- errors: {errors} (0) {'holds' if errors == 0 else 'MISSED'}",
             f"- fds flat: idle {idle_before['fds_total']} → {idle_after['fds_total']} (growth ≤ {FD_SLACK}) "
             f"{'holds' if fds_ok else 'MISSED'}"]

    stalls = _stalls(samples)
    steal = [v for s in after_warmup for k, v in s.items() if k.startswith("steal_pct_")]
    lines += ["", f"Intervals with client errors or a client p99 over 1 s: {len(stalls)}"
              + (f" (the box's steal time over the run: max {max(steal):g} % of a CPU in an interval)" if steal else ""),
              *(f"- {line}" for line in stalls)]
    text = "\n".join(lines)
    (infra.out / "soak.md").write_text(text + "\n")
    print(text, flush=True)
    return 0 if errors == 0 and mem_ok and fds_ok else 1

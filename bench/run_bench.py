#!/usr/bin/env python3
# Origin: ../shared/bench/run_bench.py (the shared gateway harness), copied into the project so the
# bench does not depend on shared/. Changes: peak RSS is also reported per process
# ("peak_rss_per_process_mb", the largest single process of the target's tree = per worker), and
# the stream test also gives the time to the first content token (ttft_*, from loadgen.py).
"""Benchmark one OpenAI-compatible endpoint (a gateway, or the fake upstream itself) and print
ONE JSON summary line.

  python run_bench.py http://127.0.0.1:4000/v1 --label my-gateway --pid <gateway pid>

Tests (each repeated --repeats times; the summary gives the median and the min..max spread):
  closed_c<C>   closed loop, C connections, --duration s      -> max RPS, p50/p90/p99, errors (wrk if installed)
  open_<R>      open loop at R req/s for --open-duration s     -> p50/p90/p99 from scheduled start (loadgen.py)
  stream        open loop streaming at --stream-rate req/s     -> TTFB p50/p99, full-stream p50, [DONE] check
Also: peak RSS of --pid and its children (sampled every 0.2 s), CPU used by other processes on the
machine during each test (noise indicator), and latency added over a --baseline summary file.

The fake upstream's knobs ride in the model name, so they survive any gateway:
  --model fake-model                                  (non-streaming tests)
  --stream-model fake-stream~chunks=20~chunk_delay_ms=5  (stream test: 20 chunks 5 ms apart)
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- process accounting
def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def tree(pids):
    kids = _children_map()
    out, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(kids.get(p, []))
    return out


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return int(v[11]) + int(v[12])   # utime + stime
    except (OSError, IndexError):
        return 0


def machine_busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]          # minus idle, iowait


class RssSampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak_kb, self.peak_one_kb, self.stop = pids, 0, 0, threading.Event()

    def run(self):
        n = 0
        members = tree(self.pids)
        while not self.stop.is_set():
            if n % 10 == 0:
                members = tree(self.pids)
            sizes = [rss_kb(p) for p in members]
            self.peak_kb = max(self.peak_kb, sum(sizes))
            self.peak_one_kb = max([self.peak_one_kb] + sizes)
            n += 1
            self.stop.wait(0.2)


class CpuWindow:
    """CPU (in % of one core) used by our processes vs everything else during a test."""

    def __init__(self, mine):
        self.mine = mine

    def __enter__(self):
        self.members = tree(self.mine)
        self.t0 = time.time()
        self.busy0 = machine_busy_ticks()
        self.mine0 = sum(cpu_ticks(p) for p in self.members)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.kids0 = ru.ru_utime + ru.ru_stime
        return self

    def __exit__(self, *exc):
        wall = time.time() - self.t0
        busy = (machine_busy_ticks() - self.busy0) / CLK
        mine = (sum(cpu_ticks(p) for p in self.members) - self.mine0) / CLK
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        loadgen = ru.ru_utime + ru.ru_stime - self.kids0
        self.result = {"target_cpu_pct": round(100 * mine / wall, 1),
                       "loadgen_cpu_pct": round(100 * loadgen / wall, 1),
                       "other_cpu_pct": round(100 * max(0.0, busy - mine - loadgen) / wall, 1)}


def settle(pids, pause, max_wait=60.0, idle_pct=15.0):
    """Rest `pause` s, then wait (up to max_wait s) until the target's CPU drops below idle_pct of
    a core over a 0.5 s window, so a backlog left by an overloaded test cannot leak into the next."""
    time.sleep(pause)
    if not pids:
        return 0.0
    t0 = time.time()
    while time.time() - t0 < max_wait:
        members = tree(pids)
        c0 = sum(cpu_ticks(p) for p in members)
        time.sleep(0.5)
        if 100.0 * (sum(cpu_ticks(p) for p in members) - c0) / CLK / 0.5 < idle_pct:
            break
    return round(time.time() - t0, 1)


# ---------------------------------------------------------------- runners
def taskset_prefix(cpus):
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


def run_wrk(a, url, conc, body_file):
    env = dict(os.environ, BENCH_BODY_FILE=body_file, BENCH_HEADERS="|".join(a.header))
    cmd = taskset_prefix(a.loadgen_cpus) + ["wrk", "-t1", f"-c{conc}", f"-d{a.duration}s", "--timeout", "10s",
                                            "-s", os.path.join(HERE, "wrk_post.lua"), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.duration + 60).stdout
    line = next((l for l in out.splitlines() if l.startswith("WRK_JSON ")), None)
    if line is None:
        return {"error": "wrk produced no result", "raw": out[-500:]}
    w = json.loads(line[9:])
    errors = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_status"] + w["err_timeout"]
    ok = w["requests"] - w["err_status"]
    return {"tool": "wrk", "ok": ok, "errors": errors,
            "error_kinds": {k[4:]: w[k] for k in w if k.startswith("err_") and w[k]},
            "rps": round(ok / (w["duration_us"] / 1e6), 1),
            "lat_p50_ms": w["lat_p50_us"] / 1000, "lat_p90_ms": w["lat_p90_us"] / 1000,
            "lat_p99_ms": w["lat_p99_us"] / 1000, "lat_max_ms": w["lat_max_us"] / 1000}


def run_loadgen(a, url, body_file, extra, timeout):
    cmd = taskset_prefix(a.loadgen_cpus) + [sys.executable, os.path.join(HERE, "loadgen.py"), url,
                                            "--body-file", body_file] + extra
    for h in a.header:
        cmd += ["-H", h]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": "loadgen failed", "raw": (p.stdout + p.stderr)[-800:]}


def median_of(runs, keys):
    out = {}
    good = [r for r in runs if "error" not in r]
    for k in keys:
        vals = [r[k] for r in good if r.get(k) is not None]
        if vals:
            out[k] = round(statistics.median(vals), 3)
            if len(vals) > 1:
                out[k + "_range"] = [round(min(vals), 3), round(max(vals), 3)]
    out["errors"] = sum(r.get("errors", 0) for r in good) + 1_000_000 * (len(runs) - len(good))
    out["runs"] = len(runs)
    return out


def smoke(a, url, body, stream_body):
    """One plain and one streamed request, so a misconfigured gateway fails loudly."""
    import urllib.request
    hdrs = {"Content-Type": "application/json"}
    for h in a.header:
        k, _, v = h.partition(":")
        hdrs[k.strip()] = v.strip()
    res = {}
    todo = [("plain", body)] + ([("stream", stream_body)] if a.stream_rate > 0 else [])
    for name, b in todo:
        req = urllib.request.Request(url, data=json.dumps(b).encode(), headers=hdrs, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                data = r.read()
                ok = r.status == 200 and (b"[DONE]" in data if name == "stream" else b'"choices"' in data)
                res[name] = "ok" if ok else f"bad body: {data[:200]!r}"
        except Exception as e:  # noqa: BLE001
            res[name] = f"failed: {e}"
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base_url", help="OpenAI base URL, e.g. http://127.0.0.1:4000/v1 (or a full .../chat/completions)")
    ap.add_argument("--label", default="target")
    ap.add_argument("--pid", type=int, action="append", default=[],
                    help="gateway process id (repeatable); its children are included in RSS/CPU")
    ap.add_argument("--upstream-pid", type=int, action="append", default=[],
                    help="fake upstream pid(s), counted as 'ours' in the noise figure")
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--stream-model", default="fake-stream~chunks=20~chunk_delay_ms=5")
    ap.add_argument("-H", "--header", action="append", default=[], help='"Name: value", repeatable')
    ap.add_argument("--body-file", default=os.path.join(HERE, "body_chat.json"))
    ap.add_argument("--conc", default="32,128", help="closed-loop concurrencies ('' to skip)")
    ap.add_argument("--duration", type=int, default=15, help="closed-loop seconds")
    ap.add_argument("--rates", default="100,300", help="open-loop rates ('' to skip)")
    ap.add_argument("--open-duration", type=float, default=10)
    ap.add_argument("--stream-rate", type=float, default=50, help="0 to skip the stream test")
    ap.add_argument("--stream-duration", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loadgen-cpus", default="", help="taskset CPU list for wrk/loadgen, e.g. 0")
    ap.add_argument("--request-timeout", type=float, default=10.0)
    ap.add_argument("--closed-tool", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--baseline", help="summary JSON (a line printed by an earlier run, e.g. direct to upstream)")
    ap.add_argument("--raw-out", help="append every single run's raw result here (JSON lines)")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds of rest between tests")
    a = ap.parse_args()

    url = a.base_url.rstrip("/")
    if not url.endswith("/chat/completions"):
        url += "/chat/completions"
    body = json.load(open(a.body_file))
    body["model"] = a.model
    stream_body = dict(body, model=a.stream_model, stream=True, stream_options={"include_usage": True})
    tmp = tempfile.mkdtemp(prefix="bench-")
    plain_file, stream_file = os.path.join(tmp, "plain.json"), os.path.join(tmp, "stream.json")
    json.dump(body, open(plain_file, "w"))
    json.dump(dict(body, model=a.stream_model), open(stream_file, "w"))   # loadgen adds "stream"

    summary = {"label": a.label, "url": url, "smoke": smoke(a, url, body, stream_body)}
    if any(v != "ok" for v in summary["smoke"].values()):
        print(json.dumps(summary), flush=True)
        sys.exit(2)

    sampler = RssSampler(a.pid) if a.pid else None
    if sampler:
        sampler.start()
    mine = a.pid + a.upstream_pid + [os.getpid()]
    use_wrk = a.closed_tool == "wrk" or (a.closed_tool == "auto" and shutil.which("wrk"))
    tests = {}
    raw = open(a.raw_out, "a") if a.raw_out else None
    plan = []   # gentle tests first: an overloaded test cannot spoil a later one (settle() helps too)
    if a.stream_rate > 0:
        plan.append(("stream", "stream", a.stream_rate))
    for r in sorted(float(x) for x in a.rates.split(",") if x):
        plan.append((f"open_{int(r)}", "open", r))
    for c in sorted(int(x) for x in a.conc.split(",") if x):
        plan.append((f"closed_c{c}", "closed", c))
    keys = ["rps", "lat_p50_ms", "lat_p90_ms", "lat_p99_ms", "ttfb_p50_ms", "ttfb_p99_ms", "ttft_p50_ms", "ttft_p99_ms",
            "target_cpu_pct", "other_cpu_pct", "loadgen_cpu_pct"]
    runs = {name: [] for name, _, _ in plan}
    for rep in range(a.repeats):
        for name, kind, x in plan:
            waited = settle(a.pid, 0.0 if (rep == 0 and name == plan[0][0]) else a.pause)
            with CpuWindow(mine) as cw:
                if kind == "closed":
                    if use_wrk:
                        res = run_wrk(a, url, x, plain_file)
                    else:
                        res = run_loadgen(a, url, plain_file, ["--mode", "closed", "--concurrency", str(x),
                                                               "--duration", str(a.duration),
                                                               "--timeout", str(a.request_timeout)],
                                          a.duration + 120)
                elif kind == "open":
                    res = run_loadgen(a, url, plain_file, ["--mode", "open", "--rate", str(x), "--duration",
                                                           str(a.open_duration), "--timeout",
                                                           str(a.request_timeout), "--max-inflight", "2000"],
                                      a.open_duration + a.request_timeout + 120)
                else:
                    res = run_loadgen(a, url, stream_file, ["--mode", "open", "--stream", "--rate", str(x),
                                                            "--duration", str(a.stream_duration), "--timeout",
                                                            str(a.request_timeout), "--max-inflight", "2000"],
                                      a.stream_duration + a.request_timeout + 120)
            res.update(cw.result)
            res.update({"test": name, "rep": rep, "label": a.label, "settle_s": waited})
            runs[name].append(res)
            if raw:
                raw.write(json.dumps(res) + "\n")
                raw.flush()
            print(f"# {a.label} {name} rep{rep}: rps={res.get('rps')} p50={res.get('lat_p50_ms')} "
                  f"p99={res.get('lat_p99_ms')} ttfb50={res.get('ttfb_p50_ms')} err={res.get('errors')} "
                  f"other_cpu={res.get('other_cpu_pct')}% settle={waited}s", file=sys.stderr, flush=True)
    for name in runs:
        tests[name] = median_of(runs[name], keys)
    summary["tests"] = tests
    if sampler:
        sampler.stop.set()
        sampler.join()
        summary["peak_rss_mb"] = round(sampler.peak_kb / 1024, 1)
        summary["peak_rss_per_process_mb"] = round(sampler.peak_one_kb / 1024, 1)
    if a.baseline:
        base = json.loads(open(a.baseline).read().strip().splitlines()[-1])["tests"]
        added = {}
        for name, t in tests.items():
            b = base.get(name)
            if not b:
                continue
            for k in ("lat_p50_ms", "lat_p99_ms", "ttfb_p50_ms", "ttfb_p99_ms", "ttft_p50_ms", "ttft_p99_ms"):
                if k in t and k in b and not name.startswith("closed"):
                    added[f"{name}.{k}"] = round(t[k] - b[k], 3)
        summary["added_over_baseline_ms"] = added
    summary["config"] = {"repeats": a.repeats, "duration": a.duration, "open_duration": a.open_duration,
                         "stream_duration": a.stream_duration, "closed_tool": "wrk" if use_wrk else "python",
                         "loadgen_cpus": a.loadgen_cpus, "model": a.model, "stream_model": a.stream_model}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

"""Where aigw's CPU goes per request, by pipeline stage: py-spy samples under closed-loop load.

    bench/run --profile SECONDS [--workers 1]

Starts the upstream, Redis and aigw (1 worker) like the benchmark, loads aigw with c=32 plain
requests, records py-spy samples of the gateway for SECONDS (non-blocking, 250 Hz), and prints
each stage's share of the gateway's CPU and its cost in µs per request (share × CPU per request,
measured over the same window). py-spy is pip-installed into the bench's Python when missing.

A sample belongs to the stage of its innermost frame that names one (a frame matching several
stages takes the first in STAGES order): time in aiohttp under the executor is upstream, time in
redis-py is limits, and the outer layers get only their own code. Coroutines resumed by the event
loop show partial stacks (from the resumed frame up), which is why asyncio streams count as Redis
(only redis-py uses them in the gateway) and a bare asyncio timeout stays unattributed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import targets
from procs import process_tree, taskset

BENCH = Path(__file__).resolve().parent
CLK = os.sysconf("SC_CLK_TCK")

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("guardrails", ("aigw_gateway/guardrails/", "guard_input", "guard_output")),
    ("limits (Redis)", ("aigw_gateway/limits/", "redis/", "StreamReader.", "Call.admit", "Call.settle")),
    ("auth", ("aigw_gateway/auth.py", "tenant_for_key")),
    ("upstream (adapter + HTTP client)", ("aigw_gateway/upstream.py", "aigw_gateway/upstream_conn.py",
                                         "aigw_gateway/providers/", "aiohttp/",
                                         "httpx/", "httpcore/", "httpx_aiohttp/")),
    ("routing", ("aigw_gateway/routing/",)),
    ("passthrough (same-protocol body + answer)", ("aigw_gateway/passthrough/",)),
    ("metrics + stats", ("aigw_gateway/telemetry/", "prometheus_client/", "Call.finish")),
    ("tracing (OTel spans)", ("opentelemetry/",)),
    ("response (render + write)", ("aigw_gateway/ingress/", "starlette/responses.py", "RequestResponseCycle.send",
                                  "send_with")),
    ("request (read + parse JSON)", ("aigw_gateway/api/common.py", "starlette/requests.py")),
    ("pipeline glue", ("aigw_gateway/pipeline.py", "aigw_gateway/api/")),
    ("middleware", ("aigw_gateway/middleware/",)),
    ("HTTP server (uvicorn)", ("uvicorn/",)),
]
OTHER = "event loop / unattributed"


def classify(stack: str) -> str:
    for frame in reversed(stack.split(";")):
        for stage, needles in STAGES:
            if any(n in frame for n in needles):
                return stage
    return OTHER


def breakdown(raw: Path) -> Counter[str]:
    """Samples per stage from py-spy's raw (collapsed) output: `frame;frame;… count` per line."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[classify(stack)] += int(n)
    return counts


def _py_spy(python: str) -> str:
    here = Path(python).parent / "py-spy"
    if here.exists():
        return str(here)
    if shutil.which("py-spy"):
        return str(shutil.which("py-spy"))
    print("# profile: pip install py-spy", file=sys.stderr, flush=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "py-spy"], check=True)
    return str(here)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += int(v[11]) + int(v[12])
        except (OSError, IndexError):
            pass
    return total / CLK


def profile(a: argparse.Namespace, infra: targets.Infra) -> int:
    seconds = float(a.profile)
    spy = _py_spy(infra.python)
    gw = targets.start_target("aigw", infra)
    assert gw is not None and gw.proc is not None
    body = BENCH / "body_chat.json"  # model fake-model: the plain route
    url = gw.base_url + "/chat/completions"
    load_s = seconds + 4
    cmd = [*taskset(infra.layout.infra), infra.python, str(BENCH / "loadgen.py"), url, "--body-file", str(body),
           "--mode", "closed", "--concurrency", "32", "--duration", str(load_s)]
    for h in gw.headers:
        cmd += ["-H", h]
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)

    def stop_load() -> None:
        if load.poll() is None:
            load.kill()

    infra.sup.closers.append(stop_load)
    time.sleep(2)
    pids = process_tree(gw.proc.pid)
    raw = infra.out / "profile.txt"
    cpu0, t0 = _cpu_seconds(pids), time.monotonic()
    subprocess.run([spy, "record", "--nonblocking", "-r", "250", "-d", str(int(seconds)), "-f", "raw", "-o", str(raw),
                    *[x for p in pids[:1] for x in ("-p", str(p))]] + (["--subprocesses"] if a.workers > 1 else []),
                   stdout=subprocess.DEVNULL, check=True)
    cpu, wall = _cpu_seconds(pids) - cpu0, time.monotonic() - t0
    out, _ = load.communicate(timeout=load_s + 60)
    res = json.loads(out.strip().splitlines()[-1])
    rps = float(res.get("rps") or 0)
    cpu_ms = 1000 * cpu / (rps * wall) if rps else 0.0
    counts = breakdown(raw)
    total = sum(counts.values()) or 1
    lines = [f"aigw CPU per request by stage: c=32 plain requests, {rps:,.0f} req/s, {cpu_ms:.3f} ms of gateway CPU "
             f"per request ({100 * cpu / wall:.0f}% of a core), {total:,} py-spy samples over {wall:.0f} s", "",
             "| stage | share of CPU | µs per request |", "|---|---|---|"]
    for stage, _ in [*STAGES, (OTHER, ())]:
        n = counts.get(stage, 0)
        lines.append(f"| {stage} | {100 * n / total:.1f} % | {1000 * cpu_ms * n / total:.0f} |")
    lines += ["", f"- samples (py-spy raw, one stack per line): {raw}; flame graph: "
              f"`py-spy record -o profile.svg --pid <aigw pid> --duration 15` while bench/run loads it"]
    text = "\n".join(lines)
    (infra.out / "profile.md").write_text(text + "\n")
    print(text, flush=True)
    return 0

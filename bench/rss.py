"""Memory of one aigw worker: idle after start-up, then after load, and what it mapped.

    bench/run --rss SECONDS [--workers N]

Starts aigw with the bench's config (gateway_config.py), samples each worker's RSS once it is ready
and idle, loads it for SECONDS with plain requests (c=32) and then SECONDS with streams (c=32), and
samples again (the peak while loaded, and idle after). It lists the native extension modules of
site-packages a worker has mapped, by distribution: a library imported although the loaded config
does not use it shows here (psycopg without a ledger, say) without touching the gateway.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import gateway_config
import targets
from procs import cmdline, process_tree, rss_kb
from soak import LoadGen

BENCH = Path(__file__).resolve().parent
SITE = "site-packages:"


def workers_of(root: int) -> list[int]:
    """The serving processes: the root alone, or uvicorn's worker processes under it."""
    procs = [p for p in process_tree(root) if rss_kb(p) > 0]
    workers = [p for p in procs if "multiprocessing" in cmdline(p) and "resource_tracker" not in cmdline(p)]
    return workers or procs[:1]


def mappings(pid: int) -> dict[str, int]:
    """Resident kB by mapping: "site-packages:<folder>" for the shared objects of a distribution,
    "[heap+anon]" for the heap and anonymous memory (Python objects, malloc arenas, stacks), the
    file name for any other file."""
    out: dict[str, int] = {}
    current = ""
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split()
                if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line
                    path = head[5] if len(head) > 5 else ""
                    if "site-packages/" in path:
                        current = SITE + path.split("site-packages/", 1)[1].split("/", 1)[0]
                    elif path in ("", "[heap]") or path.startswith("[stack"):
                        current = "[heap+anon]"
                    else:
                        current = path.rsplit("/", 1)[-1]
                elif line.startswith("Rss:"):
                    out[current] = out.get(current, 0) + int(head[1])
    except OSError:
        pass
    return out


def rss_mb(pids: list[int]) -> float:
    return max(rss_kb(p) for p in pids) / 1024 if pids else 0.0


def probe(a: argparse.Namespace, infra: targets.Infra) -> int:
    gw = targets.start_target("aigw", infra)
    assert gw is not None and gw.proc is not None
    time.sleep(2)
    workers = workers_of(gw.proc.pid)
    idle = rss_mb(workers)
    maps_idle = mappings(workers[0])
    libs = {k[len(SITE):]: v for k, v in maps_idle.items() if k.startswith(SITE)}
    body = json.loads((BENCH / "body_chat.json").read_text())
    plain, stream = infra.out / "plain.json", infra.out / "stream.json"
    plain.write_text(json.dumps(dict(body, model=gateway_config.PLAIN_MODEL)))
    stream.write_text(json.dumps(dict(body, model=gateway_config.STREAM_MODEL)))
    peak = [idle]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            peak.append(rss_mb(workers))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    url = gw.base_url + "/chat/completions"
    results = {}
    for name, path, extra in (("plain", plain, []), ("stream", stream, ["--stream"])):
        args = ["--mode", "closed", "--concurrency", "32", "--duration", str(a.rss), "--timeout", "10", *extra]
        results[name] = LoadGen(name, infra, url, path, args, gw.headers).result(a.rss + 60)
        peak.append(rss_mb(workers))
    done.set()
    watcher.join()
    time.sleep(2)
    after = rss_mb(workers)
    maps_after = mappings(workers[0])
    heap = (maps_idle.get("[heap+anon]", 0) / 1024, maps_after.get("[heap+anon]", 0) / 1024)
    python_files = sum(v for k, v in maps_after.items() if k.startswith(("python", "libpython"))) / 1024
    other_files = (sum(maps_after.values()) / 1024 - heap[1] - python_files
                   - sum(v for k, v in maps_after.items() if k.startswith(SITE)) / 1024)
    errors = sum(int(r.get("errors", 0)) for r in results.values()) + sum(1 for r in results.values() if "error" in r)
    ok = sum(int(r.get("ok", 0)) for r in results.values())
    shown = ", ".join(f"{k} {v / 1024:.1f}" for k, v in sorted(libs.items(), key=lambda kv: -kv[1]) if v >= 100)
    (infra.out / "rss-mappings.json").write_text(json.dumps({"idle": maps_idle, "after": maps_after}, indent=1))
    lines = [f"aigw RSS per worker ({a.workers} worker{'s' if a.workers > 1 else ''}, the bench's config):", "",
             "| idle after start-up | peak under load | idle after the load | requests (errors) |",
             "|---|---|---|---|",
             f"| {idle:.1f} MB | {max(peak):.1f} MB | {after:.1f} MB | {ok:,} ({errors}) |", "",
             f"- heap and anonymous memory (Python objects, malloc arenas, stacks): {heap[0]:.1f} MB idle, "
             f"{heap[1]:.1f} MB after the load; the interpreter's own files {python_files:.1f} MB; other system "
             f"libraries {other_files:.1f} MB",
             f"- native libraries of site-packages mapped (MB resident, ≥ 0.1): {shown or '–'}",
             f"- psycopg loaded: {'yes' if any(k.startswith('psycopg') for k in libs) else 'no'}"]
    text = "\n".join(lines)
    (infra.out / "rss.md").write_text(text + "\n")
    print(text, flush=True)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    print("run it as: bench/run --rss SECONDS", file=sys.stderr)
    raise SystemExit(2)

"""aigw's own CPU per request, in process: the ASGI app called directly, no HTTP server, no load
generator competing for the CPU.

    bench/run --inproc N [--stream]     (N requests, 32 at a time)

Starts the fake upstream and Redis like the bench, builds the app with the bench's config
(gateway_config.py) in this process, runs its lifespan, and sends N chat requests through the
ASGI interface (scope, receive, send), 32 concurrently, after a warm-up. The process CPU time
(time.process_time) over the run divided by N is the app's CPU per request, excluding uvicorn and
the kernel's socket work for the client side; the driver's own cost (building a scope, collecting
messages) is a few µs. With `--cprofile` it also prints the functions with the most cumulative
time (deterministic, so comparable between two commits on a busy machine, unlike req/s).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import gateway_config
import targets

BENCH = Path(__file__).resolve().parent
CONCURRENCY = 32


async def _lifespan(app: Any) -> tuple[asyncio.Queue, asyncio.Task]:
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get,
                                   outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    msg = await asyncio.wait_for(outbox.get(), 30)
    if msg["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan: {msg}")
    return inbox, task


def _scope(path: str, headers: list[tuple[bytes, bytes]], port: int) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", port),
            "state": {}}


async def _one(app: Any, headers: list[tuple[bytes, bytes]], body: bytes, port: int) -> int:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # no disconnect while the response is being sent
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope("/v1/chat/completions", headers, port), receive, send)
    return status


async def _run(app: Any, n: int, headers: list[tuple[bytes, bytes]], body: bytes, port: int) -> list[int]:
    statuses: list[int] = []
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            statuses.append(await _one(app, headers, body, port))

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return statuses


async def _main(a: argparse.Namespace, infra: targets.Infra) -> int:
    sys.path.insert(0, str(BENCH.parent / "gateway"))
    from aigw_gateway.app import create_app
    from aigw_gateway.settings import Settings

    config = infra.out / "aigw.yaml"
    config.write_text(gateway_config.gateway_yaml(infra.upstream_url))
    port = 18080
    settings = Settings(port=port, files=(str(config),), redis_url=infra.redis_url, log_level="warning", ops_port=0,
                        state_dir=str(infra.out / "state"))
    app = create_app(settings)
    try:  # as a serving worker does (gc_tuning.py), when the gateway under test has it
        from aigw_gateway.gc_tuning import tune_for_serving
    except ImportError:
        pass
    else:
        tune_for_serving()
    inbox, life = await _lifespan(app)
    state = app.state.gateway if hasattr(app, "state") else None
    deadline = time.monotonic() + 30
    while state is not None and (state.holder.current is None or state.limits_url is None):
        if time.monotonic() > deadline:
            raise RuntimeError("the config or Redis did not load")
        await asyncio.sleep(0.05)
    model = gateway_config.STREAM_MODEL if a.stream else gateway_config.PLAIN_MODEL
    doc = dict(json.loads((BENCH / "body_chat.json").read_text()), model=model)
    if a.stream:
        doc["stream"] = True
    body = json.dumps(doc).encode()
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"authorization", f"Bearer {gateway_config.TENANT_KEY}".encode()),
               (b"content-length", str(len(body)).encode())]
    await _run(app, min(2000, a.inproc), headers, body, port)  # warm-up: connections, caches
    profiler = cProfile.Profile() if a.cprofile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    statuses = await _run(app, a.inproc, headers, body, port)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    bad = [s for s in statuses if s != 200]
    print(f"aigw in process: {a.inproc:,} {'streamed' if a.stream else 'plain'} requests, {CONCURRENCY} at a time: "
          f"{1e6 * cpu / a.inproc:.0f} µs of CPU per request ({a.inproc / wall:,.0f} req/s, {100 * cpu / wall:.0f}% of a "
          f"core{', under cProfile: compare only with cProfile' if profiler else ''}); non-200: {len(bad)}", flush=True)
    if profiler:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(a.top)
        (infra.out / "inproc-cprofile.txt").write_text(text.getvalue())
        stats.dump_stats(str(infra.out / "inproc.prof"))
        print(text.getvalue())
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(life, 30)
    return 1 if bad else 0


def inproc(a: argparse.Namespace, infra: targets.Infra) -> int:
    import uvloop

    return uvloop.run(_main(a, infra))

#!/usr/bin/env python3
# Origin: ../shared/bench/loadgen.py, copied into the project. Change: --progress S prints one JSON
# line to stderr every S seconds in open loop (requests done, errors, latency of the interval), for
# bench/soak.py, which watches a long run while it goes; for streams it also reports the time to the
# first content token ("ttft_*": the first SSE chunk whose delta has non-empty content), apart from
# the time to the first byte ("ttfb_*", often a role-only chunk).
"""Python load generator for OpenAI-style POST /chat/completions (HTTP/1.1, keep-alive).

Modes
  open    fixed arrival rate (--rate req/s for --duration s). Latency is measured from each
          request's *scheduled* start, so a slow server cannot hide queueing (no coordinated omission).
  closed  --concurrency C connections, each sending back-to-back for --duration s (throughput).

With --stream the body gets "stream": true and the tool also records time-to-first-byte
(first body bytes = first SSE event) and checks that the stream ends with "data: [DONE]".

Prints one JSON line.  Uses uvloop + httptools (raw asyncio protocol, no HTTP library) so one
core can drive a few thousand req/s; use wrk for closed-loop throughput above that.
"""
import argparse
import asyncio
import collections
import json
import os
import re
import resource
import socket
import sys
import time
from urllib.parse import urlsplit

import httptools

now = time.perf_counter
FIRST_TOKEN = re.compile(rb'"content"\s*:\s*"[^"]')


class RequestFailed(Exception):
    def __init__(self, kind, msg=""):
        super().__init__(f"{kind}: {msg}")
        self.kind = kind


class Conn(asyncio.Protocol):
    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.transport = None
        self.fut = None
        self.closed = False
        self.reusable = True
        self.timer = None

    # asyncio
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        self.closed = True
        self._fail("read", f"connection lost {exc or ''}")

    def data_received(self, data):
        if self.fut is None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self.reusable = False
            self._fail("read", f"parse error {e}")

    # httptools
    def on_headers_complete(self):
        self.t_headers = now()
        self.status = self.parser.get_status_code()
        self.reusable = self.parser.should_keep_alive()

    def on_body(self, body):
        if self.t_first is None:
            self.t_first = now()
        self.nbytes += len(body)
        if self.want_tail:
            if self.t_token is None and FIRST_TOKEN.search(self.tail + body):
                self.t_token = now()
            self.tail = (self.tail + body)[-64:]

    def on_message_complete(self):
        if self.timer:
            self.timer.cancel()
        f, self.fut = self.fut, None
        if f is not None and not f.done():
            f.set_result((self.status, self.t_headers, self.t_first, now(), self.nbytes, self.tail, self.t_token))

    # helpers
    def _fail(self, kind, msg=""):
        if self.timer:
            self.timer.cancel()
        f, self.fut = self.fut, None
        self.reusable = False
        if f is not None and not f.done():
            f.set_exception(RequestFailed(kind, msg))

    def _timeout(self):
        self._fail("timeout")
        self.transport.close()

    def send(self, loop, raw, timeout, want_tail):
        self.fut = loop.create_future()
        self.t_headers = self.t_first = self.t_token = None
        self.status = 0
        self.nbytes = 0
        self.tail = b""
        self.want_tail = want_tail
        self.timer = loop.call_later(timeout, self._timeout)
        self.transport.write(raw)
        return self.fut


class Pool:
    def __init__(self, loop, host, port, max_conns):
        self.loop, self.host, self.port, self.max = loop, host, port, max_conns
        self.idle = []
        self.n = 0
        self.waiters = collections.deque()

    async def _connect(self):
        try:
            _, c = await self.loop.create_connection(Conn, self.host, self.port)
            return c
        except OSError as e:
            self.n -= 1
            raise RequestFailed("connect", str(e))

    async def acquire(self):
        while self.idle:
            c = self.idle.pop()
            if not c.closed:
                return c
            self.n -= 1
        if self.n < self.max:
            self.n += 1
            return await self._connect()
        w = self.loop.create_future()
        self.waiters.append(w)
        return await w

    def release(self, c):
        if c.reusable and not c.closed:
            if self.waiters:
                self.waiters.popleft().set_result(c)
            else:
                self.idle.append(c)
            return
        if not c.closed:
            c.transport.close()
        self.n -= 1
        if self.waiters:
            w = self.waiters.popleft()
            self.n += 1

            async def hand_over():
                try:
                    w.set_result(await self._connect())
                except RequestFailed as e:
                    w.set_exception(e)
            self.loop.create_task(hand_over())

    async def warm(self, k):
        conns = []
        for _ in range(min(k, self.max)):
            self.n += 1
            conns.append(await self._connect())
        for c in conns:
            self.release(c)


def build_request(url, body, headers):
    u = urlsplit(url)
    path = (u.path or "/") + (("?" + u.query) if u.query else "")
    hdrs = {"Host": u.netloc, "Content-Type": "application/json", "Content-Length": str(len(body)),
            "User-Agent": "bench-loadgen/1", "Accept": "*/*"}
    for h in headers:
        k, _, v = h.partition(":")
        hdrs[k.strip()] = v.strip()
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    return u.hostname, u.port or 80, head.encode() + body


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


class Stats:
    def __init__(self):
        self.lat = []
        self.ttfb = []
        self.ttft = []
        self.errors = collections.Counter()
        self.ok = 0
        self.bytes = 0

    def summary(self, wall, cpu, extra):
        lat = sorted(self.lat)
        ttfb = sorted(self.ttfb)
        ttft = sorted(self.ttft)
        ms = lambda v: None if v is None else round(v * 1000.0, 3)
        out = {
            "ok": self.ok, "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
            "rps": round(self.ok / wall, 1) if wall > 0 else 0.0,
            "lat_p50_ms": ms(pct(lat, 50)), "lat_p90_ms": ms(pct(lat, 90)), "lat_p99_ms": ms(pct(lat, 99)),
            "lat_max_ms": ms(lat[-1] if lat else None),
            "lat_mean_ms": ms(sum(lat) / len(lat)) if lat else None,
            "wall_s": round(wall, 3), "client_cpu_pct": round(100.0 * cpu / wall, 1) if wall > 0 else None,
        }
        if ttfb:
            out.update({"ttfb_p50_ms": ms(pct(ttfb, 50)), "ttfb_p90_ms": ms(pct(ttfb, 90)),
                        "ttfb_p99_ms": ms(pct(ttfb, 99))})
        if ttft:
            out.update({"ttft_p50_ms": ms(pct(ttft, 50)), "ttft_p99_ms": ms(pct(ttft, 99))})
        out.update(extra)
        return out


async def one(loop, pool, raw, t0, stats, timeout, stream):
    c = None
    try:
        c = await pool.acquire()
        status, t_h, t_first, t_end, nbytes, tail, t_token = await c.send(loop, raw, timeout, stream)
    except RequestFailed as e:
        stats.errors[e.kind] += 1
        if c is not None:
            pool.release(c)
        return
    pool.release(c)
    if status != 200:
        stats.errors[f"status_{status}"] += 1
        return
    if stream and b"[DONE]" not in tail:
        stats.errors["no_done"] += 1
        return
    stats.ok += 1
    stats.bytes += nbytes
    stats.lat.append(t_end - t0)
    if stream:
        stats.ttfb.append((t_first or t_end) - t0)
        if t_token is not None:
            stats.ttft.append(t_token - t0)


async def progress(every, stats, start):
    """Every `every` s: one JSON line on stderr with the totals so far and the interval's latency."""
    seen, last_ok, last_err = 0, 0, 0
    while True:
        await asyncio.sleep(every)
        lat = sorted(stats.lat[seen:])
        seen += len(lat)
        errors = sum(stats.errors.values())
        ms = lambda v: None if v is None else round(v * 1000.0, 3)
        print(json.dumps({"progress": round(now() - start, 1), "ok": stats.ok, "errors": errors,
                          "error_kinds": dict(stats.errors), "interval_ok": stats.ok - last_ok,
                          "interval_errors": errors - last_err, "lat_p50_ms": ms(pct(lat, 50)),
                          "lat_p99_ms": ms(pct(lat, 99))}), file=sys.stderr, flush=True)
        last_ok, last_err = stats.ok, errors


async def run_open(a, host, port, raw):
    loop = asyncio.get_running_loop()
    pool = Pool(loop, host, port, a.max_conns)
    await pool.warm(a.warm_conns)
    stats = Stats()
    n = int(a.rate * a.duration)
    interval = 1.0 / a.rate
    tasks = set()
    late = 0
    dropped = 0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = now() + 0.02
    reporter = loop.create_task(progress(a.progress, stats, start)) if a.progress > 0 else None
    for i in range(n):
        t_sched = start + i * interval
        d = t_sched - now()
        if d > 0.0005:
            await asyncio.sleep(d)
        elif d < -0.005:
            late += 1
        if len(tasks) >= a.max_inflight:
            dropped += 1
            stats.errors["dropped_max_inflight"] += 1
            continue
        t = loop.create_task(one(loop, pool, raw, t_sched, stats, a.timeout, a.stream))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    send_end = now()
    if tasks:
        await asyncio.wait(tasks, timeout=a.timeout + 5)
    if reporter is not None:
        reporter.cancel()
    wall = now() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return stats.summary(wall, cpu, {
        "mode": "open", "target_rps": a.rate, "sent": n - dropped,
        "offered_rps": round((n - dropped) / max(1e-9, send_end - start), 1),
        "late_sends": late, "conns_used": pool.n, "stream": a.stream})


async def run_closed(a, host, port, raw):
    loop = asyncio.get_running_loop()
    pool = Pool(loop, host, port, a.concurrency)
    await pool.warm(a.concurrency)
    stats = Stats()
    deadline = None

    async def worker():
        while now() < deadline:
            await one(loop, pool, raw, now(), stats, a.timeout, a.stream)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = now()
    deadline = start + a.duration
    await asyncio.gather(*(worker() for _ in range(a.concurrency)))
    wall = now() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return stats.summary(wall, cpu, {"mode": "closed", "concurrency": a.concurrency, "stream": a.stream})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="full URL, e.g. http://127.0.0.1:19000/v1/chat/completions")
    ap.add_argument("--mode", choices=("open", "closed"), default="open")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--body-file", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "body_chat.json"))
    ap.add_argument("--model", default=None, help="override the body's model")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("-H", "--header", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--max-conns", type=int, default=1024, help="open-loop connection pool cap")
    ap.add_argument("--warm-conns", type=int, default=16, help="open-loop connections opened up front")
    ap.add_argument("--max-inflight", type=int, default=4000)
    ap.add_argument("--progress", type=float, default=0.0, help="open loop: progress line on stderr every S s")
    a = ap.parse_args()
    body = json.load(open(a.body_file))
    if a.model:
        body["model"] = a.model
    if a.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    host, port, raw = build_request(a.url, json.dumps(body).encode(), a.header)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    fn = run_open if a.mode == "open" else run_closed
    res = asyncio.run(fn(a, host, port, raw))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()

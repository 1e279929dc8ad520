"""Steady request load against a gateway from a background thread (for outage tests)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from tests.ledger.support import KEY_A, KEY_B


class Load:
    """`rate` requests per second (alternating tenants, unary and streamed) until stopped;
    `ids` collects the x-request-id of every answered request, `failures` the others."""

    def __init__(self, url: str, rate: float = 100.0, concurrency: int = 16) -> None:
        self.url, self.rate, self.concurrency = url, rate, concurrency
        self.ids: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_count(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ids) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.ids) >= count, f"only {len(self.ids)} answered requests ({self.failures[:3]})"

    async def _one(self, client: httpx.AsyncClient, n: int) -> None:
        key = KEY_A if n % 2 else KEY_B
        stream = n % 3 == 0
        body = {"model": "m-main", "messages": [{"role": "user", "content": f"load {n} words here"}], "stream": stream}
        try:
            r = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
            await r.aread()
            if r.status_code == 200:
                self.ids.append(r.headers["x-request-id"])
            else:
                self.failures.append(f"{r.status_code} {r.text[:200]}")
        except httpx.HTTPError as exc:
            self.failures.append(repr(exc))

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=30, limits=limits) as client:
            pending: set[asyncio.Task] = set()
            n = 0
            start = time.monotonic()
            while not self._stop.is_set():
                n += 1
                pending.add(asyncio.create_task(self._one(client, n)))
                pending = {t for t in pending if not t.done()}
                await asyncio.sleep(max(start + n / self.rate - time.monotonic(), 0))
            await asyncio.gather(*pending)

"""What the upstream client's contract tests share (test_upstream_client.py: the wire, framing,
keep-alive; test_upstream_bounds.py: decompression, bounds, timeouts, TLS): a client per test,
request helpers, the gateway's way of judging a failure, and an RSS watcher."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aigw_gateway.errors import GatewayError
from aigw_gateway.providers.base import UpstreamRequest
from aigw_gateway.upstream import TRANSPORT_ERRORS, UpstreamClient, UpstreamResponse, map_transport_error

ROOT = Path(__file__).resolve().parents[2]
PIECE = 1 << 20
SLACK = 1.5  # seconds over a timeout that a loaded 2-core machine may add


@pytest.fixture
async def client() -> UpstreamClient:
    c = UpstreamClient()
    yield c
    await c.aclose()


def req(url: str, method: str = "POST", body: bytes = b'{"x":1}',
        headers: dict[str, str] | None = None) -> UpstreamRequest:
    return UpstreamRequest(method, url, {"content-type": "application/json"} if headers is None else headers, body)


async def call(client: UpstreamClient, url: str, *, read_timeout: float = 3.0, max_bytes: int = 1 << 25,
               **kw: object) -> UpstreamResponse:
    return await client.send(req(url, **kw), connect_timeout=3.0, read_timeout=read_timeout, max_bytes=max_bytes)


async def fetch(client: UpstreamClient, url: str, **kw: object) -> tuple[int, bytes]:
    resp = await call(client, url, **kw)
    return resp.status, await resp.read()


async def failure(attempt: Callable[[], Awaitable[object]]) -> tuple[BaseException, GatewayError]:
    """What `attempt` raised and the GatewayError the gateway makes of it (fails if nothing)."""
    try:
        await attempt()
    except GatewayError as exc:
        return exc, exc
    except TRANSPORT_ERRORS as exc:
        return exc, map_transport_error(exc, "t")
    pytest.fail("no error raised")


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Samples this process's RSS every 5 ms; yields a one-item list filled with the peak growth."""
    base = rss_bytes()
    peak = [base]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss_bytes())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    out = [0]
    try:
        yield out
    finally:
        done.set()
        thread.join()
        out[0] = max(peak[0], rss_bytes()) - base


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""The upstream client's own pool and flow control (upstream.py, upstream_conn.py), beyond the
interface contract of test_upstream_client.py: a slow reader does not make the client buffer a
fast upstream's stream, idle connections close after the keep-alive time, the number of open
connections is capped (requests wait, none fails), and a header value cannot inject a header."""

from __future__ import annotations

import asyncio

import pytest

from aigw_gateway import upstream, upstream_conn
from aigw_gateway.errors import UpstreamError
from aigw_gateway.providers.base import UpstreamRequest
from aigw_gateway.upstream import TRANSPORT_ERRORS, UpstreamClient, map_transport_error
from tests.fakes.raw_upstream import RawConnection, RawRequest, RawUpstream, response

pytestmark = pytest.mark.timeout(20)

PIECE = 64 * 1024


@pytest.fixture
async def client() -> UpstreamClient:
    c = UpstreamClient()
    yield c
    await c.aclose()


def req(url: str, headers: dict[str, str] | None = None) -> UpstreamRequest:
    return UpstreamRequest("POST", url, headers or {"content-type": "application/json"}, b"{}")


async def test_a_slow_reader_stops_the_client_reading_a_fast_stream(client):
    """A client that reads an SSE stream slowly holds at most ~HIGH_WATER bytes in the gateway:
    the socket stops being read, so the upstream's writes block instead of the gateway's memory
    growing (backpressure reaches the provider)."""
    total = 32 * 1024 * 1024
    sent = [0]
    done = asyncio.Event()

    async def firehose(conn: RawConnection, request: RawRequest) -> None:
        conn.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        piece = b"d" * PIECE
        while sent[0] < total and await conn.send(piece):
            sent[0] += PIECE
        done.set()

    async with RawUpstream(firehose) as up:
        resp = await client.send(req(up.url()), connect_timeout=3, read_timeout=5, max_bytes=total)
        chunks = resp.iter_chunks()
        got = len(await anext(chunks))
        # the upstream stalls once the client's buffer and the kernel's socket buffers are full
        stalled_at = -1
        for _ in range(200):
            await asyncio.sleep(0.01)
            if sent[0] == stalled_at:
                break
            stalled_at = sent[0]
        assert sent[0] < total // 2, sent[0]  # not all read into memory behind the reader's back
        body = resp._body
        assert body.buffered <= upstream_conn.HIGH_WATER + 4 * PIECE, body.buffered
        async for chunk in chunks:  # and once read, the rest flows
            got += len(chunk)
        assert got == total
        assert done.is_set() or await asyncio.wait_for(done.wait(), 3) is None


async def test_idle_connections_close_after_the_keepalive_time(client, monkeypatch):
    """A burst's connections do not stay open for ever: each closes KEEPALIVE_SECONDS after its
    last answer (the sweep runs every _SWEEP_SECONDS), so a gateway's fds return to idle."""
    monkeypatch.setattr(upstream, "KEEPALIVE_SECONDS", 0.2)
    monkeypatch.setattr(upstream, "_SWEEP_SECONDS", 0.05)
    async with RawUpstream(response()) as up:
        resps = await asyncio.gather(*(client.send(req(up.url()), connect_timeout=3, read_timeout=3)
                                       for _ in range(3)))
        assert [await r.read() for r in resps] == [b"ok"] * 3
        conns = await up.wait_connections(3)
        for conn in conns:
            assert await conn.wait_peer_closed(3.0)
        assert not client.pool.open


async def test_open_connections_are_capped_and_requests_wait_for_one(client, monkeypatch):
    """Past MAX_CONNECTIONS, a request waits for a connection to come back instead of opening
    another (fds stay bounded under a burst); every request is answered."""
    monkeypatch.setattr(upstream, "MAX_CONNECTIONS", 2)
    active = [0, 0]  # now, most

    async def slow(conn: RawConnection, request: RawRequest) -> None:
        active[0] += 1
        active[1] = max(active[1], active[0])
        await asyncio.sleep(0.05)
        active[0] -= 1
        conn.write(response())

    async with RawUpstream(slow) as up:
        async def one() -> bytes:
            resp = await client.send(req(up.url()), connect_timeout=3, read_timeout=3)
            return await resp.read()

        assert await asyncio.gather(*(one() for _ in range(6))) == [b"ok"] * 6
        assert len(up.connections) == 2
        assert active[1] == 2


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\0b"])
async def test_a_header_value_with_a_line_break_is_refused_not_sent(client, value):
    """A CR, LF or NUL in a header would split it into a header of the attacker's choosing at the
    provider: the request is refused before anything is written."""
    async with RawUpstream(response()) as up:
        with pytest.raises(TRANSPORT_ERRORS) as caught:
            await client.send(req(up.url(), {"anthropic-beta": value}), connect_timeout=3, read_timeout=3)
        err = map_transport_error(caught.value, "t")
        assert isinstance(err, UpstreamError) and "line break" in err.message, err
        assert up.requests == []

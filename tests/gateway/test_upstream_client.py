"""The gateway's upstream HTTP client (`aigw_gateway.upstream`) at its public interface only:
`UpstreamClient.send` → `UpstreamResponse` (.status, .headers, read, iter_chunks, aclose) and
`map_transport_error` for what it raises. Each test scripts the exact bytes of a raw HTTP/1.1
server on 127.0.0.1 (tests/fakes/raw_upstream.py) and reads what arrived there byte for byte.

This is the contract any implementation of the client keeps: what goes on the wire, response
framing, keep-alive and the pool, decompression, bounds, timeouts, TLS, the client's lifetime.
Failures are judged as the gateway judges them: a GatewayError raised directly, or an exception
in TRANSPORT_ERRORS that `map_transport_error` turns into one. (Whole-gateway behaviour against
hostile answers lives in test_hostile_upstream.py; cookies through the gateway in
test_upstream_cookies.py.)
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import os
import socket
import ssl
import struct
import sys
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aigw_gateway.errors import (GatewayError, UpstreamConnectError, UpstreamError, UpstreamResponseTooLarge,
                                 UpstreamTimeout)
from aigw_gateway.providers.base import UpstreamRequest
from aigw_gateway.upstream import TRANSPORT_ERRORS, UpstreamClient, UpstreamResponse, map_transport_error
from tests.fakes.raw_upstream import RawConnection, RawRequest, RawUpstream, response

pytestmark = pytest.mark.timeout(20)

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


# --- 1. what the upstream receives ----------------------------------------------------------------

async def test_the_path_and_query_go_on_the_wire_exactly_as_built(client):
    """AWS SigV4 signs the path byte for byte: percent-escapes must not be decoded or re-encoded."""
    async with RawUpstream() as up:
        assert await fetch(client, up.url("/model/a%3Ab/invoke?x=1%2F2&y=%7E")) == (200, b"ok")
        assert up.requests[0].request_line == b"POST /model/a%3Ab/invoke?x=1%2F2&y=%7E HTTP/1.1"


async def test_host_headers_and_body_are_sent_as_given_without_a_user_agent(client):
    """Providers authenticate by the given headers; a client User-Agent would leak the gateway's stack."""
    async with RawUpstream() as up:
        body = b'{"model":"m","messages":[]}\x00\xff'
        headers = {"Authorization": "Bearer sk-1", "x-api-key": "k2", "content-type": "application/json"}
        assert await fetch(client, up.url("/v1/chat"), body=body, headers=headers) == (200, b"ok")
        got = up.requests[0]
        assert got.values("host") == [f"127.0.0.1:{up.port}"]
        assert (b"Authorization", b"Bearer sk-1") in got.header_lines  # names as given, case kept
        assert got.values("x-api-key") == ["k2"]
        assert got.values("content-type") == ["application/json"]
        assert got.values("content-length") == [str(len(body))]
        assert got.body == body
        assert got.values("user-agent") == []
        assert got.values("transfer-encoding") == []


async def test_the_client_asks_for_gzip_and_deflate(client):
    """The answer is inflated by the client (and bounded after inflation), so it may ask for it."""
    async with RawUpstream() as up:
        await fetch(client, up.url())
        (accept,) = up.requests[0].values("accept-encoding")
        assert {e.strip() for e in accept.split(",")} == {"gzip", "deflate"}


async def test_a_callers_accept_and_accept_encoding_replace_the_clients(client):
    """Adapters ask for `accept-encoding: identity` on streams (each SSE event must arrive as sent)
    and name their `accept`; the client's defaults must not be added beside them."""
    async with RawUpstream() as up:
        await fetch(client, up.url(), headers={"accept": "text/event-stream", "accept-encoding": "identity"})
        got = up.requests[0]
        assert got.values("accept") == ["text/event-stream"]
        assert got.values("accept-encoding") == ["identity"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_request_without_a_body(client, method):
    """Passthrough lists and deletes (GET /v1/models, DELETE /v1/files/x) carry no body."""
    async with RawUpstream() as up:
        assert await fetch(client, up.url("/v1/models"), method=method, body=b"", headers={}) == (200, b"ok")
        assert await fetch(client, up.url("/v1/models"), method=method, body=b"", headers={}) == (200, b"ok")
        first, second = up.requests  # the second request parsed cleanly: nothing stray after the first head
        assert first.request_line == f"{method} /v1/models HTTP/1.1".encode()
        assert first.body == b""
        assert first.values("content-length") in ([], ["0"])
        assert first.values("transfer-encoding") == []
        assert second.method == method


async def test_a_callers_host_and_content_length_are_sent_once(client):
    """A header the client also computes must not be doubled (two Content-Lengths are a smuggling
    vector); today the caller's Host wins, and a Content-Length equal to the body's is kept."""
    async with RawUpstream() as up:
        body = b"abc"
        await fetch(client, up.url(), body=body, headers={"Host": "bedrock.example", "Content-Length": "3"})
        got = up.requests[0]
        assert got.values("host") == ["bedrock.example"]
        assert got.values("content-length") == ["3"]
        assert got.body == body


async def test_a_set_cookie_is_never_sent_back(client):
    """One client serves every tenant: a provider's cookie for tenant A must not reach B's request."""
    answer = response(headers=("set-cookie: session=tenant-a-secret; Path=/", "set-cookie: b=2; Path=/"))
    async with RawUpstream(answer) as up:
        for _ in range(2):  # `localhost`: a cookie jar that skips bare IP hosts would hide the leak
            assert await fetch(client, up.url("/v1/chat", host="localhost")) == (200, b"ok")
        assert [r.values("cookie") for r in up.requests] == [[], []]


# --- 2. response framing ---------------------------------------------------------------------------

async def test_status_and_headers_are_read_with_lower_cased_names(client):
    """Adapters read retry-after, x-request-id and rate-limit headers by lower-case name."""
    answer = response(b'{"e":1}', "429 Too Many Requests", ("Retry-After: 7", "X-Request-ID: AbC-1",
                                                           "Content-Type: application/json"))
    async with RawUpstream(answer) as up:
        resp = await call(client, up.url())
        assert resp.status == 429
        assert resp.headers["retry-after"] == "7"
        assert resp.headers["x-request-id"] == "AbC-1"  # values as sent
        assert resp.headers["content-type"] == "application/json"
        assert all(name == name.lower() for name in resp.headers)
        assert await resp.read() == b'{"e":1}'


async def test_a_status_line_without_a_reason_phrase(client):
    """Some servers and proxies send `HTTP/1.1 200` with no reason; the status is all that counts."""
    async with RawUpstream(b"HTTP/1.1 503\r\ncontent-length: 4\r\n\r\nbusy") as up:
        assert await fetch(client, up.url()) == (503, b"busy")


async def test_a_repeated_header_keeps_its_last_value(client):
    """Documents today's choice: `.headers` is a plain dict, the last of repeated names wins."""
    async with RawUpstream(response(headers=("x-a: 1", "x-a: 2", "set-cookie: a=1", "set-cookie: b=2"))) as up:
        resp = await call(client, up.url())
        assert resp.headers["x-a"] == "2"
        assert resp.headers["set-cookie"] == "b=2"
        await resp.read()


async def test_a_non_ascii_header_value_does_not_fail_the_answer(client):
    """Providers put UTF-8 (or stray Latin-1) in error headers; the answer must still be read."""
    answer = b"HTTP/1.1 200 OK\r\nx-msg: caf\xc3\xa9\r\nx-raw: caf\xe9\r\ncontent-length: 2\r\n\r\nok"
    async with RawUpstream(answer) as up:
        resp = await call(client, up.url())
        assert isinstance(resp.headers["x-msg"], str) and resp.headers["x-msg"].startswith("caf")
        assert isinstance(resp.headers["x-raw"], str)
        assert await resp.read() == b"ok"


async def test_large_request_and_response_bodies_arrive_whole(client):
    """Prompts with images run to megabytes, and so do some answers (embeddings, batches)."""
    async def echo(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(response(request.body[::-1]))

    body = os.urandom(8 * PIECE)
    async with RawUpstream(echo) as up:
        assert await fetch(client, up.url(), body=body, read_timeout=5.0) == (200, body[::-1])
        assert up.requests[0].values("content-length") == [str(len(body))]


async def test_iter_chunks_yields_each_piece_as_it_arrives(client):
    """Time to first token: a stream's first event reaches the gateway while the upstream is still
    writing, not when the body ends."""
    first_seen = asyncio.Event()

    async def stream(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        await asyncio.wait_for(first_seen.wait(), 3.0)
        await conn.send(b"9\r\ndata: 2\n\n\r\n0\r\n\r\n")

    async with RawUpstream(stream) as up:
        resp = await call(client, up.url())
        chunks = resp.iter_chunks()
        assert await asyncio.wait_for(anext(chunks), 2.0) == b"data: 1\n\n"
        first_seen.set()
        assert b"".join([c async for c in chunks]) == b"data: 2\n\n"


CHUNKED = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n"
           b"5\r\nhello\r\n"
           b"6;name=value\r\n world\r\n"  # a chunk extension
           b"A\r\n0123456789\r\n"
           b"0\r\nx-trailer: done\r\n\r\n")  # a trailer


@pytest.mark.parametrize("how", ["read", "iter_chunks"])
async def test_a_chunked_body_with_extensions_and_trailers(client, how):
    """Streams (SSE) arrive chunked; extensions and trailers are framing, never body bytes."""
    async with RawUpstream(CHUNKED) as up:
        resp = await call(client, up.url())
        body = await resp.read() if how == "read" else b"".join([c async for c in resp.iter_chunks()])
        assert body == b"hello world0123456789"
        assert await fetch(client, up.url()) == (200, b"hello world0123456789")
        assert len(up.connections) == 1  # framing understood: the connection was reusable


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK"])
async def test_a_body_delimited_by_the_connection_close(client, status_line):
    """Old or minimal servers send no length: the body is everything up to the close."""
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        conn.write(status_line + b"\r\ncontent-type: text/plain\r\n\r\n")
        await conn.send(b"part one, ")
        await conn.send(b"part two")
        conn.close()

    async with RawUpstream(answer) as up:
        assert await fetch(client, up.url()) == (200, b"part one, part two")
        assert await fetch(client, up.url()) == (200, b"part one, part two")
        assert len(up.connections) == 2


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
async def test_a_204_or_304_has_no_body_even_without_a_length(client, status):
    """A DELETE answered 204 on a kept-alive connection must not wait for a body that never comes."""
    async with RawUpstream(f"HTTP/1.1 {status}\r\nx-id: 1\r\n\r\n".encode()) as up:
        for _ in range(2):
            resp = await call(client, up.url(), method="DELETE", body=b"", headers={}, read_timeout=2.0)
            assert resp.status == int(status[:3])
            assert await asyncio.wait_for(resp.read(), 1.0) == b""
        assert len(up.connections) == 1


@pytest.mark.parametrize("informational", [b"HTTP/1.1 100 Continue\r\n\r\n",
                                           b"HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n"])
async def test_an_informational_answer_before_the_final_one_is_skipped(client, informational):
    """Some servers send `100 Continue` unasked (or 103 hints); the answer is the final status after it."""
    async with RawUpstream(informational + response(b"final", "201 Created")) as up:
        assert await fetch(client, up.url()) == (201, b"final")
        assert await fetch(client, up.url()) == (201, b"final")


# --- 3. keep-alive and the pool --------------------------------------------------------------------

async def test_sequential_requests_share_one_connection(client):
    """A TCP (and TLS) handshake per request would cost more than the gateway itself."""
    async with RawUpstream() as up:
        for _ in range(3):
            assert await fetch(client, up.url()) == (200, b"ok")
        assert len(up.connections) == 1
        assert len(up.requests) == 3


async def test_an_answer_with_connection_close_is_not_reused(client):
    """`Connection: close` means the server is going away; the next request needs a new connection."""
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        conn.write(response(headers=("connection: close",)))
        conn.close()

    async with RawUpstream(answer) as up:
        assert await fetch(client, up.url()) == (200, b"ok")
        assert await fetch(client, up.url()) == (200, b"ok")
        assert len(up.connections) == 2


async def test_a_kept_alive_connection_the_server_closed_is_not_reused(client):
    """Upstreams close idle connections (often after a few seconds): the client notices the EOF,
    closes its side, and the next request goes on a new connection."""
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(response())
        conn.write_eof()  # idle close, seen by the client before its next request

    async with RawUpstream(answer) as up:
        assert await fetch(client, up.url()) == (200, b"ok")
        assert await up.connections[0].wait_peer_closed(3.0), "the client kept a connection the server closed"
        assert await fetch(client, up.url()) == (200, b"ok")
        assert len(up.connections) == 2


async def test_a_request_racing_the_servers_idle_close(client):
    """The server closes a pooled connection just as a request is written on it (nothing answered):
    the request either succeeds on a new connection or fails fast as a retryable UpstreamError;
    today's client does the latter for a POST. The request after it succeeds."""
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        if len(conn.requests) == 2:
            conn.close()
        else:
            conn.write(response())

    async with RawUpstream(answer) as up:
        assert await fetch(client, up.url()) == (200, b"ok")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            outcome: object = await fetch(client, up.url())
        except (GatewayError, *TRANSPORT_ERRORS) as exc:
            outcome = exc if isinstance(exc, GatewayError) else map_transport_error(exc, "t")
            assert type(outcome) is UpstreamError, repr(exc)  # not a timeout, not "unreachable"
        else:
            assert outcome == (200, b"ok")
        assert loop.time() - started < 2.0
        assert await fetch(client, up.url()) == (200, b"ok")


async def test_a_response_abandoned_mid_body_is_not_reused(client):
    """A client that hangs up mid-stream leaves unread bytes on the connection; reusing it would
    hand them to the next request as its answer."""
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        if conn is up.connections[0]:
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"a" * 100)
            await conn.wait_peer_closed(5.0)
        else:
            conn.write(response(b"fresh"))

    async with RawUpstream(answer) as up:
        resp = await call(client, up.url())
        chunks = resp.iter_chunks()
        assert (await anext(chunks)).startswith(b"a")
        await resp.aclose()
        assert await up.connections[0].wait_peer_closed(3.0)
        assert await fetch(client, up.url()) == (200, b"fresh")
        assert len(up.connections) == 2


async def test_a_request_cancelled_before_its_answer_drops_the_connection(client):
    """The gateway's first-byte timeout cancels `send`; the late answer must not be read as the
    answer to the next request on a reused connection."""
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        if conn is up.connections[0] and len(conn.requests) == 1:
            await conn.wait_peer_closed(5.0)
            return
        conn.write(response(b"fresh"))

    async with RawUpstream(answer) as up:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await call(client, up.url())
        assert await up.connections[0].wait_peer_closed(3.0)
        assert await fetch(client, up.url()) == (200, b"fresh")


async def test_a_stream_read_to_its_end_returns_its_connection(client):
    """Streams are most of the traffic: each finished one leaves its connection for the next."""
    async with RawUpstream(CHUNKED) as up:
        for _ in range(3):
            resp = await call(client, up.url())
            assert b"".join([c async for c in resp.iter_chunks()]) == b"hello world0123456789"
            await resp.aclose()  # as the gateway does when a stream ends
        assert len(up.connections) == 1


async def test_pooled_connections_are_kept_per_upstream(client):
    """One pool serves every target: a request for one upstream must never ride another's connection."""
    async def echo(conn: RawConnection, request: RawRequest) -> None:
        conn.write(response(request.body))

    async with RawUpstream(echo) as a, RawUpstream(echo) as b:
        for i in range(3):
            assert await fetch(client, a.url(), body=b"a%d" % i) == (200, b"a%d" % i)
            assert await fetch(client, b.url(), body=b"b%d" % i) == (200, b"b%d" % i)
        assert [r.body for r in a.requests] == [b"a0", b"a1", b"a2"]
        assert [r.body for r in b.requests] == [b"b0", b"b1", b"b2"]
        assert len(a.connections) == len(b.connections) == 1


async def test_fifty_concurrent_requests_all_succeed(client):
    """A burst opens connections as needed and every request gets its own answer."""
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        await asyncio.sleep(0.01)  # overlap the requests
        conn.write(response(request.body))

    async with RawUpstream(answer) as up:
        results = await asyncio.gather(*(fetch(client, up.url(), body=b"n%d" % i) for i in range(50)))
        assert results == [(200, b"n%d" % i) for i in range(50)]
        assert 1 <= len(up.connections) <= 50


# --- 4. decompression ------------------------------------------------------------------------------

def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


ENCODINGS = {"gzip": ("gzip", gzip.compress), "deflate": ("deflate", zlib.compress),
             "raw-deflate": ("deflate", _deflate_raw)}


@pytest.mark.parametrize("how", ["read", "iter_chunks"])
@pytest.mark.parametrize("name", list(ENCODINGS))
async def test_a_compressed_body_comes_back_inflated(client, name, how):
    """The gateway parses JSON and SSE: it needs the inflated bytes whatever the provider chose."""
    encoding, compress = ENCODINGS[name]
    plain = b'{"choices":[{"text":"' + b"hello " * 5000 + b'"}]}'
    async with RawUpstream(response(compress(plain), headers=(f"content-encoding: {encoding}",))) as up:
        resp = await call(client, up.url())
        body = await resp.read() if how == "read" else b"".join([c async for c in resp.iter_chunks()])
        assert body == plain


@functools.cache
def gzip_bomb() -> bytes:
    """About 1 MiB of gzip inflating to 1 GiB of zeros: one deflated MiB after a full flush is the
    same bytes every time, so it is built once and repeated (0.3 s, mostly the CRC)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(PIECE)
    piece = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(zeros, crc)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + piece * 1024 + c.flush()
            + struct.pack("<II", crc, (1024 * PIECE) & 0xFFFFFFFF))


@pytest.mark.parametrize("how", ["read", "iter_chunks"])
async def test_a_gzip_bomb_stops_at_max_bytes_fast_and_in_bounded_memory(client, how):
    """max_bytes counts inflated bytes, and inflation is bounded as it goes: 1 MiB on the wire
    must not become 1 GiB in memory."""
    bomb = gzip_bomb()

    async def answer(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(response(bomb, headers=("content-encoding: gzip", "content-type: application/json")))

    async with RawUpstream(answer) as up:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with peak_rss_growth() as growth:
            async def attempt() -> None:
                resp = await call(client, up.url(), max_bytes=PIECE)
                if how == "read":
                    await resp.read()
                else:
                    async for _ in resp.iter_chunks():
                        pass
            exc, _ = await failure(attempt)
        assert isinstance(exc, UpstreamResponseTooLarge), repr(exc)
        assert loop.time() - started < 3.0
        assert growth[0] < 100 * PIECE, f"RSS grew {growth[0] / PIECE:.0f} MiB"


# --- 5. bounds -------------------------------------------------------------------------------------

LIMIT = 1000


def _framed(body: bytes, framing: str) -> bytes:
    if framing == "content-length":
        return response(body)
    if framing == "chunked":
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 300]), body[i:i + 300]) for i in range(0, len(body), 300))
        return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\n\r\n" + body  # then closed


def _framed_answer(body: bytes, framing: str):
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(_framed(body, framing))
        if framing == "close":
            conn.close()
    return answer


async def _drain(resp: UpstreamResponse, how: str) -> None:
    if how == "read":
        await resp.read()
    else:
        async for _ in resp.iter_chunks():
            pass


@pytest.mark.parametrize("how", ["read", "iter_chunks"])
@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
async def test_a_body_over_max_bytes_is_refused(client, framing, how):
    """The route's maxResponseBytes holds whatever the framing, one byte over is too large; the
    next request gets its own whole answer (no bytes of the refused one)."""
    async with RawUpstream(_framed_answer(b"x" * (LIMIT + 1), framing)) as up:
        async def attempt() -> None:
            await _drain(await call(client, up.url(), max_bytes=LIMIT), how)
        exc, _ = await failure(attempt)
        assert isinstance(exc, UpstreamResponseTooLarge), repr(exc)
        assert await fetch(client, up.url(), max_bytes=2 * LIMIT) == (200, b"x" * (LIMIT + 1))


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
async def test_the_rest_of_an_answer_over_max_bytes_is_not_read(client, framing):
    """Past the bound the client stops reading and drops the connection (it cannot be reused with
    an unread body on it): a 64 MiB answer is not downloaded to refuse it."""
    total = 64 * PIECE
    sent = [0]

    async def huge(conn: RawConnection, request: RawRequest) -> None:
        if framing == "content-length":
            head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total
        elif framing == "chunked":
            head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        else:
            head = b"HTTP/1.1 200 OK\r\n\r\n"
        conn.write(head)
        piece = b"%x\r\n%s\r\n" % (PIECE, b"z" * PIECE) if framing == "chunked" else b"z" * PIECE
        while sent[0] < total and await conn.send(piece):
            sent[0] += PIECE
        await conn.wait_peer_closed(5.0)

    async with RawUpstream(huge) as up:
        exc, _ = await failure(lambda: fetch(client, up.url(), max_bytes=LIMIT))
        assert isinstance(exc, UpstreamResponseTooLarge), repr(exc)
        assert await up.connections[0].wait_peer_closed(3.0)
        assert sent[0] < total


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
async def test_a_body_of_exactly_max_bytes_is_read(client, framing):
    """The bound is inclusive: an answer of exactly maxResponseBytes is whole."""
    async with RawUpstream(_framed_answer(b"y" * LIMIT, framing)) as up:
        assert await fetch(client, up.url(), max_bytes=LIMIT) == (200, b"y" * LIMIT)


async def test_a_huge_header_line_fails_fast(client):
    """A 1 MiB header line must be refused, not buffered (the head has no maxResponseBytes)."""
    answer = b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * PIECE + b"\r\ncontent-length: 2\r\n\r\nok"

    async def send_it(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(answer)

    async with RawUpstream(send_it) as up:
        with peak_rss_growth() as growth:
            _, error = await failure(lambda: fetch(client, up.url()))
        assert isinstance(error, UpstreamError), repr(error)
        assert growth[0] < 100 * PIECE


async def test_an_endless_header_stream_fails_fast(client):
    """A server sending header lines forever must be cut off by a header count or size bound, not
    by the read timeout (which never fires while bytes keep coming)."""
    cap = 64 * PIECE
    sent = [0]

    async def endless(conn: RawConnection, request: RawRequest) -> None:
        conn.write(b"HTTP/1.1 200 OK\r\n")
        while sent[0] < cap:
            lines = b"".join(b"x-h%d: v\r\n" % (sent[0] + i) for i in range(1000))
            if not await conn.send(lines):
                return
            sent[0] += len(lines)

    async with RawUpstream(endless) as up:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with peak_rss_growth() as growth:
            _, error = await failure(lambda: fetch(client, up.url(), read_timeout=10.0))
        assert isinstance(error, UpstreamError), repr(error)
        assert loop.time() - started < 5.0
        assert growth[0] < 100 * PIECE
        assert await up.connections[0].wait_peer_closed(3.0)
        assert sent[0] < cap


@pytest.mark.parametrize("head", [b"HTTP/1.1 abc OK\r\ncontent-length: 0\r\n\r\n",
                                  b"hello world, no status line\r\n\r\n",
                                  b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
                                  b"SSH-2.0-OpenSSH_9.2\r\n"])
async def test_a_malformed_status_line_fails(client, head):
    """A non-HTTP answer (wrong port, a proxy's garbage) is an upstream failure, not a hang or a 200."""
    async def answer(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(head)
        await conn.wait_peer_closed(5.0)

    async with RawUpstream(answer) as up:
        loop = asyncio.get_running_loop()
        started = loop.time()
        _, error = await failure(lambda: fetch(client, up.url(), read_timeout=1.0))
        assert isinstance(error, UpstreamError), repr(error)
        assert loop.time() - started < 1.0 + SLACK


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 5\r\n\r\nhello",
], ids=["short-content-length", "chunked-without-last-chunk", "bad-chunk-size", "corrupt-gzip"])
async def test_a_body_cut_short_or_misframed_is_an_error(client, answer):
    """A truncated answer must never pass as a complete one (a half JSON, a stream without end)."""
    async def send_then_close(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(answer)
        conn.close()

    async with RawUpstream(send_then_close) as up:
        _, error = await failure(lambda: fetch(client, up.url(), read_timeout=2.0))
        assert isinstance(error, UpstreamError), repr(error)
        assert not isinstance(error, UpstreamTimeout)


def _first_then_good(first: bytes):
    """`first` answers the server's first request, after which the client must drop that connection;
    every later request gets a good answer."""
    served: list[RawRequest] = []

    async def answer(conn: RawConnection, request: RawRequest) -> None:
        served.append(request)
        if len(served) == 1:
            await conn.send(first)
            await conn.wait_peer_closed(3.0)
        else:
            conn.write(response(b"good"))
    return answer


async def test_two_different_content_lengths_are_refused(client):
    """No right length exists: reading either would desynchronise a pooled connection shared by tenants."""
    answer = _first_then_good(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 5\r\n\r\nokxyz")
    async with RawUpstream(answer) as up:
        _, error = await failure(lambda: fetch(client, up.url()))
        assert isinstance(error, UpstreamError), repr(error)
        assert await up.connections[0].wait_peer_closed(3.0)
        assert await fetch(client, up.url()) == (200, b"good")


async def test_transfer_encoding_with_a_content_length_is_never_framed_by_the_length(client):
    """RFC 9112 6.3: Transfer-Encoding overrides Content-Length, or the answer is refused as a
    smuggling attempt (today); either way the connection is not reused. Framing by the length
    would leave bytes for the next request."""
    answer = _first_then_good(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"
                                     b"2\r\nok\r\n0\r\n\r\n")
    async with RawUpstream(answer) as up:
        try:
            outcome: object = await fetch(client, up.url())
        except (GatewayError, *TRANSPORT_ERRORS) as exc:
            outcome = exc if isinstance(exc, GatewayError) else map_transport_error(exc, "t")
            assert isinstance(outcome, UpstreamError), repr(exc)
        else:
            assert outcome == (200, b"ok")
        assert await up.connections[0].wait_peer_closed(3.0)
        assert await fetch(client, up.url()) == (200, b"good")


# --- 6. connecting and timeouts --------------------------------------------------------------------

async def test_a_refused_connection_is_unreachable(client):
    """Nothing listening: fail over at once, reported as upstream_unreachable."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    exc, error = await failure(lambda: fetch(client, f"http://127.0.0.1:{closed_port()}/v1"))
    assert type(error) is UpstreamConnectError, repr(exc)
    assert loop.time() - started < 2.0


async def test_a_connect_that_hangs_times_out_after_connect_timeout(client):
    """A blackholed upstream (SYNs dropped) is given up after connect_timeout, not read_timeout,
    as a TimeoutError (the executor makes it a first-byte timeout) mapped to UpstreamTimeout."""
    loop = asyncio.get_running_loop()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: once its queue is full the kernel drops new SYNs
        fillers: list[socket.socket] = []
        try:
            for _ in range(8):  # fill the accept queue until a connect hangs
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                try:
                    await asyncio.wait_for(loop.sock_connect(filler, listener.getsockname()), 0.2)
                except TimeoutError:
                    break
            else:
                pytest.skip("this kernel accepts connections beyond the listen backlog")
            started = loop.time()
            exc, error = await failure(lambda: client.send(req(f"http://127.0.0.1:{listener.getsockname()[1]}/"),
                                                           connect_timeout=0.3, read_timeout=10.0))
            assert isinstance(exc, TimeoutError), repr(exc)
            assert isinstance(error, UpstreamTimeout), repr(error)
            assert 0.25 <= loop.time() - started < 0.3 + SLACK
        finally:
            for filler in fillers:
                filler.close()


async def test_an_upstream_that_closes_without_answering_fails_fast(client):
    """A crashing upstream: a retryable UpstreamError at once, not a timeout."""
    async def close_at_once(conn: RawConnection, request: RawRequest) -> None:
        conn.close()

    async with RawUpstream(close_at_once) as up:
        loop = asyncio.get_running_loop()
        started = loop.time()
        exc, error = await failure(lambda: fetch(client, up.url(), read_timeout=5.0))
        assert isinstance(error, UpstreamError) and not isinstance(error, UpstreamTimeout), repr(exc)
        assert loop.time() - started < 2.0


async def test_an_upstream_that_never_answers_times_out_after_read_timeout(client):
    """A hung upstream is a 504 after the route's timeout, never a request held forever."""
    async def never(conn: RawConnection, request: RawRequest) -> None:
        await conn.stalled()

    async with RawUpstream(never) as up:
        loop = asyncio.get_running_loop()
        started = loop.time()
        exc, error = await failure(lambda: call(client, up.url(), read_timeout=0.3))
        elapsed = loop.time() - started
        assert isinstance(exc, TimeoutError) and isinstance(exc, TRANSPORT_ERRORS), repr(exc)
        assert isinstance(error, UpstreamTimeout)
        assert 0.25 <= elapsed < 0.3 + SLACK


@pytest.mark.parametrize("how", ["read", "iter_chunks"])
async def test_a_body_that_stalls_times_out(client, how):
    """A stream that stops mid-way fails after read_timeout of silence."""
    async def stall(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst")
        await conn.stalled()

    async with RawUpstream(stall) as up:
        resp = await call(client, up.url(), read_timeout=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def rest() -> None:
            if how == "read":
                await resp.read()
            else:
                async for _ in resp.iter_chunks():
                    pass
        exc, error = await failure(rest)
        assert isinstance(exc, TimeoutError), repr(exc)
        assert isinstance(error, UpstreamTimeout)
        assert 0.25 <= loop.time() - started < 0.3 + SLACK
        await resp.aclose()  # as the executor does after a failed read


@pytest.mark.parametrize("how", ["read", "iter_chunks"])
async def test_the_read_timeout_is_per_read_not_for_the_whole_body(client, how):
    """A slow but live stream (a byte every 100 ms, 1 s in all) outlives a 0.3 s read_timeout."""
    async def trickle(conn: RawConnection, request: RawRequest) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
        for i in range(10):
            await asyncio.sleep(0.1)
            await conn.send(b"%d" % i)

    async with RawUpstream(trickle) as up:
        resp = await call(client, up.url(), read_timeout=0.3)
        body = await resp.read() if how == "read" else b"".join([c async for c in resp.iter_chunks()])
        assert body == b"0123456789"


# --- 7. TLS ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_ca():
    trustme = pytest.importorskip("trustme", reason="trustme (the `test` extra) makes the TLS tests' certificates")
    ca = trustme.CA()
    return ca, ca.issue_cert("localhost")


def _server_context(cert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


async def test_an_upstream_with_an_unknown_ca_is_refused(client, tls_ca):
    """Certificates are verified against the system CAs: a self-signed upstream is never trusted."""
    _, cert = tls_ca
    async with RawUpstream(ssl=_server_context(cert)) as up:
        exc, error = await failure(lambda: fetch(client, up.url("/v1", host="localhost")))
        assert isinstance(error, UpstreamError), repr(exc)


TLS_CLIENT = """
import asyncio, json, sys
from aigw_gateway.providers.base import UpstreamRequest
from aigw_gateway.upstream import TRANSPORT_ERRORS, UpstreamClient, map_transport_error

async def main():
    client = UpstreamClient()
    out = []
    for url in sys.argv[1:]:
        try:
            resp = await client.send(UpstreamRequest("POST", url, {}, b"{}"), connect_timeout=3, read_timeout=3)
            out.append({"status": resp.status, "body": (await resp.read()).decode()})
        except TRANSPORT_ERRORS as exc:
            out.append({"error": map_transport_error(exc, "t").code, "raised": type(exc).__name__})
    await client.aclose()
    print(json.dumps(out))

asyncio.run(main())
"""


async def test_tls_with_a_trusted_ca_checks_the_host_name(tls_ca, tmp_path):
    """An https upstream whose CA is trusted (SSL_CERT_FILE, read when the client's context is made,
    hence a fresh process) answers as `localhost`; the same cert reached as 127.0.0.1 is refused:
    the name is checked, and SNI carries it."""
    ca, cert = tls_ca
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with RawUpstream(response(b"secure"), ssl=_server_context(cert)) as up:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", TLS_CLIENT, up.url("/v1", host="localhost"), up.url("/v1"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "SSL_CERT_FILE": str(ca_file), "PYTHONPATH": str(ROOT / "gateway")})
        out, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, err.decode()
        by_name, by_ip = json.loads(out)
        assert by_name == {"status": 200, "body": "secure"}
        assert "error" in by_ip, by_ip
        assert by_ip["error"].startswith("upstream_"), by_ip


# --- 8. the client's lifetime ----------------------------------------------------------------------

async def test_closing_the_client_closes_its_pooled_connections():
    """A config swap or shutdown closes the pool: no connection (fd) is left open upstream."""
    client = UpstreamClient()
    async with RawUpstream() as up:
        await asyncio.gather(*(fetch(client, up.url()) for _ in range(3)))
        assert up.connections
        await client.aclose()
        for conn in up.connections:
            assert await conn.wait_peer_closed(3.0)

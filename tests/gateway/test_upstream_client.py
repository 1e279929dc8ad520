"""The gateway's upstream HTTP client (`aigw_gateway.upstream`) at its public interface only:
`UpstreamClient.send` → `UpstreamResponse` (.status, .headers, read, iter_chunks, aclose) and
`map_transport_error` for what it raises. Each test scripts the exact bytes of a raw HTTP/1.1
server on 127.0.0.1 (tests/fakes/raw_upstream.py) and reads what arrived there byte for byte.

This is the contract any implementation of the client keeps. Here: what goes on the wire,
response framing, keep-alive and the pool, the client's lifetime; test_upstream_bounds.py has
decompression, bounds, timeouts and TLS. Failures are judged as the gateway judges them: a
GatewayError raised directly, or an exception in TRANSPORT_ERRORS that `map_transport_error` turns
into one. (Whole-gateway behaviour against hostile answers lives in test_hostile_upstream.py;
cookies through the gateway in test_upstream_cookies.py; the pool's own flow control, keep-alive
sweep and connection cap in test_upstream_pool.py.)
"""

from __future__ import annotations

import asyncio
import os

import pytest

from aigw_gateway.errors import GatewayError, UpstreamError
from aigw_gateway.upstream import TRANSPORT_ERRORS, UpstreamClient, map_transport_error
from tests.fakes.raw_upstream import RawConnection, RawRequest, RawUpstream, response
from tests.gateway.upstream_support import PIECE, call, client, fetch  # noqa: F401  (client: a fixture)

pytestmark = pytest.mark.timeout(20)


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

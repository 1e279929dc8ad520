"""The upstream client's contract, continued (see test_upstream_client.py for the interface and
how failures are judged): decompression, bounds on what an upstream sends, connecting and
timeouts, TLS.
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
import zlib

import pytest

from aigw_gateway.errors import (GatewayError, UpstreamConnectError, UpstreamError, UpstreamResponseTooLarge,
                                 UpstreamTimeout)
from aigw_gateway.upstream import TRANSPORT_ERRORS, UpstreamResponse, map_transport_error
from tests.fakes.raw_upstream import RawConnection, RawRequest, RawUpstream, response
from tests.gateway.upstream_support import (PIECE, ROOT, SLACK, call, client, closed_port, failure,  # noqa: F401
                                            fetch, peak_rss_growth, req)  # (client: a fixture)

pytestmark = pytest.mark.timeout(20)


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
                await _drain(await call(client, up.url(), max_bytes=PIECE), how)
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

        exc, error = await failure(lambda: _drain(resp, how))
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

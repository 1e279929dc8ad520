"""aigw's HTTP protocol sends a response's head with its first body part in one write
(http_head_join.py), never holds a head whose body is late, and keeps uvicorn's connection
behaviour: keep-alive, `connection: close`, HEAD, 100-continue, pipelining, an app that raises.

The server is a real uvicorn on uvloop with aigw's protocol (head_join_server.py) in its own
process; the client is a raw socket, so what is checked is what goes over the wire."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("head_join_server.py")
ROOT = Path(__file__).resolve().parents[2]


def _start(keep_alive: int):
    proc = subprocess.Popen([sys.executable, str(SERVER), str(keep_alive)], stdout=subprocess.PIPE, cwd=ROOT)
    port = int(proc.stdout.readline())  # printed once the socket is bound
    deadline = time.monotonic() + 10
    while True:  # bound before serve(): wait until it answers
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /unary HTTP/1.1\r\nHost: x\r\n\r\n")
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    return proc, port


@pytest.fixture(scope="module")
def server():
    proc, port = _start(5)
    yield port
    proc.kill()
    proc.wait()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def get(path: str, *, method: str = "GET", extra: bytes = b"") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method.encode(), path.encode(), extra)


class Reader:
    """Reads HTTP/1.1 answers from a raw socket, counting the recv calls that returned data."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.reads = 0

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.reads += 1
        self.buf += data

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._more()
        at = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:at], self.buf[at:]
        return out

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def answer(self, *, head_only: bool = False) -> tuple[bytes, bytes]:
        head = self.until(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return head, b"" if head_only else self.take(length)

    def closed(self, within: float) -> bool:
        """Whether the server closes the connection within `within` seconds (a bounded poll)."""
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(5)


def writes_so_far(reader: Reader) -> int:
    reader.sock.sendall(get("/writes"))
    return int(reader.answer()[1])


def test_a_unary_answer_leaves_in_one_write(server):
    reader = Reader(connect(server))
    reader.sock.sendall(get("/unary"))
    head, body = reader.answer()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"hello"
    assert writes_so_far(reader) == 1  # uvicorn alone: 2 (the head, then the body)


def data_segments_in(sock: socket.socket) -> int:
    """TCP segments with data this socket received (Linux's tcp_info.tcpi_data_segs_in)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 156:
        pytest.skip("this kernel's tcp_info has no tcpi_data_segs_in (Linux >= 4.6)")
    return struct.unpack_from("I", info, 152)[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tcp_info's segment counts are Linux's")
def test_a_unary_answer_arrives_in_one_segment(server):
    reader = Reader(connect(server))
    for path, body in (("/unary", b"hello"), ("/chunked", b"")):
        before = data_segments_in(reader.sock)
        reader.sock.sendall(get(path))
        if body:
            assert reader.answer()[1] == body
            assert data_segments_in(reader.sock) - before == 1  # uvicorn alone: 2
        else:
            reader.until(b"0\r\n\r\n")
            assert data_segments_in(reader.sock) - before == 2  # uvicorn alone: 3


def test_chunked_and_large_answers_join_their_head_too(server):
    reader = Reader(connect(server))
    reader.sock.sendall(get("/chunked"))
    head = reader.until(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    assert reader.until(b"0\r\n\r\n") == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"
    assert writes_so_far(reader) == 2  # head + first part, then the last part and the end
    reader.sock.sendall(get("/big"))
    head, body = reader.answer()
    assert body == b"x" * (200 * 1024)
    assert writes_so_far(reader) == 2 + 1 + 1  # /writes' own answer, then /big in one writelines


def test_answered_requests_are_freed_without_the_garbage_collector(server):
    reader = Reader(connect(server))  # the server runs with gc disabled
    for _ in range(50):
        reader.sock.sendall(get("/unary"))
        assert reader.answer()[1] == b"hello"
    reader.sock.sendall(get("/cycles"))
    assert int(reader.answer()[1]) <= 3  # this request's, and maybe a few of other tests' connections


def test_a_stream_gets_its_head_before_its_first_event(server):
    reader = Reader(connect(server))
    reader.sock.sendall(get("/stream"))
    head = reader.until(b"\r\n\r\n")  # the first event waits for /release: the head came alone
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head and reader.buf == b""
    other = Reader(connect(server))
    other.sock.sendall(get("/release"))
    assert other.answer()[0].startswith(b"HTTP/1.1 204")
    assert reader.until(b"0\r\n\r\n") == b"9\r\ndata: 1\n\n\r\n0\r\n\r\n"


def test_keep_alive_serves_many_answers_on_one_connection(server):
    reader = Reader(connect(server))
    for _ in range(50):
        reader.sock.sendall(get("/unary"))
        head, body = reader.answer()
        assert b"connection: close" not in head.lower() and body == b"hello"
    assert not reader.closed(0.2)


def test_connection_close_answers_then_closes(server):
    reader = Reader(connect(server))
    reader.sock.sendall(get("/close"))
    head, body = reader.answer()
    assert b"connection: close" in head and body == b"bye"
    assert reader.closed(5)
    reader = Reader(connect(server))  # a client that asks to close
    reader.sock.sendall(get("/unary", extra=b"Connection: close\r\n"))
    head, body = reader.answer()
    assert b"connection: close" in head and body == b"hello"
    assert reader.closed(5)
    reader = Reader(connect(server))  # HTTP/1.0 without keep-alive
    reader.sock.sendall(b"GET /unary HTTP/1.0\r\n\r\n")
    head, body = reader.answer()
    assert body == b"hello" and reader.closed(5)


def test_a_head_request_gets_the_head_alone_and_the_connection_stays(server):
    reader = Reader(connect(server))
    reader.sock.sendall(get("/unary", method="HEAD"))
    head, _ = reader.answer(head_only=True)
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 5" in head
    reader.sock.sendall(get("/unary"))
    head, body = reader.answer()
    assert head.startswith(b"HTTP/1.1 200") and body == b"hello"


def test_expect_100_continue_then_the_answer(server):
    reader = Reader(connect(server))
    reader.sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert reader.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    reader.sock.sendall(b"ping")
    head, body = reader.answer()
    assert head.startswith(b"HTTP/1.1 200") and body == b"ping"


def test_pipelined_requests_are_answered_in_order(server):
    reader = Reader(connect(server))
    reader.sock.sendall(get("/echo", method="POST", extra=b"Content-Length: 3\r\n") + b"one"
                        + get("/unary") + get("/echo", method="POST", extra=b"Content-Length: 3\r\n") + b"two")
    assert [reader.answer()[1] for _ in range(3)] == [b"one", b"hello", b"two"]


def test_an_app_that_raises_gets_a_500_or_a_closed_connection(server):
    reader = Reader(connect(server))
    reader.sock.sendall(get("/raise"))
    head, body = reader.answer()
    assert head.startswith(b"HTTP/1.1 500") and body == b"Internal Server Error"
    assert reader.closed(5)
    reader = Reader(connect(server))
    reader.sock.sendall(get("/raise-after-start"))
    head = reader.until(b"\r\n\r\n")  # the head was sent; the body never comes
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 10" in head
    assert reader.closed(5) and reader.buf == b""


def test_an_idle_kept_alive_connection_closes_after_the_keep_alive_timeout():
    proc, port = _start(1)
    try:
        reader = Reader(connect(port))
        reader.sock.sendall(get("/unary"))
        reader.answer()
        answered = time.monotonic()
        assert reader.closed(1 + 3.0)  # the timeout plus slack for a busy machine
        assert time.monotonic() - answered >= 0.9
        busy = Reader(connect(port))  # requests closer together than the timeout keep it open
        for _ in range(4):
            busy.sock.sendall(get("/unary"))
            assert busy.answer()[1] == b"hello"
            assert not busy.closed(0.6)
    finally:
        proc.kill()
        proc.wait()

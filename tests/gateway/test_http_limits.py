"""Hostile clients on raw sockets: oversized and endless heads, slowloris, slow bodies, too many
connections. The gateway answers 431/408/503 or closes, its memory stays bounded (RSS from /proc),
and another tenant keeps getting 200s meanwhile."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.gateway.harness import TENANT_KEY, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def connect(gw) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=10)


def send_quietly(sock: socket.socket, data: bytes, piece: int = 1 << 20) -> int:
    """Send as much as the server takes; it may close on us mid-way. Bytes sent."""
    sent = 0
    try:
        for i in range(0, len(data), piece):
            sock.sendall(data[i:i + piece])
            sent += len(data[i:i + piece])
    except OSError:
        pass
    return sent


def status_of(sock: socket.socket) -> int | None:
    """The status of the answer, or None when the server closed without one."""
    buf = b""
    try:
        while b"\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    return int(buf.split()[1]) if buf.startswith(b"HTTP/1.1 ") else None


def post_ok(gw) -> int:
    return httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, json=CHAT, timeout=10).status_code


@pytest.fixture
def gateway(tmp_path, fake_openai, start_gateway):
    def start(*extra: str):
        return start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url)), *extra)
    return start


def test_a_16_mib_header_gets_431(gateway):
    gw = gateway()
    sock = connect(gw)
    send_quietly(sock, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (16 << 20) + b"\r\n\r\n")
    assert status_of(sock) == 431
    assert post_ok(gw) == 200


def test_100000_headers_get_431(gateway):
    gw = gateway()
    sock = connect(gw)
    head = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(100_000)) + b"\r\n"
    send_quietly(sock, head)
    assert status_of(sock) == 431
    assert post_ok(gw) == 200


def test_headers_within_the_limits_are_served(gateway):
    gw = gateway()
    headers = {**AUTH, **{f"x-extra-{i}": "v" * 500 for i in range(90)}}  # 90 headers, ~45 KiB
    assert httpx.post(gw.url + "/v1/chat/completions", headers=headers, json=CHAT, timeout=10).status_code == 200


def test_an_endless_header_does_not_grow_the_gateway(gateway):
    gw = gateway()
    assert post_ok(gw) == 200
    before = rss_mb(gw.proc.pid)
    sock = connect(gw)  # unauthenticated: no key, just a header that never ends
    sent = send_quietly(sock, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"a" * (300 << 20))
    assert status_of(sock) in (431, None)
    grown = rss_mb(gw.proc.pid) - before
    assert sent < 300 << 20, "the gateway read all 300 MiB"
    assert grown < 20, f"RSS grew {grown:.1f} MB"
    assert post_ok(gw) == 200


def test_slowloris_connections_are_closed_by_the_header_deadline(gateway):
    gw = gateway("--header-timeout", "2")
    socks = [connect(gw) for _ in range(50)]
    opened = time.monotonic()
    for sock in socks:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()
    served: list[int] = []

    def other_tenant() -> None:
        while not stop.is_set():
            served.append(post_ok(gw))
    thread = threading.Thread(target=other_tenant)
    thread.start()
    closed_at: dict[int, float] = {}
    try:
        while len(closed_at) < len(socks) and time.monotonic() - opened < 10:
            for i, sock in enumerate(socks):
                if i in closed_at:
                    continue
                try:
                    sock.sendall(b"X-Drip: 1\r\n")  # a header line now and then keeps nothing alive
                    sock.settimeout(0.01)
                    data = sock.recv(4096)
                    if data == b"" or data.startswith(b"HTTP/1.1 408"):
                        closed_at[i] = time.monotonic() - opened
                except (TimeoutError, BlockingIOError):
                    pass
                except OSError:
                    closed_at[i] = time.monotonic() - opened
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert len(closed_at) == 50, f"{50 - len(closed_at)} connections still open after 10 s"
    assert max(closed_at.values()) < 2 + 3.0  # the deadline plus slack for a busy machine
    assert served and set(served) == {200}


def test_a_slow_body_gets_408(gateway):
    gw = gateway("--body-timeout", "1")
    sock = connect(gw)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TENANT_KEY.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":")
    started = time.monotonic()
    assert status_of(sock) in (408, None)
    assert time.monotonic() - started < 1 + 3.0
    assert "Traceback" not in gw.log()


def test_a_client_that_leaves_mid_body_is_logged_once_as_499(gateway):
    gw = gateway()
    sock = connect(gw)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TENANT_KEY.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nX-Request-Id: leaver-1\r\n\r\n{\"a\":")
    time.sleep(0.3)  # let the gateway start reading the body, then leave
    sock.close()
    deadline = time.monotonic() + 10
    while "leaver-1" not in gw.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in gw.log().splitlines() if "leaver-1" in line]
    assert len(lines) == 1 and "499" in lines[0] and " INFO " in lines[0], lines
    assert "Traceback" not in gw.log() and "ClientDisconnect" not in gw.log()


def test_connections_beyond_the_cap_get_503(gateway):
    gw = gateway("--max-connections", "10")
    idle = [connect(gw) for _ in range(10)]
    try:
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:
            status = httpx.get(gw.url + "/healthz", timeout=5).status_code
            if status == 503:
                break
            time.sleep(0.05)
        assert status == 503
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while post_ok(gw) != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)

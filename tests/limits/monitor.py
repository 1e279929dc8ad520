"""Watch the commands a Redis server executes (MONITOR over a raw socket, in a thread).

Commands a Lua script runs are tagged `[<db> lua]` by Redis; `client_commands()` leaves them
out, so what remains is what clients sent: one line per round trip.
"""

from __future__ import annotations

import socket
import threading
import time

from tests.fakes.redis_server import RedisServer


class Monitor:
    def __init__(self, server: RedisServer) -> None:
        self._sock = socket.create_connection((server.host, server.port), timeout=5)
        self._sock.sendall(b"MONITOR\r\n")
        self._buf = b""
        self.lines: list[str] = []
        self._lock = threading.Lock()
        first = self._read_line()
        assert first == "+OK", first
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read_line(self) -> str:
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("monitor connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                line = self._read_line()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.lines.append(line)

    def mark(self) -> str:
        """Send a PING with a unique payload through another connection and wait until it is
        seen: everything executed before the call is then in `lines`."""
        token = f"mark-{time.monotonic_ns()}"
        with socket.create_connection((self._sock.getpeername()[0], self._sock.getpeername()[1]), timeout=5) as s:
            s.sendall(f"*2\r\n$4\r\nECHO\r\n${len(token)}\r\n{token}\r\n".encode())
            s.recv(1024)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if any(token in line for line in self.lines):
                    return token
            time.sleep(0.005)
        raise AssertionError("MONITOR did not report the marker within 5 s")

    def client_commands_between(self, start: str, end: str) -> list[str]:
        with self._lock:
            lines = list(self.lines)
        begin = next(i for i, line in enumerate(lines) if start in line)
        finish = next(i for i, line in enumerate(lines) if end in line)
        return [line for line in lines[begin + 1 : finish] if " lua] " not in line]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

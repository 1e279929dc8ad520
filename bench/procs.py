"""Start, pin, watch and stop the bench's processes; every one is stopped at the end, even on
Ctrl-C, SIGTERM or a failure.

Each process runs in its own session (process group), so stopping it also stops what it spawned
(uvicorn's workers, multiprocessing helpers) and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def taskset(cpus: str | None) -> list[str]:
    """`taskset -c CPUS` as a command prefix, or nothing when unpinned or taskset is missing."""
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


def pin_all_threads(pid: int, cpus: str) -> None:
    """Pin every thread of an already running process (e.g. a Redis started by someone else's code)."""
    wanted = {int(c) for part in cpus.split(",") for c in _cpu_range(part)}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), wanted)
        except (ProcessLookupError, PermissionError):
            pass


def _cpu_range(part: str) -> range:
    lo, _, hi = part.partition("-")
    return range(int(lo), int(hi or lo) + 1)


class Proc:
    """One child process (group) with its log file."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, *, cpus: str | None = None,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = [*taskset(cpus), *argv]
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group, wait up to `timeout`, then SIGKILL whatever of the group is left."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        kill_group(self.popen.pid)  # leftovers, e.g. workers of a leader that died
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


class Supervisor:
    """Owns every process the bench starts; `with Supervisor(...)` stops them all on the way out."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []
        self.closers: list = []  # extra cleanups (e.g. RedisServer.stop), run in reverse order

    def start(self, name: str, argv: Sequence[str], **kw) -> Proc:
        proc = Proc(name, argv, self.log_dir, **kw)
        self.procs.append(proc)
        self.record(name, proc.pid)
        return proc

    def record(self, name: str, pid: int) -> None:
        """Note a started process in <log_dir>/processes.jsonl (lets a test check they are all gone)."""
        with open(self.log_dir / "processes.jsonl", "a") as f:
            f.write(json.dumps({"name": name, "pid": pid}) + "\n")

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def __enter__(self) -> Supervisor:
        def to_interrupt(signum: int, _frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
        self._old = {s: signal.signal(s, to_interrupt) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        return self

    def __exit__(self, *exc: object) -> None:
        # Ignore further Ctrl-C while cleaning up: a half-done cleanup is what leaves processes behind.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for proc in reversed(self.procs):
                proc.stop()
            self.procs.clear()
            for close in reversed(self.closers):
                try:
                    close()
                except Exception:  # noqa: BLE001 - cleanup must go on
                    pass
            self.closers.clear()
        finally:
            signal.signal(signal.SIGINT, old_int)
            for s, h in self._old.items():
                signal.signal(s, h)


def run_captured(argv: Sequence[str]) -> tuple[int, str]:
    """Run a command in its own process group (stderr passed through) and return (code, stdout).
    If the bench is interrupted meanwhile, the command and everything it started are killed."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, _ = p.communicate()
        return p.returncode, out
    except BaseException:
        kill_group(p.pid)
        p.wait()
        raise


def kill_group(pgid: int) -> None:
    for pid in group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_http(url: str, proc: Proc | None, timeout: float = 30.0, ok=lambda status, body: status == 200) -> bytes:
    """Poll `url` until `ok(status, body)`; fail early with the log if `proc` exits."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; log:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body = r.read()
                if ok(r.status, body):
                    return body
                last = f"{r.status} {body[:200]!r}"
        except urllib.error.HTTPError as e:
            last = f"{e.code} {e.read()[:200]!r}"
        except (OSError, ValueError) as e:
            last = str(e)
        time.sleep(0.1)
    tail = proc.log_tail() if proc is not None else ""
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s (last: {last}); log:\n{tail}")


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p not in out:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def group_members(pgid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:  # state ppid pgrp
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""

"""Run `aigw serve` as a real subprocess on a free loopback port, and wait for it (bounded)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TENANT_KEY = "sk-tenant-test-1"


def clear_of_a_minute_edge(seconds: float = 10.0) -> None:
    """Rate limits count in windows aligned to the clock's minute (limits/windows.py): a test that
    needs its requests in ONE window starts at least `seconds` before the next edge (waiting for
    the edge to pass when it is closer; at most `seconds` of waiting)."""
    left = 60.0 - time.time() % 60.0
    if left < seconds:
        time.sleep(left + 0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if "--ops-port" not in args:
            args = [*args, "--ops-port", str(free_port())]
        self.ops_port = int(args[args.index("--ops-port") + 1])
        self.ops_url = f"http://127.0.0.1:{self.ops_port}"  # /metrics and /internal/report
        self.log_path = log_path
        self._log = open(log_path, "wb")
        full_env = {**os.environ, "PYTHONPATH": f"{ROOT / 'gateway'}{os.pathsep}{ROOT / 'operator'}", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aigw_gateway.cli", "serve", "--port", str(self.port), *args],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=str(ROOT),
        )

    def wait_ready(self, timeout: float = 15.0, generation: int | None = None) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(self.url + "/readyz", timeout=1.0)
                last = r.text
                if r.status_code == 200 and (generation is None or r.json()["generation"] >= generation):
                    return r.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"gateway not ready after {timeout}s (last /readyz: {last}):\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> GatewayProcess:
        gw = GatewayProcess(list(args), tmp_path / f"gateway-{len(started)}.log", env)
        started.append(gw)
        if wait:
            gw.wait_ready()
        return gw

    yield start
    for gw in started:
        gw.stop()


def write_crs(path: Path, base_url: str, *, model: str = "gpt-test", upstream_model: str = "fake",
              extra: str = "", upstream_key: str = "sk-upstream-test", max_body: int | None = None,
              provider: str = "openai-compatible") -> Path:
    """A complete local setup: credential + Secret, one route, one tenant + key Secret."""
    gateway = ""
    if max_body is not None:
        gateway = f"""---
apiVersion: aigw.dev/v1alpha1
kind: AIGateway
metadata: {{name: local}}
spec:
  gateway: {{maxRequestBodyBytes: {max_body}}}
"""
    path.write_text(f"""apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: upstream}}
spec:
  provider: {provider}
  baseURL: {base_url}
  apiKeySecretRef: {{name: upstream-key, key: apiKey}}
---
apiVersion: v1
kind: Secret
metadata: {{name: upstream-key}}
stringData: {{apiKey: {upstream_key}}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: main}}
spec:
  model: {model}
  targets:
    - credentialRef: upstream
      model: {upstream_model}
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team-a}}
spec:
  apiKeySecretRefs: [{{name: team-a-key}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: team-a-key}}
stringData: {{apiKey: {TENANT_KEY}}}
{gateway}{extra}""")
    return path

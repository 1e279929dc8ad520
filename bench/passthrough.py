#!/usr/bin/env python3
"""Passthrough against translation, in one run: Anthropic Messages client -> Anthropic target.

Two gateways serve the same config on the same machine, interleaved round by round:
  translated  the gateway at --base (default: the commit before passthrough existed, exported
              with `git archive` into a temporary folder): Messages -> canonical -> Messages
  passthrough this checkout: the client's bytes up, the provider's bytes down
Bodies: a small request, and Claude Code's recorded request (tests/fixtures/agents, ~49 KB of
system prompt and tools; its mid-conversation system turn removed, which the translated path
refused). Load: bench/loadgen.py closed loop. Upstream: the fake Anthropic (tests/fakes).

    .venv/bin/python bench/passthrough.py [--duration 8] [--rounds 2] [--concurrency 16]

Prints a table: req/s and the gateway's CPU ms per request (utime+stime from /proc), and the
gateway's own request work per path measured in process (no network, less noise).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from procs import free_port  # noqa: E402
from tests.fakes.anthropic_provider import FakeAnthropic  # noqa: E402
from tests.fixtures.agents import claude_code  # noqa: E402

KEY = "sk-bench-tenant"
CRS = """apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: anthropic}}
spec: {{provider: anthropic, baseURL: "{base}", apiKeySecretRef: {{name: up, key: apiKey}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: up}}
stringData: {{apiKey: sk-ant-bench}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: claude}}
spec:
  model: claude-route
  targets: [{{credentialRef: anthropic, model: "claude-fake~no_tools=1", pricing: {{inputPerMillion: 3, outputPerMillion: 15}}}}]
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: bench}}
spec:
  apiKeySecretRefs: [{{name: bench-key}}]
  limits: {{requestsPerMinute: 100000000, tokensPerMinute: 1000000000000}}
---
apiVersion: v1
kind: Secret
metadata: {{name: bench-key}}
stringData: {{apiKey: {key}}}
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_gateway(code: Path, crs: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{code / 'gateway'}{os.pathsep}{code / 'operator'}"}
    proc = subprocess.Popen([sys.executable, "-m", "aigw_gateway.cli", "serve", "--port", str(port), "-f", str(crs)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=str(code))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            import urllib.request
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gateway at {code} did not become ready; see {log}")


def load(url: str, body: Path, seconds: float, concurrency: int) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "loadgen.py"), url + "/v1/messages", "--mode", "closed",
                          "--concurrency", str(concurrency), "--duration", str(seconds), "--body-file", str(body),
                          "-H", f"x-api-key: {KEY}", "-H", "anthropic-version: 2023-06-01"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def in_process(raw: bytes, n: int = 300) -> dict[str, float]:
    """Microseconds of the gateway's own request work per path, no network: parse, estimate,
    and the upstream body (translated: Messages -> canonical -> Messages; passthrough: splice)."""
    import orjson

    sys.path[:0] = [str(ROOT / "gateway")]
    from aigw_gateway.ingress.anthropic import INGRESS
    from aigw_gateway.limits.estimate import estimate_chat_tokens
    from aigw_gateway.passthrough import anthropic as native
    from aigw_gateway.passthrough.base import NativeRequest
    from aigw_gateway.providers.anthropic import to_anthropic

    def translated() -> bytes:
        canonical = INGRESS.parse_request(orjson.loads(raw))
        estimate_chat_tokens(canonical, 4096)
        return orjson.dumps(to_anthropic("claude-up", canonical, False))

    def passthrough() -> bytes:
        body = orjson.loads(raw)
        native.estimate(body, 4096)
        return NativeRequest("anthropic", "chat", body, raw, "claude-route").body_bytes("claude-up")

    best: dict[str, float] = {}
    for _ in range(3):
        for fn in (translated, passthrough):
            started = time.perf_counter()
            for _ in range(n):
                fn()
            best[fn.__name__] = min(best.get(fn.__name__, 1e9), (time.perf_counter() - started) / n * 1e6)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="8b033a3", help="git revision of the translating gateway")
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aigw-bench-pass-"))
    base = work / "base"
    base.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)

    recorded = json.loads(claude_code.BODY.read_bytes())
    recorded["messages"] = [m for m in recorded["messages"] if m.get("role") != "system"]
    bodies = {
        "small": {"model": "claude-route", "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}]},
        "claude-code 49KB": {**recorded, "model": "claude-route", "stream": False},
    }
    files = {}
    for name, body in bodies.items():
        files[name] = work / f"{name.split()[0]}.json"
        files[name].write_text(json.dumps(body))

    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    with FakeAnthropic(api_key="sk-ant-bench") as fake:
        crs = work / "crs.yaml"
        crs.write_text(CRS.format(base=fake.base_url, key=KEY))
        gateways = {"translated": start_gateway(base, crs, work / "translated.log"),
                    "passthrough": start_gateway(ROOT, crs, work / "passthrough.log")}
        try:
            for name, body in files.items():  # warm up, and prove both answer
                for proc, url in gateways.values():
                    stats = load(url, body, 1.0, 4)
                    assert stats.get("ok", 0) > 0 and not stats.get("errors"), (name, url, stats)
            for _ in range(args.rounds):
                for name, body in files.items():
                    for mode, (proc, url) in gateways.items():
                        before = cpu_seconds(proc.pid)
                        stats = load(url, body, args.duration, args.concurrency)
                        used = cpu_seconds(proc.pid) - before
                        ok = int(stats.get("ok") or 0)
                        results.setdefault((name, mode), []).append((ok / args.duration, used * 1000 / max(ok, 1),
                                                                     int(stats.get("errors") or 0)))
        finally:
            for proc, _ in gateways.values():
                proc.terminate()
                proc.wait(timeout=10)
    print(f"| body | gateway | req/s (c={args.concurrency}) | CPU ms/req | errors |")
    print("|---|---|---|---|---|")
    for (name, mode), runs in results.items():
        rps = sum(r[0] for r in runs) / len(runs)
        cpu = sum(r[1] for r in runs) / len(runs)
        print(f"| {name} | {mode} | {rps:,.0f} | {cpu:.2f} | {sum(r[2] for r in runs)} |")
    print("\n| body | translated µs | passthrough µs |  (in process: parse, estimate, upstream body; best of 3)")
    print("|---|---|---|")
    for name, path in files.items():
        us = in_process(path.read_bytes())
        print(f"| {name} | {us['translated']:.0f} | {us['passthrough']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

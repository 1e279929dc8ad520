"""What the agent tests share: one gateway route per backend under a given model name, the npm
folder of scripts/get-agents-openai, and recording what an agent sent as a fixture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.fakes.anthropic_provider import FakeAnthropic
from tests.fakes.fixtures import FAKE_OPENAI_API_KEY
from tests.fakes.gemini_fixtures import FAKE_GEMINI_API_KEY
from tests.fakes.gemini_provider import FakeGemini
from tests.fakes.openai_provider import FakeOpenAI, RecordedRequest
from tests.gateway.harness import ROOT, TENANT_KEY

BACKENDS = {
    "openai": ("openai", FakeOpenAI, FAKE_OPENAI_API_KEY, "fake"),
    "anthropic": ("anthropic", FakeAnthropic, FAKE_ANTHROPIC_API_KEY, "claude-fake"),
    "gemini": ("gemini", FakeGemini, FAKE_GEMINI_API_KEY, "gemini-2.5-flash"),
}
NPM = ROOT / ".tools" / "npm"
FIXTURES = ROOT / "tests" / "fixtures" / "agents"
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie"})


def single_route_crs(path: Path, backend: str, fake, model: str, unsupported: str = "reject") -> str:
    provider, _, key, upstream_model = BACKENDS[backend]
    path.write_text(f"""apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: {backend}}}
spec: {{provider: {provider}, baseURL: "{fake.base_url}", apiKeySecretRef: {{name: {backend}-key}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {backend}-key}}
stringData: {{apiKey: {key}}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: agent}}
spec: {{model: "{model}", targets: [{{credentialRef: {backend}, model: {upstream_model}}}], unsupportedFields: {unsupported}}}
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team}}
spec: {{apiKeySecretRefs: [{{name: team-key}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: team-key}}
stringData: {{apiKey: {TENANT_KEY}}}
""")
    return str(path)


def npm_bin(name: str) -> Path:
    """An installed npm executable, or a skip with one line saying how to get it."""
    path = NPM / "node_modules" / ".bin" / name
    if not path.exists() or shutil.which("node") is None:
        pytest.skip(f"{name} not installed: run scripts/get-agents-openai (needs node and npm)")
    return path


def node_module(name: str) -> Path:
    path = NPM / "node_modules" / name
    if not path.exists() or shutil.which("node") is None:
        pytest.skip(f"npm package {name} not installed: run scripts/get-agents-openai (needs node and npm)")
    return path


def recording() -> bool:
    return os.environ.get("AIGW_RECORD_AGENT_FIXTURES") == "1"


def record(name: str, requests: list[RecordedRequest]) -> None:
    """Keep what an agent sent (bodies, and headers without credentials) as a fixture, when
    AIGW_RECORD_AGENT_FIXTURES=1; committed fixtures are what the golden tests read."""
    if not recording():
        return
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = [{"method": r.method, "path": r.path,
            "headers": {k: v for k, v in sorted(r.headers.items()) if k not in _SECRET_HEADERS},
            "body": r.json} for r in requests]
    (FIXTURES / f"{name}.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


def run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{cmd[0]} did not finish within {timeout}s:\n{exc.stdout}\n{exc.stderr}") from None

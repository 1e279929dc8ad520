"""Shared parts of the ledger tests: a config with priced routes, requests of every kind,
and the exact cost a row must have."""

from __future__ import annotations

import time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import httpx

from tests.ledger.conftest import rows

KEY_A, KEY_B = "sk-ledger-team-a", "sk-ledger-team-b"
PRICES = {  # upstream model -> (input, output) USD per million
    "fake": (Decimal("0.15"), Decimal("0.6")),
    "fake-second": (Decimal("2.5"), Decimal("10")),
    "fake-embed": (Decimal("0.02"), Decimal("0")),
    "fake~chunks=40~chunk_delay_ms=50": (Decimal("0.15"), Decimal("0.6")),
}


def write_config(path: Path, base_url: str) -> Path:
    """Routes: main (chat), fallback (a failing first target), embed; team-a has limits and a
    budget (events ride in the settle script), team-b has none (events go through the queue)."""
    path.write_text(f"""apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: up}}
spec:
  provider: openai-compatible
  baseURL: {base_url}
  apiKeySecretRef: {{name: up-key, key: apiKey}}
---
apiVersion: v1
kind: Secret
metadata: {{name: up-key}}
stringData: {{apiKey: sk-upstream-test}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: main}}
spec:
  model: m-main
  retry: {{attempts: 2, initialBackoffMs: 1, maxBackoffMs: 2}}
  targets:
    - credentialRef: up
      model: fake
      pricing: {{inputPerMillion: 0.15, outputPerMillion: 0.6}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: fallback}}
spec:
  model: m-fallback
  retry: {{attempts: 0}}
  targets:
    - credentialRef: up
      model: fake~status=500
      priority: 0
      pricing: {{inputPerMillion: 1, outputPerMillion: 1}}
    - credentialRef: up
      model: fake-second
      priority: 1
      pricing: {{inputPerMillion: 2.5, outputPerMillion: 10}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: embed}}
spec:
  model: m-embed
  targets:
    - credentialRef: up
      model: fake-embed
      pricing: {{inputPerMillion: 0.02}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: slow}}
spec:
  model: m-slow
  targets:
    - credentialRef: up
      model: fake~chunks=40~chunk_delay_ms=50
      pricing: {{inputPerMillion: 0.15, outputPerMillion: 0.6}}
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team-a}}
spec:
  apiKeySecretRefs: [{{name: team-a-key}}]
  limits: {{requestsPerMinute: 1000000, tokensPerMinute: 100000000}}
  budget: {{amount: 1000, period: monthly}}
---
apiVersion: v1
kind: Secret
metadata: {{name: team-a-key}}
stringData: {{apiKey: {KEY_A}}}
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team-b}}
spec:
  apiKeySecretRefs: [{{name: team-b-key}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: team-b-key}}
stringData: {{apiKey: {KEY_B}}}
""")
    return path


def words(text: str) -> int:
    return max(1, len(text.split()))


def expected_cost(model: str, prompt: int, completion: int) -> Decimal:
    inp, out = PRICES[model]
    exact = (prompt * inp + completion * out) / Decimal(1_000_000)
    return exact.quantize(Decimal("0.000000001"), rounding=ROUND_HALF_EVEN)


def chat(client: httpx.Client, key: str, text: str, *, model: str = "m-main", stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})


def messages(client: httpx.Client, key: str, text: str, *, stream: bool = False) -> httpx.Response:
    body = {"model": "m-main", "max_tokens": 100, "messages": [{"role": "user", "content": text}], "stream": stream}
    return client.post("/v1/messages", json=body, headers={"x-api-key": key, "anthropic-version": "2023-06-01"})


def gemini(client: httpx.Client, key: str, text: str, *, stream: bool = False) -> httpx.Response:
    path = "/v1beta/models/m-main:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")
    return client.post(path, json={"contents": [{"role": "user", "parts": [{"text": text}]}]},
                       headers={"x-goog-api-key": key})


def embeddings(client: httpx.Client, key: str, text: str) -> httpx.Response:
    return client.post("/v1/embeddings", json={"model": "m-embed", "input": text},
                       headers={"authorization": f"Bearer {key}"})


def wait_rows(url: str, count: int, timeout: float = 30.0, where: str = "TRUE") -> list[dict]:
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        try:
            found = rows(url, where)
        except Exception:  # the table appears when the writer has migrated the database
            found = []
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{len(found)} ledger rows after {timeout}s, expected {count}")

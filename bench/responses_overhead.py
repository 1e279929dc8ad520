"""The gateway's own time (x-aigw-overhead-ms) on /v1/responses, native and translated, against
/v1/chat/completions, one gateway and one fake OpenAI, sequential requests (no contention).

    .venv/bin/python bench/responses_overhead.py [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fakes.openai_provider import FakeOpenAI  # noqa: E402
from tests.gateway.harness import TENANT_KEY, GatewayProcess, write_crs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with FakeOpenAI(api_key="sk-upstream-test") as fake, tempfile.TemporaryDirectory() as tmp:
        crs = write_crs(Path(tmp) / "crs.yaml", fake.base_url, provider="openai", extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: compat}}
spec: {{provider: openai-compatible, baseURL: "{fake.base_url}", apiKeySecretRef: {{name: upstream-key, key: apiKey}}}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: translated}}
spec: {{model: translated, targets: [{{credentialRef: compat, model: fake}}]}}
""")
        gw = GatewayProcess(["-f", str(crs)], Path(tmp) / "gw.log")
        try:
            gw.wait_ready()
            cases = {
                "chat (openai)": ("/v1/chat/completions", {"model": "gpt-test", "messages": [{"role": "user", "content": "hi there"}]}),
                "responses native (openai)": ("/v1/responses", {"model": "gpt-test", "input": "hi there"}),
                "responses translated (compatible)": ("/v1/responses", {"model": "translated", "input": "hi there"}),
            }
            with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {TENANT_KEY}"}, timeout=10) as http:
                for name, (path, body) in cases.items():
                    for stream in (False, True):
                        samples = []
                        for i in range(args.requests):
                            r = http.post(path, json={**body, "stream": stream})
                            r.read()
                            assert r.status_code == 200, r.text
                            if i >= 20:  # warm-up
                                samples.append(float(r.headers["x-aigw-overhead-ms"]))
                        q = statistics.quantiles(samples, n=20)
                        print(f"{name:36s} stream={stream!s:5s} overhead ms p50={statistics.median(samples):.2f} p95={q[18]:.2f}")
        finally:
            gw.stop()


if __name__ == "__main__":
    main()

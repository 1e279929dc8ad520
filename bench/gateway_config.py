"""The realistic config the bench serves aigw with: the CR YAML `aigw serve -f` reads.

Everything a production request goes through: a tenant API key, RPM and TPM limits (kept in the
real Redis given by --redis-url), a PII policy masking input, routes with pricing (cost accounting)
and metrics (always on). The limits are far above anything this machine can send, so they are
checked and counted on every request but never refuse: at 5,000 req/s a minute holds 300,000
requests of about 100 estimated tokens (prompt + max_tokens 64) each, 30 M tokens.
"""

from __future__ import annotations

# The model names the shared harness sends; the fake upstream reads its stream knobs from the name,
# so each route's target keeps the name (a route target's model defaults to spec.model).
PLAIN_MODEL = "fake-model"
STREAM_MODEL = "fake-stream~chunks=20~chunk_delay_ms=5"
TENANT_KEY = "sk-aigw-bench-tenant-0001"
REQUESTS_PER_MINUTE = 10_000_000
TOKENS_PER_MINUTE = 1_000_000_000
PII_ENTITIES = ("email", "phone", "creditCard", "ssn")


# The cache targets: exact-match entries for the bench's one body (its temperature is 0.2, so the
# route caches regardless of determinism). Every request after the first is a hit.
CACHE_SPEC = "  cache: {mode: exact, deterministicOnly: false}\n"


def gateway_yaml(upstream_base_url: str, *, cache: bool = False) -> str:
    """CR documents for a gateway in front of the fake upstream at `upstream_base_url` (…/v1);
    with `cache`, both routes keep an exact response cache."""
    text = _gateway_yaml(upstream_base_url)
    if cache:
        text = text.replace("  targets:\n    - credentialRef: bench-upstream\n",
                            CACHE_SPEC + "  targets:\n    - credentialRef: bench-upstream\n")
    return text


def _gateway_yaml(upstream_base_url: str) -> str:
    entities = ", ".join(PII_ENTITIES)
    return f"""\
# Written by bench/ for each run: a realistic aigw config in front of the fake upstream.
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: bench-upstream}}
spec:
  provider: openai-compatible
  baseURL: {upstream_base_url}
  apiKeySecretRef: {{name: bench-upstream-key, key: apiKey}}
---
apiVersion: v1
kind: Secret
metadata: {{name: bench-upstream-key}}
stringData: {{apiKey: sk-fake-upstream-key}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: bench-plain}}
spec:
  model: "{PLAIN_MODEL}"
  targets:
    - credentialRef: bench-upstream
      pricing: {{inputPerMillion: 2.5, outputPerMillion: 10}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: bench-stream}}
spec:
  model: "{STREAM_MODEL}"
  targets:
    - credentialRef: bench-upstream
      pricing: {{inputPerMillion: 2.5, outputPerMillion: 10}}
---
apiVersion: aigw.dev/v1alpha1
kind: GuardrailPolicy
metadata: {{name: bench-pii}}
spec:
  failMode: closed
  pii:
    direction: input
    action: mask
    entities: [{entities}]
---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: bench-tenant}}
spec:
  apiKeySecretRefs: [{{name: bench-tenant-key, key: apiKey}}]
  limits: {{requestsPerMinute: {REQUESTS_PER_MINUTE}, tokensPerMinute: {TOKENS_PER_MINUTE}}}
  guardrailPolicyRef: bench-pii
---
apiVersion: v1
kind: Secret
metadata: {{name: bench-tenant-key}}
stringData: {{apiKey: {TENANT_KEY}}}
"""


LITELLM_MASTER_KEY = "sk-litellm-bench-" + "5f0c" * 12  # LiteLLM refuses to start without a strong one


def litellm_yaml(upstream_base_url: str) -> str:
    """LiteLLM proxy config serving the same two model names from the same upstream, with a
    master key (authentication on, as for aigw's tenant key)."""
    entries = []
    for name in (PLAIN_MODEL, STREAM_MODEL):
        entries.append(f"""\
  - model_name: "{name}"
    litellm_params:
      model: "openai/{name}"
      api_base: {upstream_base_url}
      api_key: sk-fake-upstream-key""")
    return ("model_list:\n" + "\n".join(entries) + "\n"
            f"general_settings:\n  master_key: {LITELLM_MASTER_KEY}\n")

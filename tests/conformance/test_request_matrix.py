"""The request side of the (client API x provider API x feature) matrix, measured: each feature is
translated (seen in the upstream body), rejected (a 400 naming the field), or knowingly ignored
(an allow-list with the reason); never lost. The measured matrix is kept as a golden file
(AIGW_UPDATE_GOLDEN=1 rewrites it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conformance.features import CHECKS, REQUESTS
from tests.conformance.translate import PROVIDERS, Rejected, upstream

GOLDEN = Path(__file__).parent / "golden" / "request_matrix.md"
# Cells where a feature legitimately has no upstream trace, and why.
IGNORED_BY_DESIGN = {
    ("cache_control breakpoints", "openai"): "OpenAI caches prompt prefixes automatically",
    ("cache_control breakpoints", "gemini"): "Gemini caches prompt prefixes implicitly",
    ("cache_control breakpoints", "ollama"): "no prompt caching API",
    ("thinking blocks in history", "openai"): "signed reasoning is only replayable to the vendor that made it",
    ("thinking blocks in history", "gemini"): "signed reasoning is only replayable to the vendor that made it",
    ("thinking blocks in history", "bedrock"): "signed reasoning is only replayable to the vendor that made it",
    ("thinking blocks in history", "ollama"): "signed reasoning is only replayable to the vendor that made it",
}
SAME_API = {("openai", "openai"), ("anthropic", "anthropic"), ("gemini", "gemini")}


def outcome(feature: str, client: str, provider: str) -> str:
    try:
        body, _ = upstream(client, provider, REQUESTS[feature][client])
    except Rejected as err:
        return f"rejected ({err.param})"
    check = CHECKS[feature].get(provider)
    if check is not None:
        try:
            ok = check(body)
        except (KeyError, IndexError, TypeError):
            ok = False
        if not ok:
            return "LOST"
        return "native" if (client, provider) in SAME_API else "translated"
    return "ignored" if (feature, provider) in IGNORED_BY_DESIGN else "LOST"


def measure() -> str:
    lines = ["| feature | client | " + " | ".join(PROVIDERS) + " |", "|---|---|" + "---|" * len(PROVIDERS)]
    for feature, by_client in REQUESTS.items():
        for client in by_client:
            cells = [outcome(feature, client, p) for p in PROVIDERS]
            lines.append(f"| {feature} | {client} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


CELLS = [(f, c, p) for f, by_client in REQUESTS.items() for c in by_client for p in PROVIDERS]


@pytest.mark.parametrize("feature,client,provider", CELLS, ids=["/".join(c) for c in CELLS])
def test_no_feature_is_lost(feature, client, provider):
    assert outcome(feature, client, provider) != "LOST"


def test_rejections_name_the_field_the_client_sent():
    for feature, client, provider in CELLS:
        result = outcome(feature, client, provider)
        if result.startswith("rejected"):
            param = result[len("rejected ("):-1]
            sent = repr(REQUESTS[feature][client])
            assert param.split(".")[-1].split("[")[0] in sent or param.startswith("messages"), (feature, client, param)


def test_matrix_matches_the_golden_file():
    measured = measure()
    if os.environ.get("AIGW_UPDATE_GOLDEN"):
        GOLDEN.write_text(measured)
    assert measured == GOLDEN.read_text()

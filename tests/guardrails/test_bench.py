"""Micro-benchmark (prints, asserts nothing about time): µs per scan of typical prompts."""

from __future__ import annotations

import time

from tests.guardrails.helpers import chat, chunk, completion, policy, user

PARAGRAPH = (
    "The quarterly report shows that revenue grew by 12 percent in 2024, driven by strong demand in the "
    "enterprise segment. Our team shipped 3 major releases and reduced latency by half. Please summarise "
    "the key points for the board meeting and suggest next steps for the product roadmap. "
)
PII = "Contact alice@example.com or +44 20 7946 0958; card 4111 1111 1111 1111; server 10.0.0.1. "


def _text(size: int, pii: bool = False) -> str:
    body = (PARAGRAPH * (size // len(PARAGRAPH) + 1))[: size - (len(PII) if pii else 0)]
    return body[: len(body) // 2] + (PII if pii else "") + body[len(body) // 2 :]


def _per_call(fn, budget: float = 0.25) -> float:
    fn()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs * 1e6


def test_scan_cost(capsys):
    configs = {
        "pii (8 entities)": policy(),
        "pii+secrets+injection": policy(secrets="block", injection="block"),
        "secrets+injection only": policy(entities=[], secrets="block", injection="block"),
    }
    prompts = {"clean 1 KB": _text(1024), "clean 10 KB": _text(10240), "1 KB with 4 PII values": _text(1024, pii=True)}
    rows = ["", f"{'µs per scan_request':<26}" + "".join(f"{name:>24}" for name in prompts)]
    for label, p in configs.items():
        cells = []
        for text in prompts.values():
            request = chat({"role": "system", "content": "You are a helpful assistant."}, user(text))
            cells.append(_per_call(lambda p=p, request=request: p.scan_request(request)))
        rows.append(f"{label:<26}" + "".join(f"{c:>24.1f}" for c in cells))
    p = configs["pii (8 entities)"]
    restore = p.scan_request(chat(user("alice@example.com"))).restore
    answer = _text(1024, pii=True) + " <EMAIL_1>"
    rows.append(f"{'filter_response 1 KB':<26}{_per_call(lambda: p.filter_response(completion(answer), restore)):>24.1f}")

    def stream():
        sf = p.stream_filter(restore)
        for i in range(0, len(answer), 4):  # ~ one token a chunk
            sf.feed(chunk(answer[i : i + 4]))
        sf.flush()

    rows.append(f"{'stream 1 KB, 4-char chunks':<26}{_per_call(stream):>24.1f}")
    with capsys.disabled():
        print("\n".join(rows))

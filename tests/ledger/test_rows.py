"""N requests of every kind give exactly N ledger rows, with the tokens the fake reported, the
cost to the nano-dollar and the request id the client saw (real gateway, Redis, PostgreSQL)."""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.fakes.openai_provider import Behaviour
from tests.ledger.support import (
    KEY_A, KEY_B, chat, embeddings, expected_cost, gemini, messages, wait_rows, words, write_config,
)  # fmt: skip

N = 3
KINDS = {  # kind -> (request, api, stream, upstream model, attempts)
    "unary": (lambda c, k, t: chat(c, k, t), "chat", False, "fake", 1),
    "streamed": (lambda c, k, t: chat(c, k, t, stream=True), "chat", True, "fake", 1),
    "fallback": (lambda c, k, t: chat(c, k, t, model="m-fallback"), "chat", False, "fake-second", 2),
    "messages": (lambda c, k, t: messages(c, k, t), "messages", False, "fake", 1),
    "messages-stream": (lambda c, k, t: messages(c, k, t, stream=True), "messages", True, "fake", 1),
    "gemini": (lambda c, k, t: gemini(c, k, t), "gemini", False, "fake", 1),
    "gemini-stream": (lambda c, k, t: gemini(c, k, t, stream=True), "gemini", True, "fake", 1),
    "embeddings": (lambda c, k, t: embeddings(c, k, t), "embeddings", False, "fake-embed", 1),
}


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis-stream", "no-redis-queue"])
def test_every_kind_gives_exactly_one_exact_row(tmp_path, fake_openai, redis_server, ledger_url, start_gateway,
                                                with_redis):
    crs = write_config(tmp_path / "crs.yaml", fake_openai.base_url)
    args = ["-f", str(crs), "--ledger-url", ledger_url]
    if with_redis:
        redis_server.command("FLUSHALL")
        args += ["--redis-url", redis_server.url]
    gw = start_gateway(*args, wait=False)
    gw.wait_ready(timeout=60)  # a loaded CI machine may take a while
    expected: dict[str, tuple] = {}
    counter = itertools.count()
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        for (kind, (send, api, stream, model, attempts)), key in itertools.product(KINDS.items(), (KEY_A, KEY_B)):
            for _ in range(N):
                text = " ".join(f"w{next(counter)}" for _ in range(1 + next(counter) % 7))
                response = send(client, key, text)
                assert response.status_code == 200, (kind, response.text)
                completion = 0 if kind == "embeddings" else words("echo: " + text)
                expected[response.headers["x-request-id"]] = (kind, api, stream, model, attempts, words(text),
                                                              completion, "team-a" if key == KEY_A else "team-b")
        for key in (KEY_A, KEY_B):  # retried: the first attempt fails with 503, the retry answers
            for _ in range(N):
                text = f"retry {next(counter)}"
                fake_openai.script(Behaviour(status=503))
                response = chat(client, key, text)
                assert response.status_code == 200 and response.headers["x-aigw-attempts"] == "2", response.text
                expected[response.headers["x-request-id"]] = ("retried", "chat", False, "fake", 2, words(text),
                                                              words("echo: " + text), "team-a" if key == KEY_A else "team-b")
    total = (len(KINDS) + 1) * 2 * N
    found = wait_rows(ledger_url, total)
    assert len(found) == total and {r["request_id"] for r in found} == set(expected), gw.log()
    for row in found:
        kind, api, stream, model, attempts, prompt, completion, tenant = expected[row["request_id"]]
        assert (row["api"], row["stream"], row["model"], row["tenant"], row["status"]) == (api, stream, model, tenant, 200), kind
        assert (row["input_tokens"], row["output_tokens"]) == (prompt, completion), kind
        assert row["cost_usd"] == expected_cost(model, prompt, completion), kind
        # The failing first target's circuit may open: a fallback then takes one attempt, not two.
        assert row["attempts"] == attempts or (kind == "fallback" and row["attempts"] == 1), kind
        assert row["target"] == f"up/{model}" and row["provider"] == "openai-compatible"
        assert row["namespace"] == "default" and row["gateway"] == "local" and row["latency_ms"] > 0
        assert row["client_request_id"] is None
    assert any(r["attempts"] == 2 for r in found if expected[r["request_id"]][0] == "fallback")

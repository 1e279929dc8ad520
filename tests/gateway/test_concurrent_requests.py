"""concurrentRequests through two real gateway processes sharing a real Redis: the limit holds
across pods, a refusal is a 429 concurrency_limit_exceeded with Retry-After, and every slot comes
back: after answers, after a stream, and after a client that went away mid-stream."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.gateway.harness import TENANT_KEY, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}
INFLIGHT = "aigw:{default/local/team-a}:inflight"


def _crs(tmp_path, fake, upstream_model: str) -> str:
    crs = write_crs(tmp_path / "crs.yaml", fake.base_url, upstream_model=upstream_model)
    spec = "  apiKeySecretRefs: [{name: team-a-key}]\n"
    crs.write_text(crs.read_text().replace(spec, spec + "  limits: {concurrentRequests: 2}\n", 1))
    return str(crs)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def test_concurrency_limit_across_two_gateways(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    crs = _crs(tmp_path, fake_openai, "fake~stall=1.5")
    gateways = [start_gateway("-f", crs, "--redis-url", redis_server.url) for _ in range(2)]
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}
    inflight = lambda: int(redis_server.command("ZCARD", INFLIGHT))  # noqa: E731

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=15) as http:
            held = [asyncio.create_task(http.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body))
                    for gw in gateways]
            while inflight() < 2:
                await asyncio.sleep(0.02)
            refused = [await http.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body) for gw in gateways]
            return [*await asyncio.gather(*held), *refused]

    first, second, *refused = asyncio.run(run())
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    for r in refused:
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert err["code"] == err["type"] == "concurrency_limit_exceeded" and err["request_id"]
        assert r.headers["retry-after"] == "1" and r.headers["x-aigw-concurrency-limit"] == "2"
    _wait(lambda: inflight() == 0, 5, "every slot freed after the answers")
    assert httpx.post(gateways[1].url + "/v1/chat/completions", headers=AUTH, json=body, timeout=15).status_code == 200


def test_streams_and_client_disconnects_free_their_slot(tmp_path, fake_openai, redis_server, start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", _crs(tmp_path, fake_openai, "fake~chunks=40~chunk_delay_ms=100"),
                       "--redis-url", redis_server.url)
    body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    inflight = lambda: int(redis_server.command("ZCARD", INFLIGHT))  # noqa: E731
    for round_ in range(3):  # more disconnects than slots: a leaked slot would refuse the last rounds
        with httpx.Client(timeout=15) as http:
            with http.stream("POST", gw.url + "/v1/chat/completions", headers=AUTH, json=body) as r:
                assert r.status_code == 200
                chunks = r.iter_bytes()  # kept: dropping the iterator would close the connection
                assert next(chunks).startswith(b"data: ")
                assert inflight() == 1, round_  # the request holds its slot
        # the connection is closed mid-stream here
        _wait(lambda: inflight() == 0, 10, "the slot freed after the client went away")
    with httpx.Client(timeout=30) as http:
        text = http.post(gw.url + "/v1/chat/completions", headers=AUTH, json=body).text
    assert text.rstrip().endswith("[DONE]")
    _wait(lambda: inflight() == 0, 5, "the slot freed after a complete stream")

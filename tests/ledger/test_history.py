"""GET /v1/usage/history: a tenant's own rows, grouped; and `--workers 2` runs one writer."""

from __future__ import annotations

from decimal import Decimal

import httpx
import redis

from tests.ledger.support import KEY_A, KEY_B, chat, embeddings, expected_cost, wait_rows, words, write_config


def test_history_is_the_callers_tenant_grouped(tmp_path, fake_openai, redis_server, ledger_url, start_gateway):
    redis_server.command("FLUSHALL")
    crs = write_config(tmp_path / "crs.yaml", fake_openai.base_url)
    gw = start_gateway("-f", str(crs), "--redis-url", redis_server.url, "--ledger-url", ledger_url, "--workers", "2",
                       wait=False)
    gw.wait_ready(timeout=60)
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        for text in ("one two", "three four five"):
            assert chat(client, KEY_A, text).status_code == 200
        assert embeddings(client, KEY_A, "six seven").status_code == 200
        assert chat(client, KEY_B, "not mine").status_code == 200
        wait_rows(ledger_url, 4)
        auth = {"authorization": f"Bearer {KEY_A}"}
        by_route = client.get("/v1/usage/history", params={"group_by": "route"}, headers=auth).json()
        assert by_route["tenant"] == "team-a"
        embed, main = by_route["data"]  # ordered by the group key
        assert (main["route"], main["requests"], embed["route"], embed["requests"]) == ("main", 2, "embed", 1)
        assert main["input_tokens"] == 2 + 3 and main["output_tokens"] == words("echo: one two") + words("echo: three four five")
        assert Decimal(main["cost_usd"]) == expected_cost("fake", 2, 3) + expected_cost("fake", 3, 4)
        (day,) = client.get("/v1/usage/history", headers=auth).json()["data"]
        assert day["requests"] == 3 and len(day["day"]) == 10
        by_model = client.get("/v1/usage/history", params={"group_by": "model"}, headers=auth).json()
        assert {d["model"] for d in by_model["data"]} == {"fake", "fake-embed"}
        empty = client.get("/v1/usage/history", params={"from": "2020-01-01", "to": "2020-02-01"}, headers=auth)
        assert empty.json()["data"] == []
        bad = client.get("/v1/usage/history", params={"group_by": "prompt"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
        assert client.get("/v1/usage/history", params={"from": "yesterday"}, headers=auth).status_code == 400
        assert client.get("/v1/usage/history").status_code == 401
    # Two workers, one writer: a single consumer in the stream's group.
    consumers = redis.Redis.from_url(redis_server.url).xinfo_consumers("aigw:ledger:default:local", "aigw-ledger")
    assert len(consumers) == 1, consumers

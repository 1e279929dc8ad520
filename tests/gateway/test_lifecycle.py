"""Client disconnects cancel the upstream; SIGTERM drains in-flight streams."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import openai

from tests.gateway.harness import TENANT_KEY, write_crs


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_client_disconnect_cancels_upstream_stream(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, upstream_model="fake~chunks=40~chunk_delay_ms=100")
    gw = start_gateway("-f", str(crs))
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {TENANT_KEY}"},
                      json={"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                      timeout=10) as resp:
        lines = resp.iter_lines()
        for _ in range(3):
            next(lines)
    # The client left after ~3 of 40 chunks (4 s of stream): the upstream is cut soon after.
    _wait(lambda: fake_openai.aborted_streams == 1, timeout=3)


def test_sigterm_finishes_in_flight_stream_then_exits(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, upstream_model="fake~chunks=10~chunk_delay_ms=150")
    gw = start_gateway("-f", str(crs), "--graceful-timeout", "10")
    result: dict = {}

    def consume() -> None:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=15)
        stream = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "a b c d e f g h i j"}], stream=True)
        result["text"] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    t = threading.Thread(target=consume)
    t.start()
    fake_openai.wait_for_requests(1, timeout=5)
    time.sleep(0.3)
    gw.proc.send_signal(signal.SIGTERM)
    t.join(timeout=15)
    assert result.get("text") == "echo: a b c d e f g h i j"
    gw.proc.wait(timeout=10)
    assert gw.proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after draining

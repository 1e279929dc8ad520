"""Hostile request bodies and secret-shaped text: 400s that name the problem, authentication
before the body is read, and no secret value in an answer, /readyz or the log."""

from __future__ import annotations

import socket
import time

import httpx

from tests.fakes.openai_provider import Behaviour
from tests.gateway.harness import TENANT_KEY, write_crs
from tests.gateway.test_limits import limited_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}


def chat(gw, **body):
    return httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                      json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], **body})


def test_deep_json_is_a_400_and_reserves_nothing(tmp_path, fake_openai, start_gateway):
    gw = start_gateway("-f", limited_crs(tmp_path, fake_openai, limits="{tokensPerMinute: 100000}"))
    for depth in (65, 300, 1000):
        nested = "[" * depth + "]" * depth
        body = '{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "metadata": ' + nested + "}"
        r = httpx.post(gw.url + "/v1/chat/completions", headers={**AUTH, "content-type": "application/json"},
                       content=body, timeout=10)
        assert r.status_code == 400, (depth, r.text)
        assert "deeper than 64" in r.json()["error"]["message"] or "recursion" in r.json()["error"]["message"]
    usage = httpx.get(gw.url + "/v1/usage", headers=AUTH).json()
    assert usage["tokens"]["used"] == 0  # nothing reserved, nothing leaked
    assert len(fake_openai.requests) == 0
    assert "Traceback" not in gw.log()
    assert chat(gw).status_code == 200


def test_items_per_request_are_bounded(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, extra="""---
apiVersion: aigw.dev/v1alpha1
kind: AIGateway
metadata: {name: local}
spec:
  gateway: {maxRequestItems: 100}
""")
    gw = start_gateway("-f", str(crs))
    r = chat(gw, messages=[{"role": "user", "content": "x"}] * 101)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    assert "101 items" in r.json()["error"]["message"]
    assert chat(gw, messages=[{"role": "user", "content": "x"}] * 100).status_code == 200


def test_no_body_is_read_before_authentication(tmp_path, fake_openai, start_gateway):
    gw = start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url)))
    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/messages", "/v1beta/models/gpt-test:generateContent"):
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
            # Announces 100 MB and sends none of it: the answer comes at once, from the headers alone.
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Authorization: Bearer sk-wrong\r\nContent-Length: 100000000\r\n\r\n".encode())
            started = time.monotonic()
            head = sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 401"), (path, head[:200])
            assert time.monotonic() - started < 3


def test_provider_error_text_is_relayed_without_keys(tmp_path, fake_openai, start_gateway):
    gw = start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url)))
    fake_openai.set_default(Behaviour(status=400, error_message=(
        "Invalid request. Received headers: Authorization: Bearer sk-upstream-test; "
        "also key AIzaSyA1234567890abcdefghijklmnopqrstu and sk-proj-abcdef0123456789 are wrong")))
    r = chat(gw)
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "Invalid request" in message and "[redacted]" in message
    for secret in ("sk-upstream-test", "AIzaSyA1234567890", "sk-proj-abcdef"):
        assert secret not in r.text and secret not in gw.log()


def test_a_malformed_secret_never_echoes_its_value(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    crs.write_text(crs.read_text().replace("stringData: {apiKey: sk-upstream-test}",
                                           "stringData: {apiKey: sk-live-TOPSECRET-value: oops}"))
    gw = start_gateway("-f", str(crs), wait=False)
    deadline = time.monotonic() + 15
    ready = None
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(gw.url + "/readyz", timeout=1)
            if "invalid YAML" in ready.text:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    assert ready is not None and ready.status_code == 503 and "line 12" in ready.text, ready and ready.text
    assert "TOPSECRET" not in ready.text and "TOPSECRET" not in gw.log()

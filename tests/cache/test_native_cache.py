"""The response cache on the same-protocol passthrough path (cache/native.py) through a real
gateway, real Redis and fake providers that speak the client's API: a hit is the provider's own
bytes replayed through the caller's adapter, so it is byte for byte the live answer, unary and
streamed; PII is masked in the entry and each caller gets its own values back."""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.cache.test_cache_gateway import A, B, cache_crs, wait_stored
from tests.fakes.anthropic_fixtures import FAKE_ANTHROPIC_API_KEY
from tests.fakes.fixtures import FAKE_OPENAI_API_KEY
from tests.fakes.gemini_fixtures import FAKE_GEMINI_API_KEY


def _chat(text: str, stream: bool):
    body = {"model": "gpt-test", "temperature": 0, "messages": [{"role": "user", "content": text}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return "/v1/chat/completions", body


def _messages(text: str, stream: bool):
    body = {"model": "gpt-test", "max_tokens": 50, "temperature": 0, "messages": [{"role": "user", "content": text}]}
    return "/v1/messages", {**body, "stream": True} if stream else body


def _gemini(text: str, stream: bool):
    path = "/v1beta/models/gpt-test:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")
    return path, {"contents": [{"role": "user", "parts": [{"text": text}]}], "generationConfig": {"temperature": 0}}


APIS = {  # client API -> (fake fixture, provider, upstream key, request builder)
    "chat": ("fake_openai", "openai", FAKE_OPENAI_API_KEY, _chat),
    "messages": ("fake_anthropic", "anthropic", FAKE_ANTHROPIC_API_KEY, _messages),
    "gemini": ("fake_gemini", "gemini", FAKE_GEMINI_API_KEY, _gemini),
}


def upstream_calls(fake) -> int:
    return sum(1 for r in fake.requests if r.method == "POST")


@pytest.mark.parametrize("api", sorted(APIS))
def test_a_hit_is_the_live_answer_byte_for_byte_unary_and_streamed(request, tmp_path, redis_server, start_gateway, api):
    fixture, provider, key, build = APIS[api]
    fake = request.getfixturevalue(fixture)
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake, provider=provider, upstream_key=key),
                       "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        for n, streamed in enumerate((False, True)):
            path, body = build(f"question number {n}", streamed)
            first = http.post(path, headers=A, json=body)
            assert first.status_code == 200 and first.headers["x-aigw-cache"] == "miss", first.text
            assert first.headers.get("x-aigw-target"), "served by the passthrough's native target"
            wait_stored(redis_server.url, n + 1)
            calls = upstream_calls(fake)
            second = http.post(path, headers=A, json=body)
            assert second.status_code == 200 and second.headers["x-aigw-cache"] == "hit", second.text
            assert upstream_calls(fake) == calls  # the upstream saw one call
            assert second.content == first.content  # the provider's answer as it came, byte for byte
            assert float(second.headers["x-aigw-cost-usd"]) == 0
            if streamed:
                assert second.headers["content-type"].startswith("text/event-stream")
            else:
                assert float(first.headers["x-aigw-cost-usd"]) > 0
        # a unary entry is not a stream's: the same question streamed is its own entry
        path, body = build("question number 0", True)
        assert http.post(path, headers=A, json=body).headers["x-aigw-cache"] == "miss"


@pytest.mark.parametrize("api", ["messages", "gemini"])
def test_pii_is_masked_in_the_entry_and_each_caller_gets_its_own_values(request, tmp_path, redis_server,
                                                                       start_gateway, api):
    fixture, provider, key, build = APIS[api]
    fake = request.getfixturevalue(fixture)
    redis_server.flushall()
    gw = start_gateway("-f", cache_crs(tmp_path, fake, cache="{mode: exact, scope: route}", guard=True,
                                       provider=provider, upstream_key=key), "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        for n, streamed in enumerate((False, True)):
            path, body = build("write to alice@example.com please", streamed)
            first = http.post(path, headers=A, json=body)
            assert first.headers["x-aigw-cache"] == "miss" and "alice@example.com" in first.text, first.text
            wait_stored(redis_server.url, n + 1)
            path, body = build("write to bob@example.org please", streamed)
            other = http.post(path, headers=B, json=body)
            assert other.headers["x-aigw-cache"] == "hit", other.text
            assert "bob@example.org" in other.text and "alice" not in other.text
    assert upstream_calls(fake) == 2
    store = redis.Redis.from_url(redis_server.url)
    keys = store.keys("aigw:cache:*")
    assert len(keys) == 2
    for key_name in keys:
        value = store.get(key_name) or b""
        assert b"alice" not in value and b"bob@" not in value and b"example" not in value, value
    store.close()

"""Semantic cache through a real gateway: real sentence embeddings (all-MiniLM-L6-v2) served by a
fake embeddings provider, vectors in a real Redis with the Search module; and every way the cache
can be unavailable, each a bypass with no failed request."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.cache.test_cache_gateway import A, wait_stored
from tests.fakes.openai_provider import FakeOpenAI
from tests.fakes.search_redis import SearchRedis, why_no_search
from tests.fakes.sentence_embedder import embed, why_no_model
from tests.gateway.harness import TENANT_KEY, write_crs

QUESTION = "How do I reset my password?"
PARAPHRASE = "What is the way to reset my password?"
UNRELATED = "What is the boiling point of water at sea level?"


@pytest.fixture(scope="module")
def search_redis():
    reason = why_no_search() or why_no_model()
    if reason:
        pytest.skip(reason)
    srv = SearchRedis().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def embeddings_fake():
    if why_no_model():
        pytest.skip(why_no_model())
    fake = FakeOpenAI(api_key="sk-embed", embedder=embed).start()
    yield fake
    fake.stop()


def semantic_crs(tmp_path, chat_fake, embed_url: str, threshold: float = 0.85, provider: str = "openai-compatible") -> str:
    crs = write_crs(tmp_path / "crs.yaml", chat_fake.base_url, provider=provider, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: ProviderCredential
metadata: {{name: embedder}}
spec:
  provider: openai-compatible
  baseURL: {embed_url}
  apiKeySecretRef: {{name: embed-key, key: apiKey}}
---
apiVersion: v1
kind: Secret
metadata: {{name: embed-key}}
stringData: {{apiKey: sk-embed}}
---
apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: text-embedding}}
spec:
  model: text-embedding
  targets: [{{credentialRef: embedder, model: minilm}}]
  retry: {{attempts: 0}}
""")
    text = crs.read_text().replace("  model: gpt-test\n", "  model: gpt-test\n  cache: {mode: semantic, semantic: "
                                   f"{{embeddingRoute: text-embedding, threshold: {threshold}}}}}\n")
    crs.write_text(text)
    return str(crs)


def ask(http, question: str, system: str = "You are a helpful assistant.") -> httpx.Response:
    body = {"model": "gpt-test", "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}]}
    r = http.post("/v1/chat/completions", headers=A, json=body)
    assert r.status_code == 200, r.text
    return r


def test_a_paraphrase_hits_unrelated_and_other_conversations_do_not(tmp_path, fake_openai, embeddings_fake,
                                                                   search_redis, start_gateway):
    search_redis.flushall()
    gw = start_gateway("-f", semantic_crs(tmp_path, fake_openai, embeddings_fake.base_url),
                       "--redis-url", search_redis.url)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        first = ask(http, QUESTION)
        assert first.headers["x-aigw-cache"] == "miss"
        wait_stored(search_redis.url, 2)  # the entry and its vector
        upstream = len(fake_openai.requests)
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            hit = ask(http, PARAPHRASE)
            timings.append(time.perf_counter() - started)
            assert hit.headers["x-aigw-cache"] == "hit"
            assert hit.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
        assert len(fake_openai.requests) == upstream  # answered from the cache
        assert ask(http, UNRELATED).headers["x-aigw-cache"] == "miss"
        assert ask(http, PARAPHRASE, system="You are a pirate.").headers["x-aigw-cache"] == "miss"
        print(f"semantic hit p50 (client-side, incl. embedding): {sorted(timings)[2] * 1000:.1f} ms")


@pytest.mark.parametrize("provider", ["openai", "openai-compatible"])
def test_responses_a_paraphrase_hits_unrelated_and_other_instructions_do_not(tmp_path, fake_openai, embeddings_fake,
                                                                            search_redis, start_gateway, provider):
    search_redis.flushall()
    gw = start_gateway("-f", semantic_crs(tmp_path, fake_openai, embeddings_fake.base_url, provider=provider),
                       "--redis-url", search_redis.url)
    sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key=TENANT_KEY, max_retries=0, timeout=30)

    def ask_responses(question: str, instructions: str = "You are a helpful assistant.", **kwargs):
        raw = sdk.responses.with_raw_response.create(model="gpt-test", temperature=0, input=question,
                                                     instructions=instructions, **kwargs)
        return raw.parse(), raw.headers["x-aigw-cache"]

    first, result = ask_responses(QUESTION)
    assert result == "miss"
    wait_stored(search_redis.url, 2)  # the entry and its vector
    upstream = len(fake_openai.requests)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        hit, result = ask_responses(PARAPHRASE)
        timings.append(time.perf_counter() - started)
        assert result == "hit" and hit.output_text == first.output_text and hit.id != first.id
    with sdk.responses.with_streaming_response.create(model="gpt-test", temperature=0, input=PARAPHRASE, stream=True,
                                                      instructions="You are a helpful assistant.") as raw:
        assert raw.headers["x-aigw-cache"] == "hit"
        assert list(raw.parse())[-1].response.output_text == first.output_text
    assert len(fake_openai.requests) == upstream  # answered from the cache
    assert ask_responses(UNRELATED)[1] == "miss"
    assert ask_responses(PARAPHRASE, instructions="You are a pirate.")[1] == "miss"
    print(f"responses semantic hit p50 (client-side, incl. embedding): {sorted(timings)[2] * 1000:.1f} ms")


def test_a_neighbour_is_only_ever_an_entry_of_the_same_kind(tmp_path, fake_openai, embeddings_fake, search_redis,
                                                             start_gateway):
    """On passthrough a unary entry and a stream's are different bytes: a streamed paraphrase of
    a unary question is not its neighbour (nor would another client API's request be)."""
    search_redis.flushall()
    gw = start_gateway("-f", semantic_crs(tmp_path, fake_openai, embeddings_fake.base_url),
                       "--redis-url", search_redis.url)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        assert ask(http, QUESTION).headers["x-aigw-cache"] == "miss"
        wait_stored(search_redis.url, 2)
        body = {"model": "gpt-test", "temperature": 0, "stream": True,
                "messages": [{"role": "system", "content": "You are a helpful assistant."},
                             {"role": "user", "content": PARAPHRASE}]}
        r = http.post("/v1/chat/completions", headers=A, json=body)
        assert r.status_code == 200 and r.headers["x-aigw-cache"] == "miss", r.text
        assert "data: [DONE]" in r.text and '"error"' not in r.text, r.text
        assert ask(http, PARAPHRASE).headers["x-aigw-cache"] == "hit"


def test_search_module_missing_bypasses_without_failing(tmp_path, fake_openai, embeddings_fake, redis_server,
                                                        start_gateway):
    redis_server.flushall()
    gw = start_gateway("-f", semantic_crs(tmp_path, fake_openai, embeddings_fake.base_url),
                       "--redis-url", redis_server.url)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        for question in (QUESTION, PARAPHRASE, QUESTION):
            ask(http, question)  # never fails
        assert 'reason="search_unavailable"' in httpx.get(gw.ops_url + "/metrics").text


def test_embedding_route_failing_bypasses_without_failing(tmp_path, fake_openai, search_redis, start_gateway):
    search_redis.flushall()
    dead = FakeOpenAI(api_key="sk-embed").start()
    url = dead.base_url
    dead.stop()  # nothing listens there now
    gw = start_gateway("-f", semantic_crs(tmp_path, fake_openai, url), "--redis-url", search_redis.url)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        for question in (QUESTION, PARAPHRASE):
            assert ask(http, question).headers["x-aigw-cache"] in ("miss", "hit")
        assert 'reason="embedding_failed"' in httpx.get(gw.ops_url + "/metrics").text


def test_redis_down_bypasses_without_failing(tmp_path, fake_openai, redis_server_fn, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    crs.write_text(crs.read_text().replace("  model: gpt-test\n", "  model: gpt-test\n  cache: {mode: exact}\n"))
    gw = start_gateway("-f", str(crs), "--redis-url", redis_server_fn.url)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        ask(http, QUESTION)
        redis_server_fn.stop()
        for _ in range(5):
            r = ask(http, QUESTION)  # limits fail open by default; the cache bypasses
            assert r.headers["x-aigw-cache"] == "bypass"
        assert 'reason="store_unavailable"' in httpx.get(gw.ops_url + "/metrics").text

import asyncio

import pytest
import redis.asyncio as aioredis

from aigw_gateway.cache.semantic import SearchUnavailable, SemanticIndex, split_conversation, tag
from tests.fakes.search_redis import SearchRedis, why_no_search
from tests.fakes.sentence_embedder import embed, why_no_model

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


def test_the_last_user_turn_is_embedded_and_the_rest_is_a_context_hash():
    a = {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}]}
    b = {"model": "m", "messages": [{"role": "system", "content": "be verbose"}, {"role": "user", "content": QUESTION}]}
    text_a, ctx_a = split_conversation(a)
    text_b, ctx_b = split_conversation(b)
    assert text_a == text_b == QUESTION and ctx_a != ctx_b
    assert split_conversation({"messages": [{"role": "assistant", "content": "x"}]}) is None
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}]}
    assert split_conversation(parts)[0] == "hi"


async def test_a_paraphrase_is_near_an_unrelated_question_is_not_and_context_filters(search_redis):
    client = aioredis.Redis.from_url(search_redis.url)
    await client.flushall()
    index = SemanticIndex(client, "aigw:cache:ns/gw", timeout=1.0)
    q, p, u = await asyncio.to_thread(embed, [QUESTION, PARAPHRASE, UNRELATED])
    scope, route = tag("t:a"), tag("r", "ks")
    await index.add(q, scope, route, "ctx1", "entry-1", 60)
    key, similarity = await index.nearest(p, scope, route, "ctx1")
    assert key == "entry-1" and similarity >= 0.9
    far = await index.nearest(u, scope, route, "ctx1")
    assert far is None or far[1] < 0.5
    assert await index.nearest(p, scope, route, "ctx2") is None  # same question, another conversation
    assert await index.nearest(p, tag("t:b"), route, "ctx1") is None  # another tenant
    await client.flushall()  # the index is gone: a miss, then recreated by the next write
    assert await index.nearest(p, scope, route, "ctx1") is None
    await index.add(q, scope, route, "ctx1", "entry-2", 60)
    assert (await index.nearest(p, scope, route, "ctx1"))[0] == "entry-2"
    await client.aclose()


async def test_a_redis_without_search_is_reported_as_such(redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    index = SemanticIndex(client, "aigw:cache:x/y", timeout=1.0)
    with pytest.raises(SearchUnavailable):
        await index.add([0.1, 0.2], "s", "r", "c", "e", 60)
    await client.aclose()

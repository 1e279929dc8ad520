"""Gemini client -> Gemini target through a real gateway (google-genai SDK): the provider gets the
body the SDK would have sent it directly, Gemini's own settings included; countTokens,
embedContent and batchEmbedContents work natively, and embedContent reaches an OpenAI target."""

from __future__ import annotations

import httpx
import pytest
from google import genai
from google.genai import errors as gerrors
from google.genai import types as gtypes

from tests.gateway.harness import TENANT_KEY, write_crs

ROUTE = "chat-route"  # (google-genai embeds a list as one content for names starting "gemini")
UPSTREAM = "gemini-fake"
EMAIL = "jane.doe@example.com"

CONFIG = gtypes.GenerateContentConfig(
    system_instruction="be brief",
    temperature=0.5, top_k=7, candidate_count=1, max_output_tokens=64,
    thinking_config=gtypes.ThinkingConfig(thinking_budget=128, include_thoughts=True),
    safety_settings=[gtypes.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_ONLY_HIGH")],
    cached_content="cachedContents/abc123",
    labels={"team": "search"},
    response_modalities=["TEXT"],
)
CONTENTS = [gtypes.Content(role="user", parts=[
    gtypes.Part(text="summarise this"),
    gtypes.Part(file_data=gtypes.FileData(file_uri="https://example.com/report.pdf", mime_type="application/pdf")),
])]


def gemini(url: str, key: str = TENANT_KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=gtypes.HttpOptions(base_url=url, timeout=10_000))


@pytest.fixture
def gw(tmp_path, fake_gemini, start_gateway):
    path = write_crs(tmp_path / "crs.yaml", fake_gemini.base_url, provider="gemini", model=ROUTE,
                     upstream_model=UPSTREAM, upstream_key="g-upstream-test")
    return start_gateway("-f", str(path))


def test_upstream_gets_the_sdks_own_body(gw, fake_gemini):
    c = gemini(gw.url)
    via = c.models.generate_content(model=ROUTE, contents=CONTENTS, config=CONFIG)
    through = fake_gemini.last_request
    d = gemini(fake_gemini.base_url, "g-upstream-test")
    direct = d.models.generate_content(
        model=UPSTREAM, contents=CONTENTS, config=CONFIG)
    assert through.body == fake_gemini.last_request.body  # byte for byte what the SDK sends Google
    sent = through.json
    thinking = sent["generationConfig"].get("thinkingConfig") or sent["generationConfig"]["thinking_config"]
    assert 128 in thinking.values()  # (this SDK release spells it in snake case: Google accepts both)
    assert sent["generationConfig"]["topK"] == 7 and sent["cachedContent"] == "cachedContents/abc123"
    assert sent["labels"] == {"team": "search"} and sent["safetySettings"][0]["threshold"] == "BLOCK_ONLY_HIGH"
    assert "application/pdf" in sent["contents"][0]["parts"][1]["fileData"].values()
    assert through.path.endswith(f"/models/{UPSTREAM}:generateContent")
    assert via.text == direct.text and via.usage_metadata == direct.usage_metadata
    assert via.model_version == ROUTE


def test_stream_passes_through(gw, fake_gemini):
    c = gemini(gw.url)
    chunks = list(c.models.generate_content_stream(model=ROUTE, contents="one two three", config=CONFIG))
    assert "".join(c.text or "" for c in chunks) == "echo: one two three"
    assert chunks[-1].candidates[0].finish_reason == "STOP" and chunks[-1].usage_metadata.total_token_count > 0
    assert fake_gemini.last_request.path.endswith(":streamGenerateContent")


def test_count_tokens_native_and_estimated(gw, fake_gemini, fake_openai, tmp_path, start_gateway):
    c = gemini(gw.url)
    counted = c.models.count_tokens(model=ROUTE, contents="one two three four")
    assert counted.total_tokens == 4 and fake_gemini.last_request.path.endswith(f"/models/{UPSTREAM}:countTokens")
    # a route without a Gemini target: the gateway's estimate, and a header that says so
    other = start_gateway("-f", str(write_crs(tmp_path / "o.yaml", fake_openai.base_url, model="gpt-route")))
    r = httpx.post(f"{other.url}/v1beta/models/gpt-route:countTokens", headers={"x-goog-api-key": TENANT_KEY},
                   json={"contents": [{"role": "user", "parts": [{"text": "one two three four"}]}]}, timeout=10)
    assert r.status_code == 200 and r.json()["totalTokens"] > 0 and r.headers["x-aigw-token-count"] == "estimate"


def test_embed_content_native(gw, fake_gemini):
    c = gemini(gw.url)
    one = c.models.embed_content(model=ROUTE, contents="hello world")
    assert len(one.embeddings) == 1 and len(one.embeddings[0].values) == 8
    many = c.models.embed_content(model=ROUTE, contents=["a", "b", "c"],
                                  config=gtypes.EmbedContentConfig(output_dimensionality=4))
    assert [len(e.values) for e in many.embeddings] == [4, 4, 4]
    assert fake_gemini.last_request.path.endswith(f"/models/{UPSTREAM}:batchEmbedContents")
    assert {r["model"] for r in fake_gemini.last_request.json["requests"]} == {f"models/{UPSTREAM}"}


def test_embed_content_on_an_openai_target(tmp_path, fake_openai, start_gateway):
    gw = start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_openai.base_url, model="embed-route",
                                           upstream_model="fake-embedding")))
    c = gemini(gw.url)
    many = c.models.embed_content(model="embed-route", contents=["a b", "c"])
    assert len(many.embeddings) == 2 and all(e.values for e in many.embeddings)
    assert fake_openai.last_request.json["input"] == ["a b", "c"]


def test_embed_content_on_a_route_that_cannot_embed(tmp_path, fake_anthropic, start_gateway):
    gw = start_gateway("-f", str(write_crs(tmp_path / "crs.yaml", fake_anthropic.base_url, provider="anthropic",
                                           model="claude-route", upstream_model="claude-fake")))
    c = gemini(gw.url)
    with pytest.raises(gerrors.ClientError) as exc:
        c.models.embed_content(model="claude-route", contents="x")
    assert exc.value.code == 400 and "embedcontent" in exc.value.message.lower() and "anthropic" in exc.value.message


def test_guardrails_mask_and_restore(tmp_path, fake_gemini, start_gateway):
    path = write_crs(tmp_path / "crs.yaml", fake_gemini.base_url, provider="gemini", model=ROUTE,
                     upstream_model=UPSTREAM, upstream_key="g-upstream-test", extra="""---
apiVersion: aigw.dev/v1alpha1
kind: GuardrailPolicy
metadata: {name: pii}
spec:
  failMode: closed
  pii: {direction: both, action: mask, restoreInResponse: true, entities: [email]}
""")
    path.write_text(path.read_text().replace(f"      model: {UPSTREAM}\n", f"      model: {UPSTREAM}\n  guardrailPolicyRef: pii\n", 1))
    gw = start_gateway("-f", str(path))
    prompt = f"mail {EMAIL} now"
    c = gemini(gw.url)
    assert c.models.generate_content(model=ROUTE, contents=prompt).text == f"echo: {prompt}"
    streamed = "".join(ch.text or "" for ch in c.models.generate_content_stream(model=ROUTE, contents=prompt))
    assert streamed == f"echo: {prompt}"
    assert all(EMAIL.encode() not in r.body for r in fake_gemini.requests)
    assert b"<EMAIL_1>" in fake_gemini.last_request.body

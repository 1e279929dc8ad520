"""Gemini's generateContent API: the facts both directions use (ingress/gemini.py and
providers/gemini.py): finish reasons, usage fields, schema keep-lists, which canonical request
fields a target honours."""

from __future__ import annotations

from typing import Any

from .canonical import Usage, cache_tokens
from .common import BASE
from .rules import IGNORED, TRANSLATED, FieldRules, at_most, limited

# finishReason -> canonical; anything else (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...) is "stop".
FINISH_REASONS: dict[str, str] = {
    "STOP": "stop", "MAX_TOKENS": "length",
    **dict.fromkeys(("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                     "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"), "content_filter"),
}
# canonical -> finishReason
FINISH_OUT = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP",
              "function_call": "STOP"}

# Schema fields that mean the same in Gemini's Schema and JSON Schema (Gemini -> JSON Schema).
SCHEMA_TO_JSON = frozenset({
    "description", "title", "enum", "format", "required", "minItems", "maxItems", "minimum", "maximum",
    "minLength", "maxLength", "pattern", "minProperties", "maxProperties", "default",
})
# The OpenAPI subset of `Schema` that Gemini accepts (JSON Schema -> Gemini); everything else
# ($schema, additionalProperties, $ref after inlining, ...) is dropped.
SCHEMA_FROM_JSON = frozenset({
    "description", "title", "nullable", "required", "minItems", "maxItems", "minimum", "maximum",
    "minLength", "maxLength", "pattern", "minProperties", "maxProperties", "default", "propertyOrdering",
})
SCHEMA_FORMATS = frozenset({"enum", "date-time", "float", "double", "int32", "int64"})

# generationConfig fields the canonical format carries, and under which canonical key.
GENERATION_FIELDS = {
    "maxOutputTokens": "max_tokens", "temperature": "temperature", "topP": "top_p", "topK": "top_k",
    "seed": "seed", "stopSequences": "stop", "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty", "candidateCount": "n",
}  # responseLogprobs/logprobs stay Gemini's own: no renderer turns OpenAI logprobs into logprobsResult
# generationConfig fields handled by the ingress itself (response format, thinking, modalities).
GENERATION_HANDLED = frozenset({"responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig",
                                "responseModalities"})
REQUEST_FIELDS = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
                            "model"})  # some REST clients repeat the URL's model in the body
MAX_CANDIDATES = 8


def _n(value: Any, request: Any) -> str | None:
    if not isinstance(value, int) or value <= 1:
        return None
    if request.get("stream"):
        return "above 1 cannot be streamed from Gemini targets by the gateway"
    if value > MAX_CANDIDATES:
        return f"above Gemini's maximum of {MAX_CANDIDATES} candidates"
    return None


FIELDS = FieldRules(api="gemini", label="Gemini", fields={
    **BASE,
    "temperature": at_most(2.0), "top_k": TRANSLATED, "n": limited(_n), "seed": TRANSLATED,
    "presence_penalty": TRANSLATED, "frequency_penalty": TRANSLATED, "response_format": TRANSLATED,
    "reasoning_effort": TRANSLATED, "reasoning_budget": TRANSLATED,
    "prompt_cache_key": IGNORED,  # Gemini caches prompt prefixes implicitly
})


def to_canonical_usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    usage: Usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                    "total_tokens": int(meta.get("totalTokenCount") or prompt + completion)}
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    if meta.get("cachedContentTokenCount"):
        usage["prompt_tokens_details"] = {"cached_tokens": int(meta["cachedContentTokenCount"])}
    return usage


def from_canonical_usage(usage: Any) -> dict[str, Any] | None:
    """usageMetadata; promptTokenCount includes cached tokens (Gemini's own counting), which
    cachedContentTokenCount itemises. Gemini has no field for cache writes: they stay in the prompt count."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    thoughts = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    meta: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": completion - thoughts,
                            "totalTokenCount": int(usage.get("total_tokens") or prompt + completion)}
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    read, _ = cache_tokens(usage)
    if read:
        meta["cachedContentTokenCount"] = read
    return meta

"""What identifies a cacheable request: normalization, the deterministic rule, key spaces.

The request keyed is the one after input guardrails (masked), so an entry never holds PII and
two callers whose prompts differ only in, say, an email share it. Normalization removes what does
not change the answer (streaming options, end-user ids, metadata, key order, 0 vs 0.0) and keeps
everything else: an unknown field might change the answer, so it stays in the key.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from aigw_config.config import RouteConfig

# Per client API, the top-level fields that never change an answer.
_NEUTRAL: dict[str, frozenset[str]] = {
    "chat": frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier", "safety_identifier",
                       "prompt_cache_key", "parallel_tool_calls_hint"}),
    "responses": frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier", "background",
                            "safety_identifier", "prompt_cache_key", "client_metadata"}),
    "messages": frozenset({"stream", "metadata", "service_tier"}),
    "gemini": frozenset({"labels"}),
}


def _canonical_value(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # 0 and 0.0, 1 and 1.0 ask for the same thing
    if isinstance(value, dict):
        return {k: _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_value(v) for v in value]
    return value


# Responses input items: what names an item (its id, its status) does not change an answer. A
# conversation resolved from a stored `previous_response_id` carries the ids of earlier answers,
# different for every caller; without them the same conversation is the same key.
_ITEM_LABELS = ("id", "status")
_LABELLED_ITEMS = frozenset({"message", "function_call", "function_call_output"})


def _responses_input(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    return [{k: v for k, v in item.items() if k not in _ITEM_LABELS}
            if isinstance(item, dict) and (item.get("type") or "message") in _LABELLED_ITEMS else item
            for item in value]


def normalize(api: str, body: dict[str, Any]) -> bytes:
    """Stable bytes for a request body of the client API `api` (sorted keys, neutral fields out)."""
    neutral = _NEUTRAL.get(api.split("/", 1)[0], frozenset())  # "messages/native/stream": the API's own
    kept = {k: _canonical_value(v) for k, v in body.items() if k not in neutral}
    if api == "responses" and "input" in kept:
        kept["input"] = _responses_input(kept["input"])
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)


def _temperature_and_seed(api: str, body: dict[str, Any]) -> tuple[Any, Any]:
    if api == "gemini":
        config = body.get("generationConfig") or body.get("generation_config") or {}
        if not isinstance(config, dict):
            return None, None
        return config.get("temperature"), config.get("seed")
    return body.get("temperature"), body.get("seed")


def bypass_reason(api: str, body: dict[str, Any], deterministic_only: bool) -> str | None:
    """Why this request is not cacheable by its own content (None: it is). Counted by reason."""
    if deterministic_only:
        temperature, seed = _temperature_and_seed(api, body)
        if seed is None and temperature != 0:
            return "nondeterministic"
    if api == "chat" and isinstance(body.get("n"), int) and body["n"] > 1:
        return "multiple_choices"
    if api == "responses":
        # The answer depends on what the provider keeps (a conversation of its own, a stored
        # prompt): the request does not say what it asks. A stored `previous_response_id` of the
        # gateway is resolved into `input` before this, so what remains here is the provider's.
        if any(body.get(k) is not None for k in ("previous_response_id", "conversation", "prompt")):
            return "provider_state"
        if body.get("background") is True:
            return "background"
    return None


_KEYSPACES: dict[int, tuple[RouteConfig, str]] = {}  # per loaded route object: computed once, not per request


def route_keyspace(route: RouteConfig) -> str:
    """Changes whenever what could answer changes: the route's targets or its cache settings."""
    found = _KEYSPACES.get(id(route))
    if found is not None and found[0] is route:
        return found[1]
    if len(_KEYSPACES) > 4096:  # routes of configs no longer served
        _KEYSPACES.clear()
    keyspace = _keyspace(route)
    _KEYSPACES[id(route)] = (route, keyspace)
    return keyspace


def _keyspace(route: RouteConfig) -> str:
    spec = orjson.dumps({
        "targets": [t.model_dump(mode="json") for t in route.targets],
        "cache": route.cache.model_dump(mode="json") if route.cache else None,
        "guardrails": route.guardrail_policy,
    }, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(spec).hexdigest()[:16]


def scope_id(scope: str, tenant: str) -> str:
    return "*" if scope == "route" else f"t:{tenant}"


def entry_key(prefix: str, route: RouteConfig, scope: str, api: str, normalized: bytes) -> str:
    """`<prefix>:<route>:<keyspace>:<scope>:<sha256>`; `prefix` carries the gateway identity, so
    gateways sharing one Redis never share entries, and a purge can scan `<prefix>:<route>:*`."""
    digest = hashlib.sha256(api.encode() + b"\0" + normalized).hexdigest()
    return f"{prefix}:{route.name}:{route_keyspace(route)}:{scope}:{digest}"


def key_prefix(namespace: str, gateway: str) -> str:
    return f"aigw:cache:{namespace}/{gateway}"

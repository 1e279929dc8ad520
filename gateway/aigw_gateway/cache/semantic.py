"""Similarity lookup in Redis Search: one HNSW index per gateway, KNN filtered by scope and route.

What is embedded is the last user turn only; the rest of the conversation (system prompt, earlier
turns, tools, settings) goes into a `ctx` tag as a hash, so a paraphrase of a question hits while the
same question in another conversation does not. Tags are hex digests: nothing needs escaping and
no tenant or route name appears in the index. The index is created when it is missing — at the
first write, or when a query finds it gone after a Redis restart or flush.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from typing import Any

import orjson

from .store import CacheUnavailable


class SearchUnavailable(CacheUnavailable):
    """Redis answers but has no search module (FT.* unknown): semantic lookups bypass."""


def tag(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def split_conversation(request: dict[str, Any]) -> tuple[str, str] | None:
    """(last user turn's text, a hash of everything else) for a canonical chat request, or None
    when the request does not end in a user turn with text."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "user":
        return None
    text = _text_of(last.get("content")).strip()
    if not text:
        return None
    rest = {k: v for k, v in request.items() if k not in ("messages", "stream", "stream_options", "user", "metadata")}
    rest["messages"] = messages[:-1]
    return text, hashlib.sha256(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _first_result(reply: Any) -> dict[str, Any] | None:
    """The first hit's fields from an FT.SEARCH reply, RESP2 (a flat list) or RESP3 (a map)."""
    if isinstance(reply, dict):  # RESP3
        results = reply.get(b"results") or reply.get("results") or []
        if not results:
            return None
        fields = results[0].get(b"extra_attributes") or results[0].get("extra_attributes") or {}
        return {_text(k): v for k, v in fields.items()}
    if not reply or reply[0] == 0 or len(reply) < 3:
        return None
    fields = reply[2]
    return {_text(fields[i]): fields[i + 1] for i in range(0, len(fields) - 1, 2)}


def _blob(vector: list[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


class SemanticIndex:
    """Vectors as Redis hashes under `<prefix>:vec:`, indexed by `<prefix>:idx`."""

    def __init__(self, client, prefix: str, timeout: float = 0.05) -> None:
        self.client = client
        self.index = f"{prefix}:idx"
        self.doc_prefix = f"{prefix}:vec:"
        self.timeout = timeout
        self._created_dim: int | None = None

    async def _command(self, *args):
        try:
            async with asyncio.timeout(self.timeout):
                return await self.client.execute_command(*args)
        except Exception as exc:
            text = str(exc).lower()
            if "unknown command" in text:
                raise SearchUnavailable("no search module") from exc
            raise

    async def ensure(self, dim: int) -> None:
        if self._created_dim == dim:
            return
        try:
            await self._command(
                "FT.CREATE", self.index, "ON", "HASH", "PREFIX", "1", self.doc_prefix, "SCHEMA",
                "scope", "TAG", "route", "TAG", "ctx", "TAG",
                "vec", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(dim), "DISTANCE_METRIC", "COSINE",
            )
        except SearchUnavailable:
            raise
        except Exception as exc:
            if "already exists" not in str(exc).lower():
                raise CacheUnavailable(type(exc).__name__) from exc
        self._created_dim = dim

    async def nearest(self, vector: list[float], scope: str, route: str, ctx: str) -> tuple[str, float] | None:
        """(entry key, cosine similarity) of the closest vector with these tags, or None."""
        query = f"(@scope:{{{scope}}} @route:{{{route}}} @ctx:{{{ctx}}})=>[KNN 1 @vec $v AS dist]"
        try:
            reply = await self._command("FT.SEARCH", self.index, query, "PARAMS", "2", "v", _blob(vector),
                                        "RETURN", "2", "entry", "dist", "SORTBY", "dist", "DIALECT", "2", "LIMIT", "0", "1")
        except SearchUnavailable:
            raise
        except Exception as exc:
            if "no such index" in str(exc).lower() or "unknown index" in str(exc).lower():
                self._created_dim = None  # flushed or restarted: recreated at the next write
                return None
            raise CacheUnavailable(type(exc).__name__) from exc
        values = _first_result(reply)
        if values is None:
            return None
        entry, dist = values.get("entry"), values.get("dist")
        if entry is None or dist is None:
            return None
        return _text(entry), 1.0 - float(_text(dist))

    async def add(self, vector: list[float], scope: str, route: str, ctx: str, entry_key: str, ttl_seconds: int) -> None:
        await self.ensure(len(vector))
        doc = self.doc_prefix + hashlib.sha256(entry_key.encode()).hexdigest()[:32]
        try:
            async with asyncio.timeout(max(self.timeout, 0.25)):
                pipe = self.client.pipeline(transaction=False)
                pipe.hset(doc, mapping={"scope": scope, "route": route, "ctx": ctx, "entry": entry_key,
                                        "vec": _blob(vector)})
                pipe.expire(doc, ttl_seconds)
                await pipe.execute()
        except Exception as exc:
            raise CacheUnavailable(type(exc).__name__) from exc

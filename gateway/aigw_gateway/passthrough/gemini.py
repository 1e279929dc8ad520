"""Gemini client -> Gemini target: generateContent, streamGenerateContent, countTokens,
embedContent and batchEmbedContents with the client's body as it came (the model is in the
URL), and the provider's answer as it came (modelVersion names the model the client asked for).

embedContent / batchEmbedContents also reach an OpenAI-embeddings target, translated here
(`OpenAIEmbeddings`): the texts of each content become one input, the vectors come back as
Gemini `embedding.values`. Wire facts (URL, usage mapping, errors) come from providers/gemini.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from aigw_config.config import ProviderConfig

from ..errors import GatewayError, UpstreamBadResponse
from ..ingress.gemini import INGRESS
from ..limits.estimate import IMAGE_PART_TOKENS, OTHER_PART_TOKENS, text_tokens
from ..providers import adapter_for
from ..providers.base import UpstreamRequest
from ..providers.gemini import GeminiAdapter, canonical_usage, error_from_body, model_url
from .base import Answer, NativeApi, NativeRequest, Piece, RawEvents, Slot, StreamTexts, sse, substantial

PROVIDERS = frozenset({"gemini"})
EMBEDDING_PROVIDERS = frozenset({"openai", "azure-openai", "openai-compatible", "ollama"})
_ERRORS = GeminiAdapter()
_JSON = {"content-type": "application/json", "accept": "application/json"}
_SSE = {"content-type": "application/json", "accept": "text/event-stream", "accept-encoding": "identity"}


def _get(obj: Any, camel: str, snake: str) -> Any:
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _load(body: bytes, target: str) -> Answer:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"upstream {target} returned a response that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamBadResponse(f"upstream {target} returned a response that is not an object")
    if isinstance(data.get("error"), dict):
        raise error_from_body(data, None, None, target)
    out = Answer(data)
    out.raw = body
    return out


def _method(request: NativeRequest, stream: bool) -> str:
    if request.operation == "chat":
        return "streamGenerateContent?alt=sse" if stream else "generateContent"
    return "countTokens" if request.operation == "count_tokens" else request.action


class GeminiNative:
    """The executor's adapter for one request on a Gemini target."""

    client_format = True

    def __init__(self, request: NativeRequest, stream_guard: Any = None) -> None:
        self.request = request
        self.stream_guard = stream_guard

    def chat_request(self, provider: ProviderConfig, api_key: str | None, model: str, request: NativeRequest,
                     stream: bool) -> UpstreamRequest:
        headers = dict(_SSE if stream else _JSON)
        headers.update(request.headers)
        if api_key:
            headers["x-goog-api-key"] = api_key
        if request.action == "batchEmbedContents":  # each entry names the model too: the upstream one
            items = [{**item, "model": f"models/{model.removeprefix('models/')}"} if isinstance(item, dict) else item
                     for item in request.body.get("requests") or ()]
            body = orjson.dumps({**request.body, "requests": items})
        else:
            body = request.body_bytes(None)
        return UpstreamRequest("POST", model_url(provider.base_url, model, _method(request, stream)), headers, body)

    def chat_response(self, body: bytes, target: str, model: str) -> Answer:
        data = _load(body, target)
        if self.request.operation == "chat" and not isinstance(data.get("candidates"), list) \
                and not _get(data, "promptFeedback", "prompt_feedback"):
            raise UpstreamBadResponse(f"upstream {target} returned a response without candidates")
        return data

    def stream_translator(self, target: str, model: str) -> "GeminiTap":
        factory = self.stream_guard
        return GeminiTap(target, self.request.model, factory() if factory is not None else None)

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        return _ERRORS.error_for(status, body, headers, target)


class OpenAIEmbeddings:
    """embedContent / batchEmbedContents on an OpenAI-embeddings target, in the client's format."""

    client_format = True

    def __init__(self, request: NativeRequest, inner: Any) -> None:
        self.request = request
        self.inner = inner

    def _contents(self) -> list[Any]:
        if self.request.action == "batchEmbedContents":
            return [item.get("content") if isinstance(item, dict) else None for item in self.request.body.get("requests") or ()]
        return [self.request.body.get("content")]

    def chat_request(self, provider: ProviderConfig, api_key: str | None, model: str, request: NativeRequest,
                     stream: bool) -> UpstreamRequest:
        texts = [" ".join(p["text"] for p in (c or {}).get("parts") or () if isinstance(p, dict) and isinstance(p.get("text"), str))
                 for c in self._contents()]
        body: dict[str, Any] = {"input": texts}
        first = request.body.get("requests", [request.body])[0] if request.action == "batchEmbedContents" else request.body
        dimensions = _get(first, "outputDimensionality", "output_dimensionality")
        if isinstance(dimensions, int):
            body["dimensions"] = dimensions
        return self.inner.embeddings_request(provider, api_key, model, body)

    def chat_response(self, body: bytes, target: str, model: str) -> Answer:
        data = self.inner.embeddings_response(body, target, model)
        vectors = [{"values": item.get("embedding")} for item in sorted(data["data"], key=lambda d: d.get("index", 0))]
        out = Answer({"embeddings": vectors} if self.request.action == "batchEmbedContents" else {"embedding": vectors[0]})
        if isinstance(data.get("usage"), dict):  # kept aside for limits and cost, not sent to the client
            out.raw = b""
            out.openai_usage = data["usage"]  # type: ignore[attr-defined]
        return out

    def error_for(self, status: int, body: bytes, headers: dict[str, str], target: str) -> GatewayError:
        return self.inner.error_for(status, body, headers, target)


def adapter(request: NativeRequest, stream_guard: Any = None) -> Any:
    return GeminiNative(request, stream_guard)


def embeddings_adapter(request: NativeRequest, provider: ProviderConfig) -> Any | None:
    if provider.provider in PROVIDERS:
        return GeminiNative(request)
    inner = adapter_for(provider.provider)
    if provider.provider in EMBEDDING_PROVIDERS and inner is not None and hasattr(inner, "embeddings_request"):
        return OpenAIEmbeddings(request, inner)
    return None


def usage_of(answer: dict[str, Any]) -> dict[str, Any] | None:
    openai_usage = getattr(answer, "openai_usage", None)
    if openai_usage is not None:
        prompt = int(openai_usage.get("prompt_tokens") or 0)
        return {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt}
    return canonical_usage(_get(answer, "usageMetadata", "usage_metadata"))


def map_model(answer: dict[str, Any], model: str) -> bool:
    if "modelVersion" not in answer or answer["modelVersion"] == model:
        return False
    answer["modelVersion"] = model
    return True


# --- texts for guardrails -----------------------------------------------------------------------

def _part_slots(content: Any, role: str, out: list[Slot]) -> None:
    for part in (content.get("parts") if isinstance(content, dict) else None) or ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            out.append(Slot(part, "text", role))
        call = _get(part, "functionCall", "function_call")
        if isinstance(call, dict) and "args" in call:
            out.append(Slot(call, "args", "assistant", "arguments"))
        result = _get(part, "functionResponse", "function_response")
        if isinstance(result, dict) and "response" in result:
            out.append(Slot(result, "response", "tool", "arguments"))


def request_slots(body: dict[str, Any]) -> list[Slot]:
    out: list[Slot] = []
    _part_slots(_get(body, "systemInstruction", "system_instruction"), "system", out)
    for content in body.get("contents") or ():
        role = "assistant" if isinstance(content, dict) and content.get("role") == "model" else "user"
        _part_slots(content, role, out)
    _part_slots(body.get("content"), "user", out)  # embedContent
    for item in body.get("requests") or ():  # batchEmbedContents
        _part_slots(item.get("content") if isinstance(item, dict) else None, "user", out)
    return out


def answer_slots(answer: dict[str, Any]) -> list[Slot]:
    out: list[Slot] = []
    for candidate in answer.get("candidates") or ():
        _part_slots(candidate.get("content") if isinstance(candidate, dict) else None, "assistant", out)
    return out


# --- token estimate -----------------------------------------------------------------------------

def _content_tokens(content: Any) -> int:
    total = 4
    for part in (content.get("parts") if isinstance(content, dict) else None) or ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            total += text_tokens(part["text"])
        elif _get(part, "inlineData", "inline_data") or _get(part, "fileData", "file_data"):
            data = _get(part, "inlineData", "inline_data") or _get(part, "fileData", "file_data")
            mime = str(_get(data, "mimeType", "mime_type") or "")
            total += IMAGE_PART_TOKENS if mime.startswith("image/") else OTHER_PART_TOKENS
        else:
            total += (len(orjson.dumps(part)) + 3) >> 2
    return total


def prompt_tokens(body: dict[str, Any]) -> int:
    total = 3
    system = _get(body, "systemInstruction", "system_instruction")
    if system:
        total += _content_tokens(system)
    for content in body.get("contents") or ():
        total += _content_tokens(content)
    if body.get("content"):
        total += _content_tokens(body["content"])
    for item in body.get("requests") or ():
        total += _content_tokens(item.get("content") if isinstance(item, dict) else None)
    if body.get("tools"):
        total += (len(orjson.dumps(body["tools"])) + 3) >> 2
    return total


def allowance(body: dict[str, Any], default_max_tokens: int) -> int:
    config = _get(body, "generationConfig", "generation_config") or {}
    cap = _get(config, "maxOutputTokens", "max_output_tokens")
    count = _get(config, "candidateCount", "candidate_count")
    cap = cap if type(cap) is int and cap > 0 else default_max_tokens
    return cap * (count if type(count) is int and count > 0 else 1)


def estimate(body: dict[str, Any], default_max_tokens: int) -> int:
    return prompt_tokens(body) + allowance(body, default_max_tokens)


def embeddings_estimate(body: dict[str, Any], _default: int) -> int:
    return max(1, prompt_tokens(body) - 3)


# --- the stream ---------------------------------------------------------------------------------

class GeminiTap:
    """Gemini SSE (one GenerateContentResponse per event) as it came; reads usageMetadata,
    names the client's model, and runs the guardrail stream filter over each candidate's text."""

    client_format = True
    substantial = staticmethod(substantial)

    def __init__(self, target: str, model: str, guard: Any = None) -> None:
        self.target = target
        self.model = model
        self.events = RawEvents()
        self.texts = StreamTexts(guard) if guard is not None else None
        self.meta: Any = None
        self.done = False

    @property
    def usage(self) -> dict[str, Any] | None:
        return canonical_usage(self.meta)

    def feed(self, data: bytes) -> list[Piece]:
        return [p for event in self.events.feed(data) for p in self._event(*event)]

    def finish(self) -> list[Piece]:
        out = [p for event in self.events.flush() for p in self._event(*event)]
        if not self.done:
            raise UpstreamBadResponse(f"upstream {self.target} ended the stream before a finishReason")
        return out

    def _event(self, raw: bytes, name: str | None, payload: bytes) -> list[Piece]:
        if not payload:
            return [Piece(raw)]
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"upstream {self.target} sent a stream event that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamBadResponse(f"upstream {self.target} sent a stream event that is not an object")
        if isinstance(data.get("error"), dict):
            return [Piece(raw, error=error_from_body(data, None, None, self.target))]
        meta = _get(data, "usageMetadata", "usage_metadata")
        self.meta = meta or self.meta
        candidates = data.get("candidates") or []
        finished = any(isinstance(c, dict) and c.get("finishReason") for c in candidates) \
            or bool(_get(data, "promptFeedback", "prompt_feedback") and not candidates)
        self.done = self.done or finished
        changed = map_model(data, self.model)
        if self.texts is not None:
            changed = self._guard(candidates) or changed
        if changed:
            raw = sse(name, orjson.dumps(data), crlf=raw.endswith(b"\r\n\r\n"))
        return [Piece(raw, substance=bool(candidates) or finished or bool(meta))]

    def _guard(self, candidates: list[Any]) -> bool:
        texts = self.texts
        assert texts is not None
        changed = False
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                continue
            index = candidate.get("index", position)
            parts = (candidate.get("content") or {}).get("parts") or []
            last_text: dict[str, Any] | None = None
            for part in list(parts):
                if not isinstance(part, dict) or part.get("thought"):
                    continue
                if isinstance(part.get("text"), str):
                    new = texts.text(index, part["text"])
                    if new != part["text"]:
                        part["text"], changed = new, True
                    last_text = part
                call = part.get("functionCall")
                if isinstance(call, dict) and "args" in call:  # whole calls: scanned at once
                    fed = texts.arguments(index, orjson.dumps(call["args"]).decode())
                    rest, args_rest = texts.close(index)
                    if rest:  # text held back before the call goes out ahead of it
                        if last_text is None:
                            last_text = {"text": ""}
                            parts.insert(parts.index(part), last_text)
                        last_text["text"] += rest
                    new_args = orjson.loads(fed + args_rest)
                    if new_args != call["args"]:
                        call["args"] = new_args
                    changed = True
            if candidate.get("finishReason"):
                rest, _ = texts.close(index)
                if rest:
                    if last_text is None:
                        last_text = {"text": ""}
                        candidate.setdefault("content", {"role": "model"}).setdefault("parts", []).append(last_text)
                    last_text["text"] += rest
                    changed = True
        return changed


API = NativeApi(
    name="gemini", providers=PROVIDERS, ingress=INGRESS, adapter=adapter,
    request_slots=request_slots, answer_slots=answer_slots, usage_of=usage_of, map_model=map_model,
    estimate=estimate, prompt_tokens=prompt_tokens, allowance=allowance, count_body=lambda n: {"totalTokens": n},
)

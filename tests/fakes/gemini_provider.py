"""A fake Google Gemini (Developer API) provider for tests.

``FakeGemini`` is a real HTTP server on ``127.0.0.1`` speaking Gemini's wire format. It shares
the machinery of :class:`tests.fakes.openai_provider.FakeOpenAI` (daemon thread, scripting with
:class:`Behaviour`, model-name directives, recorded requests) and answers Gemini's paths::

    with FakeGemini(api_key="g-upstream-test") as fake:
        client = genai.Client(api_key="g-upstream-test", http_options=types.HttpOptions(base_url=fake.base_url))
        client.models.generate_content(model="gemini-fake", contents="hello")

Endpoints (under ``/v1beta`` and ``/v1``)
----------------------------------------
``POST /{version}/models/{model}:generateContent``            GenerateContentResponse
``POST /{version}/models/{model}:streamGenerateContent?alt=sse``  one response per SSE event
                                                               (without ``alt=sse``: a JSON array)
``POST /{version}/models/{model}:countTokens``                 ``{"totalTokens": words of the texts}``
``POST /{version}/models/{model}:embedContent``                ``{"embedding": {"values": [...]}}``
``POST /{version}/models/{model}:batchEmbedContents``          ``{"embeddings": [...]}`` (each request's
                                                               ``model`` must be the URL's, as Google checks)
``GET  /health``                                               200 (never recorded)

Responses
---------
* The text is ``"echo: <text of the last user content>"`` (its text parts joined by a space).
  If the last content holds a ``functionResponse`` the text is ``"echo: <its output>"``: the
  ``output`` string of the response object, or the object as compact JSON otherwise.
* With function declarations in ``tools`` (mode not ``NONE``, last content not a function
  response) the answer is one ``functionCall`` part calling the first declaration (or the first
  of ``allowedFunctionNames`` under mode ``ANY``) with args ``{"arg": "value"}``, finishReason
  ``STOP``, and no call id, as Gemini 2.x answers.
* usageMetadata: promptTokenCount = whitespace words of all text parts (min 1),
  candidatesTokenCount = words of the text or of the args JSON (min 1), totalTokenCount = sum.
* Streaming: N events (``chunks``, default 3) carrying contiguous text slices; every event has
  partial usageMetadata (prompt count only), the last one also ``finishReason`` and the full
  usage. A function call is one event. ``disconnect_after`` / ``stall_after`` count events.
* ``modelVersion`` echoes the model from the URL verbatim, ``responseId`` is unique.
* Errors have Google's shape ``{"error": {"code", "message", "status"}}`` (429 is
  ``RESOURCE_EXHAUSTED``). Credentials as Google checks them: no key (header ``x-goog-api-key``
  or ``?key=``) gives 403 ``PERMISSION_DENIED``; a wrong key gives 400 ``INVALID_ARGUMENT``
  with ErrorInfo reason ``API_KEY_INVALID`` (Google does not answer 401 for API keys).

Faults: ``fake.script(Behaviour(...))`` or directives in the model segment of the URL
(``gemini-fake~status=503``, ``~stall=2``, ``~garbage=1``, ``~disconnect=1``,
``~disconnect_after=2``, ...), exactly as for FakeOpenAI; faults come before the key check.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from tests.fakes.openai_provider import (
    Behaviour,
    FakeOpenAI,
    RecordedRequest,
    count_tokens,
    fake_embedding,
    parse_model_directives,
    split_text,
)

__all__ = ["GOOGLE_STATUS", "Behaviour", "FakeGemini", "GeminiRecordedRequest", "google_error"]

_PATH = re.compile(r"/(v1beta|v1|v1alpha)/models/([^/:]+):"
                   r"(generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)")
EMBEDDING_DIMS = 8

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota). (injected by FakeGemini)",
    500: "An internal error has occurred. (injected by FakeGemini)",
    503: "The model is overloaded. Please try again later. (injected by FakeGemini)",
}


def google_error(
    status: int, message: str | None = None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": status,
        "message": message or _DEFAULT_MESSAGES.get(status, f"HTTP {status} (injected by FakeGemini)"),
        "status": GOOGLE_STATUS.get(status, "UNKNOWN"),
    }
    if details:
        err["details"] = details
    return {"error": err}


def _get(obj: Any, camel: str, snake: str) -> Any:
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _texts(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p["text"] for p in parts or ()
            if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")]


def _function_responses(content: Any) -> list[dict[str, Any]]:
    parts = content.get("parts") if isinstance(content, dict) else None
    out = [_get(p, "functionResponse", "function_response") for p in parts or ()]
    return [r for r in out if isinstance(r, dict)]


class GeminiRecordedRequest(RecordedRequest):
    @property
    def model(self) -> str | None:
        m = _PATH.fullmatch(self.path)
        return m.group(2) if m else None

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key") or self.query.get("key")


class FakeGemini(FakeOpenAI):
    """Fake Gemini provider.  See the module docstring."""

    def __init__(self, api_key: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("models", ("gemini-fake",))
        super().__init__(api_key, **kwargs)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (what ``HttpOptions(base_url=...)`` and ProviderCredential want)."""
        return self.url

    def __repr__(self) -> str:
        return f"<FakeGemini port={self.port} running={self.running} requests={len(self.requests)}>"

    # ---- HTTP -------------------------------------------------------------- #
    def _gerror(self, status: int, message: str | None = None, headers: dict[str, str] | None = None,
                details: list[dict[str, Any]] | None = None) -> web.Response:
        return self._json(google_error(status, message, details), status=status, headers=headers)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/health", "/healthz"):
            return self._json({"status": "ok"})
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self._record(GeminiRecordedRequest(
            method=request.method, path=path, query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()}, body=body, json=parsed,
            received_at=time.monotonic(),
        ))
        headers = {"x-request-id": self._next_id("req_")}
        match = _PATH.fullmatch(path)
        if request.method != "POST" or match is None:
            return self._gerror(404, f"Method not found: {request.method} {path}", headers)

        model = match.group(2)
        streaming = match.group(3) == "streamGenerateContent"
        directives = Behaviour()
        if "~" in model:
            try:
                _, directives = parse_model_directives(model)
            except ValueError as exc:
                return self._gerror(400, str(exc), headers)
        scripted = self._next_behaviour()
        eff = scripted.merged_over(directives) if scripted is not None else directives
        headers.update(eff.headers)

        async def garbage() -> web.StreamResponse:
            if streaming:
                return await self._stream(request, [b"data: {this is not json\r\n\r\n"], eff, 200, headers)
            return web.Response(body=b"<html>502 {{{ not JSON", status=200,
                                headers={**headers, "content-type": "application/json"})

        fault = await self._pre_response_faults(
            request, eff, headers, lambda status, msg: self._gerror(status, msg, headers), garbage)
        if fault is not None:
            return fault

        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if self.api_key is not None and not key:
            return self._gerror(403, "Method doesn't allow unregistered callers (callers without established "
                                     "identity). Please use API Key or other form of API consumer identity to call "
                                     "this API.", headers)
        if self.api_key is not None and key != self.api_key:
            return self._gerror(400, "API key not valid. Please pass a valid API key.", headers, details=[{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"},
            }])
        if not isinstance(parsed, dict):
            return self._gerror(400, "Invalid JSON payload received.", headers)
        method = match.group(3)
        if method == "countTokens":
            inner = parsed.get("generateContentRequest") or parsed
            texts = [t for c in [*(inner.get("contents") or ()), _get(inner, "systemInstruction", "system_instruction")]
                     for t in _texts(c)]
            return self._json({"totalTokens": max(1, sum(count_tokens(t) for t in texts))}, headers=headers)
        if method in ("embedContent", "batchEmbedContents"):
            return self._embed(model, method, parsed, headers)
        problem = self._invalid(parsed)
        if problem:
            return self._gerror(400, problem, headers)
        return await self._generate(request, model, parsed, eff, headers, streaming, request.query.get("alt") == "sse")

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str | None:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return "* GenerateContentRequest.contents: contents is not specified"
        for i, content in enumerate(contents):
            if not isinstance(content, dict) or not isinstance(content.get("parts"), list) or not content["parts"]:
                return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            if content.get("role", "user") not in ("user", "model", "function"):
                return f"* GenerateContentRequest.contents[{i}].role: Please use a valid role: user, model."
        return None

    def _embed(self, model: str, method: str, body: dict[str, Any], headers: dict[str, str]) -> web.Response:
        """Deterministic vectors of the content's text (EMBEDDING_DIMS or outputDimensionality)."""
        items = body.get("requests") if method == "batchEmbedContents" else [body]
        if not isinstance(items, list) or not items:
            return self._gerror(400, "* BatchEmbedContentsRequest.requests: requests is not specified", headers)
        vectors = []
        for i, item in enumerate(items):
            if method == "batchEmbedContents" and item.get("model") != f"models/{model}":
                return self._gerror(400, f"* BatchEmbedContentsRequest.requests[{i}].model: the model must be "
                                         f"models/{model}, the model of the URL", headers)
            texts = _texts(item.get("content"))
            if not texts:
                return self._gerror(400, "* EmbedContentRequest.content: content is not specified", headers)
            dims = _get(item, "outputDimensionality", "output_dimensionality") or EMBEDDING_DIMS
            vectors.append({"values": fake_embedding(" ".join(texts), int(dims))})
        if method == "embedContent":
            return self._json({"embedding": vectors[0]}, headers=headers)
        return self._json({"embeddings": vectors}, headers=headers)

    # ---- generation --------------------------------------------------------- #
    def _answer(self, body: dict[str, Any], eff: Behaviour) -> tuple[str, dict[str, Any] | None]:
        contents = body["contents"]
        responses = _function_responses(contents[-1])
        if responses:
            out = responses[-1].get("response")
            plain = isinstance(out, dict) and isinstance(out.get("output"), str)
            text = "echo: " + (out["output"] if plain else _dumps(out).decode())
        else:
            user = next((c for c in reversed(contents) if c.get("role", "user") == "user" and _texts(c)), None)
            text = "echo: " + (" ".join(_texts(user)) if user else "")
        if eff.content is not None:
            text = eff.content
        declarations = [d for tool in body.get("tools") or ()
                        for d in _get(tool, "functionDeclarations", "function_declarations") or ()]
        config = _get(body, "toolConfig", "tool_config")
        calling = _get(config, "functionCallingConfig", "function_calling_config") or {}
        mode = str(calling.get("mode") or "AUTO").upper()
        if not declarations or mode == "NONE" or responses:
            return text, None
        allowed = _get(calling, "allowedFunctionNames", "allowed_function_names")
        name = allowed[0] if mode == "ANY" and allowed else declarations[0].get("name", "tool")
        return text, {"name": name, "args": {"arg": "value"}}

    async def _generate(self, request: web.Request, model: str, body: dict[str, Any], eff: Behaviour,
                        headers: dict[str, str], streaming: bool, sse: bool) -> web.StreamResponse:
        text, call = self._answer(body, eff)
        system = _get(body, "systemInstruction", "system_instruction")
        prompt_tokens = max(1, sum(count_tokens(t) for c in [*body["contents"], system] for t in _texts(c)))
        completion_tokens = max(1, count_tokens(_dumps(call["args"]).decode() if call else text))
        usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": completion_tokens,
                 "totalTokenCount": prompt_tokens + completion_tokens,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]}
        response_id = self._next_id("resp")
        status = eff.status if eff.status is not None else 200

        def response(parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if final:
                candidate["finishReason"] = "STOP"
            partial = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
            return {"candidates": [candidate], "usageMetadata": usage if final else partial,
                    "modelVersion": model, "responseId": response_id}

        if call:
            answers = [response([{"functionCall": call}], True)]
        elif streaming:
            pieces = split_text(text, eff.chunks if eff.chunks is not None else self.default_chunks) or [text]
            answers = [response([{"text": piece}], i == len(pieces) - 1) for i, piece in enumerate(pieces)]
        else:
            answers = [response([{"text": text}], True)]

        if not streaming:
            if eff.disconnect_after_chunks is not None:
                return await self._truncated(request, _dumps(answers[0]), status, headers)
            return self._json(answers[0], status=status, headers=headers)
        if not sse:  # Google's non-SSE stream: one JSON array, written as it goes
            return self._json(answers, status=status, headers=headers)
        events = [b"data: " + _dumps(a) + b"\r\n\r\n" for a in answers]
        return await self._stream(request, events, eff, status, headers)


def main(argv: list[str] | None = None) -> int:
    """python -m tests.fakes.gemini_provider [--port 8083]"""
    from tests.fakes.openai_provider import serve_standalone

    return serve_standalone(FakeGemini, "Gemini", 8083, argv)


if __name__ == "__main__":
    raise SystemExit(main())

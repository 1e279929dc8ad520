"""A fake Azure OpenAI resource for tests: OpenAI's format behind deployment URLs.

``FakeAzureOpenAI`` is ``FakeOpenAI`` (same server machinery, generated answers, behaviours,
model-name directives -- here in the deployment name -- and recorded requests) behind Azure's
surface::

    with FakeAzureOpenAI(api_key="azure-key") as fake:
        openai.AzureOpenAI(azure_endpoint=fake.url, api_version="2024-10-21", api_key="azure-key")

``POST /openai/deployments/{deployment}/chat/completions?api-version=YYYY-MM-DD[-preview]``
(and ``.../embeddings``, FakeOpenAI's deterministic vectors)
- ``api-key: <key>`` authenticates (401 otherwise, Azure's message); a missing api-version or
  any other path is Azure's 404 ``Resource not found``; an unknown deployment is a 404
  ``DeploymentNotFound`` (the base name before ``~`` directives counts);
- ``stream_options`` with an api-version older than 2024-08-01 is a 400 (``Unrecognized request
  argument supplied: stream_options``), as the real service answers;
- responses carry ``prompt_filter_results`` and per-choice ``content_filter_results``; a stream
  opens with a chunk that has no choices, only ``prompt_filter_results`` (empty id and model);
- ``AzureBehaviour(content_filter=True)`` makes the answer end with
  ``finish_reason: "content_filter"`` (the output filter tripped);
- errors are Azure-shaped: ``{"error": {"code": "<status or name>", "message": ...}}``.
"""

from __future__ import annotations

import contextvars
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.ollama_provider import behaviour_for, pre_response_faults, record
from tests.fakes.openai_provider import Behaviour, FakeOpenAI, _dumps, split_text

__all__ = ["AzureBehaviour", "FakeAzureOpenAI", "STREAM_OPTIONS_SINCE"]

STREAM_OPTIONS_SINCE = "2024-08-01"
_PATH = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_SAFE = {k: {"filtered": False, "severity": "safe"} for k in ("hate", "self_harm", "sexual", "violence")}
_FILTERED = {**_SAFE, "hate": {"filtered": True, "severity": "high"}}
_PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": _SAFE}]
_content_filter: contextvars.ContextVar[bool] = contextvars.ContextVar("azure_content_filter", default=False)


@dataclass
class AzureBehaviour(Behaviour):
    content_filter: bool = False


class FakeAzureOpenAI(FakeOpenAI):
    """Fake Azure OpenAI resource.  See the module docstring."""

    def __init__(self, api_key: str | None = None, *, deployments: tuple[str, ...] = ("fake", "gpt-4o"), **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.deployments = tuple(deployments)

    @property
    def base_url(self) -> str:
        """The resource endpoint (``azure_endpoint``): ``http://127.0.0.1:PORT``."""
        return self.url

    @staticmethod
    def _azure_error(status: int, message: str | None, headers: dict[str, str] | None = None, code: str | None = None) -> web.Response:
        body = {"error": {"code": code or str(status), "message": message or f"HTTP {status} (injected by FakeAzureOpenAI)"}}
        return web.Response(body=_dumps(body), status=status, headers=headers, content_type="application/json")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method == "GET" and path == "/health":
            return self._json({"status": "ok"})
        _, parsed = await record(self, request, path)
        headers = {"apim-request-id": str(uuid.uuid4()), "x-ms-region": "East US"}
        if path == "/openai/responses" or path.startswith("/openai/responses/"):
            return await self._azure_responses(request, path, parsed, headers)
        match = _PATH.match(path)
        api_version = request.query.get("api-version")
        if request.method != "POST" or not match or not api_version:
            return self._azure_error(404, "Resource not found", headers)
        if not _API_VERSION.match(api_version):
            return self._azure_error(400, "API version not supported", headers, code="BadRequest")
        deployment = match[1]
        try:
            eff, scripted = behaviour_for(self, deployment)
        except ValueError as exc:
            return self._azure_error(400, str(exc), headers)
        headers.update(eff.headers)
        streaming = isinstance(parsed, dict) and parsed.get("stream") is True
        fault = await pre_response_faults(
            self, request, eff, headers, lambda s, m: self._azure_error(s, m, headers),
            lambda: self._garbage(request, streaming, eff, headers),
        )
        if fault is not None:
            return fault
        if self.api_key is not None and request.headers.get("api-key") != self.api_key:
            return self._azure_error(401, "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                                     "provide a valid key for an active subscription and use a correct regional API endpoint "
                                     "for your resource.", headers)
        if deployment.split("~", 1)[0] not in self.deployments:
            return self._azure_error(404, "The API deployment for this resource does not exist. If you created the deployment "
                                     "within the last 5 minutes, please wait a moment and try again.", headers, code="DeploymentNotFound")
        if not isinstance(parsed, dict):
            return self._azure_error(400, "The request body must be a JSON object.", headers, code="BadRequest")
        if "stream_options" in parsed and api_version[:10] < STREAM_OPTIONS_SINCE:
            return self._azure_error(400, "Unrecognized request argument supplied: stream_options", headers, code="BadRequest")
        if match[2] == "embeddings":
            return self._embeddings({**parsed, "model": deployment}, eff, headers)
        token = _content_filter.set(bool(getattr(scripted, "content_filter", False)))
        try:
            return await self._chat(request, {**parsed, "model": deployment}, eff, headers)
        finally:
            _content_filter.reset(token)

    async def _azure_responses(self, request: web.Request, path: str, parsed: Any,
                               headers: dict[str, str]) -> web.StreamResponse:
        """The Responses API at ``/openai/responses?api-version=...`` (model = deployment name),
        ``GET``/``DELETE /openai/responses/{id}``: FakeOpenAI's answers, Azure's auth and errors."""
        if not request.query.get("api-version"):
            return self._azure_error(404, "Resource not found", headers)
        if self.api_key is not None and request.headers.get("api-key") != self.api_key:
            return self._azure_error(401, "Access denied due to invalid subscription key.", headers)
        book = self.responses_book
        if path != "/openai/responses":
            rid = path[len("/openai/responses/"):]
            if rid not in book.stored or request.method not in ("GET", "DELETE"):
                return self._azure_error(404, f"Response with id '{rid}' not found.", headers)
            if request.method == "DELETE":
                del book.stored[rid]
                return FakeOpenAI._json({"id": rid, "object": "response.deleted", "deleted": True}, headers=headers)
            return FakeOpenAI._json(book.stored[rid]["response"], headers=headers)
        if request.method != "POST" or not isinstance(parsed, dict):
            return self._azure_error(404, "Resource not found", headers)
        if str(parsed.get("model")).split("~", 1)[0] not in self.deployments:
            return self._azure_error(404, "The API deployment for this resource does not exist.", headers,
                                     code="DeploymentNotFound")
        eff, _ = behaviour_for(self, str(parsed["model"]))
        status, error, answer = book.answer(parsed, self._next_id, eff.content)
        if error is not None:
            return self._azure_error(status, error["message"], headers)
        response, _, text, call = answer
        if parsed.get("stream") is not True:
            return FakeOpenAI._json(response, headers=headers)
        events = book.events(response, text, call, self.default_chunks, split_text)
        return await FakeOpenAI._stream(self, request, events, eff, 200, headers)

    # FakeOpenAI builds the OpenAI answer; these two add what Azure adds to it.
    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        if isinstance(obj, dict) and obj.get("object") == "chat.completion":
            obj = {**obj, "prompt_filter_results": _PROMPT_FILTER}
            for choice in obj["choices"]:
                choice["content_filter_results"] = _SAFE
                if _content_filter.get():
                    choice["content_filter_results"] = _FILTERED
                    choice["finish_reason"] = "content_filter"
                    choice["message"]["content"] = (choice["message"].get("content") or "").split(" ")[0]
        return FakeOpenAI._json(obj, status=status, headers=headers)

    async def _stream(self, request: web.Request, events: list[bytes], eff: Behaviour, status: int, headers: dict[str, str]) -> web.StreamResponse:
        first = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": _PROMPT_FILTER}
        out = [b"data: " + _dumps(first) + b"\n\n"]
        for event in events:
            data = event[len(b"data: "):].strip()
            if data == b"[DONE]":
                out.append(event)
                continue
            chunk = json.loads(data)
            for choice in chunk["choices"]:
                if choice["delta"].get("role") is None:
                    choice["content_filter_results"] = _SAFE
                if choice["finish_reason"] and _content_filter.get():
                    choice["finish_reason"] = "content_filter"
                    choice["content_filter_results"] = _FILTERED
            out.append(b"data: " + _dumps(chunk) + b"\n\n")
        return await super()._stream(request, out, eff, status, headers)

"""A fake OpenAI-compatible LLM provider for tests.

``FakeOpenAI`` is a real HTTP server (aiohttp) that speaks OpenAI's wire format.
It runs on ``127.0.0.1`` and a free port, in a daemon thread with its own event
loop, so it can be used from sync and async tests alike::

    with FakeOpenAI(api_key="sk-upstream-test") as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="sk-upstream-test")
        client.chat.completions.create(model="fake", messages=[...])
        assert fake.requests[0].json["model"] == "fake"

Endpoints
---------
``POST /v1/chat/completions``  chat.completion / chat.completion.chunk (SSE)
``POST /v1/embeddings``        deterministic small vectors (float or base64)
``GET  /v1/models``            model list (``GET /v1/models/{id}`` too)
``POST /v1/responses``         the Responses API, JSON and SSE (see openai_responses.py);
                               ``GET``/``DELETE /v1/responses/{id}`` for stored ones
``GET  /health``               200 ``{"status": "ok"}`` (never recorded)

Anything else under ``/v1`` answers 404 with an OpenAI error body.

Responses
---------
* The assistant text is ``"echo: <text of the last user message>"`` (text
  parts of a multi-part content are joined with a space).  If the *last*
  message has role ``tool`` the text is ``"echo: <that tool message>"``.
* If the request carries a non-empty ``tools`` list (and ``tool_choice`` is not
  ``"none"`` and the last message is not a tool result) the answer is a
  ``tool_calls`` message calling the first tool (or the one forced through
  ``tool_choice``) with arguments ``{"arg": "value"}``, finish_reason
  ``"tool_calls"``.
* ``model`` in the response echoes the requested model string verbatim
  (including any ``~key=value`` suffixes).
* Usage: ``prompt_tokens`` = number of whitespace separated words in the text
  of all messages (min 1); ``completion_tokens`` = words in the generated text
  (for a tool call: words in the arguments string); min 1.  Embeddings:
  ``prompt_tokens`` = words of all inputs (token-id inputs count one per id).
* Streaming (``"stream": true``): one SSE event per chunk, each written and
  flushed on its own: a role chunk (which also carries the tool-call header
  for tool calls), N content chunks (N = 3 by default; the text is split into
  N contiguous character slices whose concatenation is exactly the text --
  slices may be empty when the text is shorter than N), a final chunk with
  ``finish_reason``, then -- with ``stream_options.include_usage`` -- a usage
  chunk with ``choices: []``, then ``data: [DONE]``.  For the purpose of
  ``disconnect_after_chunks`` / ``stall_after_chunks`` *every* SSE event counts
  (role chunk is #1, ``[DONE]`` is the last one).
* Errors use OpenAI's body shape
  ``{"error": {"message", "type", "param", "code"}}``; ``type`` is
  ``invalid_request_error`` for 4xx, ``rate_limit_exceeded`` for 429 and
  ``server_error`` for 5xx.

Misbehaving on purpose
----------------------
Two ways, both built from :class:`Behaviour`:

1. ``fake.script(Behaviour(status=503), Behaviour(stall_seconds=5), ...)``
   queues behaviours; each POST request (chat completions, embeddings) takes
   the next one, in order.  When the queue is empty ``fake.set_default(b)``'s
   behaviour is used (``None`` -- the default -- means normal responses).
   GET requests (``/v1/models``) never consume scripted behaviours.
2. Model-name directives, for tests that go through a gateway and cannot
   script the fake directly: ``"fake~status=500"``, ``"fake~stall=3"``,
   ``"fake~chunks=20~chunk_delay_ms=50"``, ``"fake~garbage=1"``.  Keys
   (see ``MODEL_DIRECTIVES``):

   ===================  =============================================
   ``status=<int>``      respond with this status (>= 400: OpenAI error body)
   ``stall=<sec>``       sleep before sending anything; together with
                         ``stall_after`` it is the mid-stream stall length
   ``stall_after=<n>``   streaming: stall after n SSE events
   ``chunks=<n>``        number of content chunks when streaming
   ``chunk_delay_ms=<ms>`` delay between SSE events (alias ``delay_ms``)
   ``garbage=1``         200 with a body that is not JSON (or SSE with
                         non-JSON data when streaming)
   ``disconnect=1``      drop the TCP connection without any response
   ``disconnect_after=<n>`` streaming: send n SSE events then drop the TCP
                         connection (non-streaming: send a truncated body)
   ``retry_after=<v>``   add a ``retry-after: v`` response header
   ``content=<text>``    replace the generated assistant text
   ===================  =============================================

   The long field names (``stall_seconds``, ``stall_after_chunks``,
   ``disconnect_after_chunks``) are accepted as aliases.  Unknown keys give a
   400 so typos do not silently pass.  If a scripted behaviour is also in
   effect, its explicitly set fields win over the model directives.

Order of processing of a POST: record -> take behaviour -> (pre-response
stall) -> (disconnect) -> (custom body) -> (error status) -> (garbage) ->
auth check -> validation -> normal response.  I.e. injected faults happen
*before* the API key is checked, like an overloaded load balancer would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import socket
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .openai_responses import ResponsesBook

__all__ = [
    "Behaviour",
    "FakeOpenAI",
    "RecordedRequest",
    "MODEL_DIRECTIVES",
    "parse_model_directives",
    "DEFAULT_MODELS",
]

log = logging.getLogger(__name__)

DEFAULT_MODELS: tuple[str, ...] = ("fake", "fake-gpt-4o", "fake-embedding")

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


# --------------------------------------------------------------------------- #
# Behaviours
# --------------------------------------------------------------------------- #
@dataclass
class Behaviour:
    """How the fake should (mis)behave for one request.

    ``None`` / ``False`` fields mean "normal".  Fields:

    status                   HTTP status. >= 400 -> OpenAI error body (type
                             derived from the status, message ``error_message``);
                             < 400 -> normal body with that status.
    headers                  extra response headers (any response, incl. errors).
    body                     replace the whole response body: dict/list -> JSON,
                             str/bytes -> raw (status defaults to 200).
    stall_seconds            sleep before sending anything, or -- together with
                             ``stall_after_chunks`` -- the mid-stream stall.
    garbage                  200 (or ``status``) with a non-JSON body.
    disconnect               close the TCP connection without responding.
    disconnect_after_chunks  streaming: send this many SSE events then drop the
                             TCP connection.  Non-streaming: truncated body.
    stall_after_chunks       streaming: send this many SSE events, sleep
                             ``stall_seconds``, then continue normally.
    chunks                   number of content chunks when streaming.
    chunk_delay_ms           delay between consecutive SSE events.
    content                  replace the generated assistant text.
    error_message            message for error bodies.
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    stall_seconds: float | None = None
    garbage: bool = False
    disconnect: bool = False
    disconnect_after_chunks: int | None = None
    stall_after_chunks: int | None = None
    chunks: int | None = None
    chunk_delay_ms: float | None = None
    content: str | None = None
    error_message: str | None = None

    def merged_over(self, base: "Behaviour") -> "Behaviour":
        """Return ``base`` with every explicitly set field of ``self`` applied."""
        out = Behaviour(**{f.name: getattr(base, f.name) for f in fields(Behaviour)})
        for f in fields(Behaviour):
            value = getattr(self, f.name)
            if f.name == "headers":
                out.headers = {**base.headers, **value}
            elif value is not None and value is not False:
                setattr(out, f.name, value)
        return out


def _parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on", ""):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


# key in the model name -> (Behaviour field or special target, converter)
MODEL_DIRECTIVES: dict[str, tuple[str, Any]] = {
    "status": ("status", int),
    "stall": ("stall_seconds", float),
    "stall_seconds": ("stall_seconds", float),
    "stall_after": ("stall_after_chunks", int),
    "stall_after_chunks": ("stall_after_chunks", int),
    "chunks": ("chunks", int),
    "chunk_delay_ms": ("chunk_delay_ms", float),
    "delay_ms": ("chunk_delay_ms", float),
    "garbage": ("garbage", _parse_bool),
    "disconnect": ("disconnect", _parse_bool),
    "disconnect_after": ("disconnect_after_chunks", int),
    "disconnect_after_chunks": ("disconnect_after_chunks", int),
    "retry_after": ("header:retry-after", str),
    "content": ("content", str),
}


def parse_model_directives(model: str) -> tuple[str, Behaviour]:
    """Split ``"fake~status=500~stall=1"`` into ``("fake", Behaviour(...))``.

    Raises ``ValueError`` on unknown keys or bad values.
    """
    base, *parts = model.split("~")
    behaviour = Behaviour()
    for part in parts:
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if key not in MODEL_DIRECTIVES:
            raise ValueError(
                f"unknown fake model directive {key!r} in model {model!r}; "
                f"known: {', '.join(sorted(MODEL_DIRECTIVES))}"
            )
        target, conv = MODEL_DIRECTIVES[key]
        if not sep and conv is not _parse_bool:
            raise ValueError(f"fake model directive {key!r} needs a value (key=value)")
        try:
            value = conv(raw)
        except ValueError as exc:
            raise ValueError(f"bad value for fake model directive {key!r}: {exc}") from None
        if target.startswith("header:"):
            behaviour.headers[target.split(":", 1)[1]] = value
        else:
            setattr(behaviour, target, value)
    return base, behaviour


# --------------------------------------------------------------------------- #
# Recorded requests
# --------------------------------------------------------------------------- #
@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case keys
    body: bytes
    json: Any  # parsed JSON body, or None if the body is empty / not JSON
    received_at: float  # time.monotonic()

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", None),
    408: ("timeout", None),
    409: ("conflict_error", None),
    413: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
    504: ("server_error", None),
}

_DEFAULT_MESSAGES = {
    400: "Bad request (injected by FakeOpenAI)",
    401: "Incorrect API key provided.",
    403: "Forbidden (injected by FakeOpenAI)",
    404: "Not found (injected by FakeOpenAI)",
    408: "Request timed out (injected by FakeOpenAI)",
    429: "Rate limit reached (injected by FakeOpenAI). Please try again later.",
    500: "The server had an error while processing your request (injected by FakeOpenAI).",
    502: "Bad gateway (injected by FakeOpenAI).",
    503: "The engine is currently overloaded (injected by FakeOpenAI).",
    504: "Gateway timeout (injected by FakeOpenAI).",
}


def error_body(
    status: int, message: str | None = None, *, type_: str | None = None, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    default_type, default_code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {
        "error": {
            "message": message or _DEFAULT_MESSAGES.get(status, f"HTTP {status} (injected by FakeOpenAI)"),
            "type": type_ or default_type,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _text_of(content: Any) -> str:
    """Text of a message ``content`` (string or list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return " ".join(texts)
    return str(content)


def count_tokens(text: str) -> int:
    """Rough, deterministic token count: whitespace separated words."""
    return len(text.split())


def split_text(text: str, n: int) -> list[str]:
    """Split into exactly ``n`` contiguous slices whose concatenation is ``text``."""
    if n <= 0:
        return []
    length = len(text)
    return [text[i * length // n : (i + 1) * length // n] for i in range(n)]


def fake_embedding(text: str, dims: int) -> list[float]:
    """Deterministic unit vector of ``dims`` floats (float32-representable)."""
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    vals = [(int.from_bytes(raw[i * 4 : i * 4 + 4], "big") / 0xFFFFFFFF) * 2 - 1 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    vals = [v / norm for v in vals]
    # round-trip through float32 so float and base64 encodings agree exactly
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *vals)))


# --------------------------------------------------------------------------- #
# The server
# --------------------------------------------------------------------------- #
class FakeOpenAI:
    """Fake OpenAI-compatible provider.  See the module docstring."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
        default_chunks: int = 3,
        embedding_dims: int = 8,
        embedder: Callable[[list[str]], list[list[float]]] | None = None,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port  # 0 until started; kept across stop()/start()
        self.models = tuple(models)
        self.default_chunks = default_chunks
        self.aborted_streams = 0  # streams whose client (the gateway) went away mid-way
        self.embedding_dims = embedding_dims
        self.embedder = embedder  # real embeddings (e.g. a sentence model) instead of hash vectors

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._script: deque[Behaviour] = deque()
        self._default: Behaviour | None = None
        self._seq = 0
        self.responses_book = ResponsesBook()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # ---- public API ------------------------------------------------------- #
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (what an OpenAI client wants)."""
        return f"{self.url}/v1"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        if not self.port:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot (a copy) of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were recorded; ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"FakeOpenAI got {len(self._requests)} requests, expected >= {n} within {timeout}s")
                self._cond.wait(remaining)
            return list(self._requests)

    def script(self, *behaviours: Behaviour) -> "FakeOpenAI":
        """Queue behaviours for the next POST requests (one each, in order)."""
        with self._lock:
            self._script.extend(behaviours)
        return self

    def set_default(self, behaviour: Behaviour | None) -> "FakeOpenAI":
        """Behaviour for POST requests when the script is empty (None: normal)."""
        with self._lock:
            self._default = behaviour
        return self

    @property
    def pending_script(self) -> int:
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget recorded requests, scripted behaviours and the default behaviour."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._default = None

    def start(self) -> "FakeOpenAI":
        """Start serving (re-uses the previous port after a ``stop()``)."""
        if self.running:
            raise RuntimeError("FakeOpenAI already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._thread_main, args=(loop, sock, ready, failure), name=f"FakeOpenAI:{self.port}", daemon=True
        )
        self._loop, self._thread = loop, thread
        thread.start()
        if not ready.wait(_START_TIMEOUT):
            self._loop = self._thread = None
            raise RuntimeError(f"FakeOpenAI did not start within {_START_TIMEOUT}s")
        if failure:
            thread.join(_STOP_TIMEOUT)
            self._loop = self._thread = None
            raise RuntimeError("FakeOpenAI failed to start") from failure[0]
        return self

    def stop(self) -> None:
        """Stop serving (bounded: in-flight requests are aborted)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if thread.is_alive():
                fut = asyncio.run_coroutine_threadsafe(self._astop(), loop)
                try:
                    fut.result(_STOP_TIMEOUT)
                except Exception:  # timeout or cleanup error: stop the loop anyway
                    log.warning("FakeOpenAI: unclean shutdown", exc_info=True)
                loop.call_soon_threadsafe(loop.stop)
                thread.join(_STOP_TIMEOUT)
        except RuntimeError:  # loop already closed
            pass
        finally:
            self._loop = self._thread = None

    def __enter__(self) -> "FakeOpenAI":
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FakeOpenAI port={self.port} running={self.running} requests={len(self._requests)}>"

    # ---- loop / lifecycle -------------------------------------------------- #
    def _thread_main(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, ready: threading.Event, failure: list
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._astart(sock))
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                sock.close()
                ready.set()
                return
            ready.set()
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.wait(pending, timeout=2))
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Exception:  # pragma: no cover
                pass
            loop.close()

    async def _astart(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def _astop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._runner.cleanup(), 3)
            finally:
                self._runner = None

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early when the server stops.  Returns True if stopping."""
        if seconds <= 0:
            return False
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    # ---- bookkeeping ------------------------------------------------------- #
    def _record(self, rec: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()

    async def _pre_response_faults(
        self, request: web.Request, eff: Behaviour, headers: dict[str, str],
        error: Callable[[int, str | None], web.StreamResponse],
        garbage: Callable[[], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse | None:
        """The faults every fake applies before answering, in one order: stall -> disconnect ->
        custom body -> error status (in the fake's own error shape) -> garbage."""
        if eff.stall_seconds and eff.stall_after_chunks is None:
            if await self._sleep(eff.stall_seconds):
                self._drop(request)
                return web.Response(status=503)
        if eff.disconnect:
            self._drop(request)
            return web.Response(status=503)
        if eff.body is not None:
            if isinstance(eff.body, (dict, list)):
                return self._json(eff.body, status=eff.status or 200, headers=headers)
            raw = eff.body.encode() if isinstance(eff.body, str) else bytes(eff.body)
            return web.Response(body=raw, status=eff.status or 200, headers={"content-type": "text/plain", **headers})
        if eff.status is not None and eff.status >= 400:
            return error(eff.status, eff.error_message)
        if eff.garbage:
            return await garbage()
        return None

    def _next_behaviour(self) -> Behaviour | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            return self._default

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._seq += 1
            seq = self._seq
        return f"{prefix}{seq:06d}{uuid.uuid4().hex[:18]}"

    # ---- HTTP -------------------------------------------------------------- #
    @staticmethod
    def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(body=_dumps(obj), status=status, headers=headers, content_type="application/json")

    def _error(self, status: int, message: str | None = None, headers: dict[str, str] | None = None, **kw: Any) -> web.Response:
        return self._json(error_body(status, message, **kw), status=status, headers=headers)

    @staticmethod
    def _drop(request: web.Request) -> None:
        """Close the TCP connection under the request (FIN; no further bytes)."""
        try:
            request.protocol.force_close()
        except Exception:  # pragma: no cover
            pass
        transport = request.transport
        if transport is not None:
            transport.close()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/health", "/healthz", "/v1/health"):
            return self._json({"status": "ok"})

        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self._record(
            RecordedRequest(
                method=request.method,
                path=path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                json=parsed,
                received_at=time.monotonic(),
            )
        )
        request_id = self._next_id("req_")
        base_headers = {"x-request-id": request_id}

        if request.method != "POST":
            if not self._authorized(request):
                return self._unauthorized(request, base_headers)
            if request.method == "GET" and path == "/v1/models":
                return self._json(
                    {"object": "list", "data": [self._model_obj(m) for m in self.models]}, headers=base_headers
                )
            if request.method == "GET" and path.startswith("/v1/models/"):
                mid = path[len("/v1/models/") :]
                if mid in self.models:
                    return self._json(self._model_obj(mid), headers=base_headers)
                return self._error(
                    404, f"The model '{mid}' does not exist", headers=base_headers, code="model_not_found", param="model"
                )
            if path.startswith("/v1/responses/") and path.endswith("/input_items") and request.method == "GET":
                record = self.responses_book.stored.get(path[len("/v1/responses/"):-len("/input_items")])
                if record is None:
                    return self._error(404, "Response not found.", headers=base_headers)
                items = record["items"][: len(record["items"]) - len(record["response"]["output"])][::-1]
                return self._json({"object": "list", "data": items, "has_more": False}, headers=base_headers)
            if path.startswith("/v1/responses/") and request.method in ("GET", "DELETE"):
                rid = path[len("/v1/responses/"):]
                record = self.responses_book.stored.get(rid)
                if record is None:
                    return self._error(404, f"Response with id '{rid}' not found.", headers=base_headers)
                if request.method == "DELETE":
                    del self.responses_book.stored[rid]
                    return self._json({"id": rid, "object": "response.deleted", "deleted": True}, headers=base_headers)
                return self._json(record["response"], headers=base_headers)
            return self._error(404, f"Invalid URL ({request.method} {path})", headers=base_headers)

        # ---- POST: behaviours ------------------------------------------- #
        scripted = self._next_behaviour()
        model = parsed.get("model") if isinstance(parsed, dict) else None
        directives = Behaviour()
        if isinstance(model, str) and "~" in model:
            try:
                _, directives = parse_model_directives(model)
            except ValueError as exc:
                return self._error(400, str(exc), headers=base_headers, param="model")
        eff = scripted.merged_over(directives) if scripted is not None else directives
        headers = {**base_headers, **eff.headers}
        streaming = isinstance(parsed, dict) and parsed.get("stream") is True

        fault = await self._pre_response_faults(
            request, eff, headers, lambda status, msg: self._error(status, msg, headers=headers),
            lambda: self._garbage(request, streaming, eff, headers))
        if fault is not None:
            return fault

        # ---- auth + routing --------------------------------------------- #
        if not self._authorized(request):
            return self._unauthorized(request, headers)
        if body and parsed is None:
            return self._error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
                headers=headers,
            )
        if not isinstance(parsed, dict):
            return self._error(400, "The request body must be a JSON object.", headers=headers)
        if path == "/v1/chat/completions":
            return await self._chat(request, parsed, eff, headers)
        if path == "/v1/embeddings":
            return self._embeddings(parsed, eff, headers)
        if path == "/v1/responses":
            return await self._responses(request, parsed, eff, headers)
        return self._error(404, f"Invalid URL (POST {path})", headers=headers)

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    def _unauthorized(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth:
            msg = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        else:
            key = auth[7:] if auth.lower().startswith("bearer ") else auth
            shown = f"{key[:3]}***{key[-2:]}" if len(key) > 6 else "***"
            msg = f"Incorrect API key provided: {shown}."
        return self._error(401, msg, headers=headers, code="invalid_api_key")

    def _model_obj(self, mid: str) -> dict[str, Any]:
        return {"id": mid, "object": "model", "created": 1700000000, "owned_by": "fake-openai"}

    async def _garbage(
        self, request: web.Request, streaming: bool, eff: Behaviour, headers: dict[str, str]
    ) -> web.StreamResponse:
        status = eff.status or 200
        if not streaming:
            return web.Response(
                body=b"<html><body>502 Bad Gateway {{{ this is not JSON",
                status=status,
                headers={**headers, "content-type": "application/json"},
            )
        resp = web.StreamResponse(status=status, headers={**headers, "content-type": "text/event-stream"})
        try:
            await resp.prepare(request)
            await resp.write(b"data: {this is not json\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp

    # ---- chat completions --------------------------------------------------- #
    async def _chat(
        self, request: web.Request, body: dict[str, Any], eff: Behaviour, headers: dict[str, str]
    ) -> web.StreamResponse:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", headers=headers, param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._error(
                400, "Invalid 'messages': expected a non-empty array.", headers=headers, param="messages"
            )
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                return self._error(
                    400, f"Invalid 'messages[{i}]': expected an object with a 'role'.", headers=headers, param=f"messages[{i}]"
                )
        tools = body.get("tools")
        if tools is not None and not isinstance(tools, list):
            return self._error(400, "Invalid 'tools': expected an array.", headers=headers, param="tools")

        last = messages[-1]
        if last.get("role") == "tool":
            text = "echo: " + _text_of(last.get("content"))
        else:
            user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
            text = "echo: " + (_text_of(user.get("content")) if user else "")
        if eff.content is not None:
            text = eff.content

        tool_call: dict[str, Any] | None = None
        tool_choice = body.get("tool_choice")
        if tools and tool_choice != "none" and last.get("role") != "tool":
            name = None
            if isinstance(tool_choice, dict):
                name = (tool_choice.get("function") or {}).get("name")
            if name is None:
                first = tools[0] if isinstance(tools[0], dict) else {}
                name = (first.get("function") or {}).get("name") or first.get("name") or "tool"
            tool_call = {
                "id": self._next_id("call_"),
                "type": "function",
                "function": {"name": name, "arguments": json.dumps({"arg": "value"})},
            }

        prompt_tokens = max(1, sum(count_tokens(_text_of(m.get("content"))) for m in messages))
        generated = tool_call["function"]["arguments"] if tool_call else text
        completion_tokens = max(1, count_tokens(generated))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        finish_reason = "tool_calls" if tool_call else "stop"
        cid = self._next_id("chatcmpl-")
        created = int(time.time())
        status = eff.status if eff.status is not None else 200

        if body.get("stream") is not True:
            if tool_call:
                message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [tool_call], "refusal": None}
            else:
                message = {"role": "assistant", "content": text, "refusal": None}
            obj = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
                "usage": usage,
            }
            if eff.disconnect_after_chunks is not None:
                return await self._truncated(request, _dumps(obj), status, headers)
            return self._json(obj, status=status, headers=headers)

        # ---- streaming ---- #
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        n_chunks = eff.chunks if eff.chunks is not None else self.default_chunks

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            c: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                c["usage"] = None
            return b"data: " + _dumps(c) + b"\n\n"

        events: list[bytes] = []
        if tool_call:
            events.append(
                chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": tool_call["id"],
                                "type": "function",
                                "function": {"name": tool_call["function"]["name"], "arguments": ""},
                            }
                        ],
                    }
                )
            )
            for piece in split_text(tool_call["function"]["arguments"], n_chunks):
                events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            for piece in split_text(text, n_chunks):
                events.append(chunk({"content": piece}))
        events.append(chunk({}, finish_reason))
        if include_usage:
            events.append(
                b"data: "
                + _dumps(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "system_fingerprint": "fp_fake",
                        "choices": [],
                        "usage": usage,
                    }
                )
                + b"\n\n"
            )
        events.append(b"data: [DONE]\n\n")
        return await self._stream(request, events, eff, status, headers)

    async def _stream(
        self, request: web.Request, events: list[bytes], eff: Behaviour, status: int, headers: dict[str, str]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=status,
            headers={**headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
        )
        delay = (eff.chunk_delay_ms or 0) / 1000.0
        try:
            await resp.prepare(request)
            for i, ev in enumerate(events):
                if i and delay and await self._sleep(delay):
                    self._drop(request)
                    return resp
                if eff.disconnect_after_chunks is not None and i >= eff.disconnect_after_chunks:
                    self._drop(request)
                    return resp
                if eff.stall_after_chunks is not None and i == eff.stall_after_chunks:
                    if await self._sleep(eff.stall_seconds or 0):
                        self._drop(request)
                        return resp
                await resp.write(ev)
            if eff.disconnect_after_chunks is not None and eff.disconnect_after_chunks >= len(events):
                self._drop(request)
                return resp
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):  # the client went away
            self.aborted_streams += 1
        return resp

    async def _truncated(self, request: web.Request, full: bytes, status: int, headers: dict[str, str]) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers={**headers, "content-type": "application/json"})
        resp.content_length = len(full)
        try:
            await resp.prepare(request)
            await resp.write(full[: len(full) // 2])
        except ConnectionError:
            pass
        self._drop(request)
        return resp

    # ---- responses ---------------------------------------------------------- #
    async def _responses(
        self, request: web.Request, body: dict[str, Any], eff: Behaviour, headers: dict[str, str]
    ) -> web.StreamResponse:
        status, error, answer = self.responses_book.answer(body, self._next_id, eff.content)
        if error is not None:
            return self._error(status, error["message"], headers=headers, param=error["param"])
        response, _, text, call = answer
        if body.get("stream") is not True:
            return self._json(response, status=eff.status or 200, headers=headers)
        n_chunks = eff.chunks if eff.chunks is not None else self.default_chunks
        events = self.responses_book.events(response, text, call, n_chunks, split_text)
        return await self._stream(request, events, eff, eff.status or 200, headers)

    # ---- embeddings --------------------------------------------------------- #
    def _embeddings(self, body: dict[str, Any], eff: Behaviour, headers: dict[str, str]) -> web.Response:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", headers=headers, param="model")
        inp = body.get("input")
        texts: list[str]
        tokens = 0
        if isinstance(inp, str):
            texts = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
            texts = list(inp)
        elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
            texts = [" ".join(map(str, inp))]
            tokens = len(inp)
        elif (
            isinstance(inp, list)
            and inp
            and all(isinstance(x, list) and all(isinstance(y, int) for y in x) for x in inp)
        ):
            texts = [" ".join(map(str, x)) for x in inp]
            tokens = sum(len(x) for x in inp)
        else:
            return self._error(
                400, "'input' must be a non-empty string or array of strings/tokens", headers=headers, param="input"
            )
        dims = body.get("dimensions") or self.embedding_dims
        if not isinstance(dims, int) or dims <= 0 or dims > 4096:
            return self._error(400, "Invalid 'dimensions'", headers=headers, param="dimensions")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            return self._error(400, "Invalid 'encoding_format'", headers=headers, param="encoding_format")
        data = []
        vectors = self.embedder(texts) if self.embedder is not None else [fake_embedding(t, dims) for t in texts]
        for i, vec in enumerate(vectors):
            dims = len(vec)
            emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if fmt == "base64" else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if not tokens:
            tokens = max(1, sum(count_tokens(t) for t in texts))
        obj = {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return self._json(obj, status=eff.status if eff.status is not None else 200, headers=headers)


def serve_standalone(cls: type[FakeOpenAI], what: str, default_port: int, argv: list[str] | None = None) -> int:
    """Run a fake provider in the foreground until SIGTERM/SIGINT (the quick start uses it)."""
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(description=f"fake {what} provider on 127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    args = parser.parse_args(argv)
    fake = cls(api_key=args.api_key, port=args.port).start()
    print(f"fake {what} provider on {fake.base_url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    fake.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """python -m tests.fakes.openai_provider [--port 8081]"""
    return serve_standalone(FakeOpenAI, "OpenAI-compatible", 8081, argv)


if __name__ == "__main__":
    raise SystemExit(main())

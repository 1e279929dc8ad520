"""Plain-ASGI middleware: request ids on every response, and the last line of error rendering.

Plain ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched.
"""

from __future__ import annotations

import logging
import os
import re
import time

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import GatewayError, InternalError, render_error

log = logging.getLogger("aigw.request")

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ID_HEADERS = (b"x-request-id", b"x-aigw-request-id")


def new_request_id() -> str:
    """`req_` and the hex of a random (version 4, RFC 4122) UUID: `uuid.uuid4().hex` without
    building the UUID object (a third of the cost)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return "req_" + b.hex()


def request_id_of(scope: Scope) -> str:
    return scope.get("state", {}).get("request_id", "")


def client_request_id_of(scope: Scope) -> str | None:
    """The client's own `x-request-id`, when it sent a well-formed one (echoed, never a key)."""
    return scope.get("state", {}).get("client_request_id")


def error_format_for(path: str) -> str:
    """Errors are rendered in the wire format of the API the client called."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
        return "gemini"
    return "openai"


async def send_error(send: Send, err: GatewayError, request_id: str, fmt: str = "openai") -> None:
    body = render_error(err, request_id, fmt)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    headers.extend((k.encode(), v.encode()) for k, v in err.headers.items())
    await send({"type": "http.response.start", "status": err.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


access_log = logging.getLogger("aigw.access")


class RequestContextMiddleware:
    """`access_log`: log every answer the chat pipeline does not log itself (404, 405, model
    lists, probes, a body refused before routing), in the pipeline's JSON line shape."""

    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        # The gateway's own id is the request's key everywhere (logs, error bodies, the usage
        # ledger's primary key); a client's id is only echoed, so a reused one drops nothing.
        request_id = new_request_id()
        client_id = incoming if incoming and _VALID_ID.match(incoming) else None
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_id
        if client_id is None:
            id_headers = [(b"x-request-id", request_id.encode())]
        else:
            id_headers = [(b"x-request-id", client_id.encode()), (b"x-aigw-request-id", request_id.encode())]
        started = False
        status = 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] not in _ID_HEADERS]
                headers.extend(id_headers)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:  # the client left before its request was read: nginx's 499, no traceback
            log.info("request %s%s: client closed the connection before the request was read (499)", request_id,
                     f" (client id {client_id})" if client_id else "")
        except GatewayError as err:
            if started:
                log.warning("request %s failed after the response started: %s", request_id, err.message)
                return
            status = err.status_code
            await send_error(send_with_id, err, request_id, error_format_for(scope["path"]))
        except Exception:
            if started:  # already answered (and logged) by the app's own error handler
                log.debug("request %s: error after the response started", request_id, exc_info=True)
                return
            log.exception("request %s failed with an unexpected error", request_id)
            if not started:
                status = 500
                err = InternalError("internal error; see the gateway log for this request id")
                await send_error(send_with_id, err, request_id, error_format_for(scope["path"]))
        finally:
            if self.access_log and not scope["state"].get("access_logged"):
                access_log.info("%s", orjson.dumps({
                    "request_id": request_id, "method": scope["method"], "path": scope["path"], "status": status,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                }).decode())

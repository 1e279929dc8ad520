"""A JSON answer whose body is already bytes: the raw ASGI headers built in one pass.

Starlette's `Response` renders the content, lower-cases and encodes every header and then scans
them for content-length and content-type; a passthrough answer's headers are the gateway's own
(lower-case names, never a content-length or content-type), so this builds the same header list
— the given headers in order, then content-length, then content-type — with none of that.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_JSON = (b"content-type", b"application/json")


class JsonBytes(Response):
    """`Response(body, media_type="application/json", headers=headers)` for a status-200 answer
    whose `headers` have lower-case names other than content-length and content-type."""

    media_type = "application/json"

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", b"%d" % len(body)))
        raw.append(_JSON)
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})

"""A streamed response whose first chunk leaves in the request's own task.

Starlette's StreamingResponse (under uvicorn, ASGI spec 2.3) starts a task group: one task
relays the body, the request's task listens for a disconnect. The relay task only runs in the
event loop's next iteration, so the first chunk, which the executor already holds (a stream is
committed to a target only once a chunk with substance arrived), waited for every other ready
callback of the current iteration: under load, a large part of the time to first token the
gateway added. Here the head and the first chunk are sent at once; the rest is relayed as
before, with the disconnect listener. A client that left during that first write is noticed by
the listener right after it (uvicorn drops writes to a closed connection).
"""

from __future__ import annotations

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class FirstChunkNow(StreamingResponse):
    _head_sent = False
    _ended = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        self._head_sent = True
        chunk = await anext(self.body_iterator, None)  # type: ignore[call-overload]
        if chunk is None:
            self._ended = True
        elif chunk:
            await send({"type": "http.response.body", "body": _bytes(chunk, self.charset), "more_body": True})
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        if not self._head_sent:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if not self._ended:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": _bytes(chunk, self.charset), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _bytes(chunk: str | bytes | memoryview, charset: str) -> bytes | memoryview:
    return chunk.encode(charset) if isinstance(chunk, str) else chunk

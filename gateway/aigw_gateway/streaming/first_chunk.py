"""A streamed response relayed by the request's own task.

Starlette's StreamingResponse (under uvicorn, ASGI spec 2.3) starts a task group: a new task
relays the body while the request's task listens for a disconnect. The relay task only runs in
the event loop's next iteration, so the first chunk, which the executor already holds (a stream
is committed to a target only once a chunk with substance arrived), waited for every other ready
callback of the current iteration: under load, part of the time to first token the gateway
added. Here the roles are swapped: the request's task sends the head and relays the body at
once, and a second task listens (made at the loop's next turn, once the first chunk is out); a
disconnect cancels the relay exactly as before (the relay generator sees the cancellation, the
response ends without an error).
"""

from __future__ import annotations

import asyncio

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class FirstChunkNow(StreamingResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec = scope.get("asgi", {}).get("spec_version", "2.0")
        if scope["type"] != "http" or tuple(map(int, spec.split("."))) >= (2, 4):
            await super().__call__(scope, receive, send)  # no listener needed: send raises on a disconnect
            return
        relay = asyncio.current_task()
        assert relay is not None
        gone = False
        listener: asyncio.Task | None = None

        async def listen() -> None:
            nonlocal gone
            await self.listen_for_disconnect(receive)
            gone = True
            relay.cancel()

        def start_listening() -> None:
            nonlocal listener
            listener = loop.create_task(listen())

        # The listener's task is made at the loop's next turn, when the relay first waits: making
        # it here would put a task's creation between the first token and the client.
        loop = asyncio.get_running_loop()
        starting = loop.call_soon(start_listening)
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not gone:
                raise
            relay.uncancel()  # the client left: the relay stops, the request ends normally
        finally:
            starting.cancel()
            if listener is not None:
                listener.cancel()
        if self.background is not None:
            await self.background()

"""An OpenAI-compatible upstream that answers with more than any gateway should hold.

The upstream model name in the request picks the answer:

``huge``          a 200 JSON body of 400 MiB (sent in 1 MiB pieces, as long as the client reads)
``bomb``          a 200 body of 1 MiB, ``Content-Encoding: gzip``, inflating to 1 GiB of zeros
``endless-line``  streaming: ``data: aaaa…`` for 400 MiB and never a newline
``late-endless``  streaming: one good chunk with content, then the endless line

``sent`` counts the bytes written per model, so a test can see the gateway stopped reading.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import zlib
from functools import cache

import orjson
from aiohttp import web

PIECE = 1 << 20
TOTAL = 400 * PIECE


@cache
def gzip_bomb() -> bytes:
    """1 MiB of gzip that inflates to 1 GiB of zeros (built once per session: ~3 s of CPU)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * PIECE
    return b"".join([c.compress(zeros) for _ in range(1024)] + [c.flush()])


def _chunk(content: str) -> bytes:
    return b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "x",
                                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                                  "finish_reason": None}]}) + b"\n\n"


class HostileUpstream:
    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model")
        self.sent[model] = 0
        if model == "bomb":
            bomb = gzip_bomb()
            self.sent[model] = len(bomb)
            return web.Response(body=bomb, headers={"content-type": "application/json", "content-encoding": "gzip"})
        stream = model in ("endless-line", "late-endless")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream" if stream else "application/json"})
        await resp.prepare(request)
        try:
            if model == "late-endless":
                await resp.write(_chunk("hello "))
            if stream:
                await resp.write(b"data: ")
            filler = b"a" * PIECE if stream else b" " * PIECE
            while self.sent[model] < TOTAL:
                await resp.write(filler)
                self.sent[model] += PIECE
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp

    def start(self) -> "HostileUpstream":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._answer)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.SockSite(self._runner, sock).start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())

        self._thread = threading.Thread(target=main, daemon=True, name="hostile-upstream")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

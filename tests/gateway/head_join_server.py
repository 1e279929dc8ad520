"""A small ASGI app served by uvicorn with aigw's HTTP protocol (uvloop, as `aigw serve` runs it),
for tests/gateway/test_http_head_join.py. Prints its port, then serves until killed.

Each connection's transport counts its writes (the protocol's public path: every byte the
server sends goes through `transport.write`/`writelines`); `GET /writes` answers the count so
far. The garbage collector is off: `GET /cycles` answers how many request cycles are alive, so
one left in a reference cycle shows.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys

import uvicorn
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from aigw_gateway import http_limits


class CountingTransport:
    def __init__(self, transport) -> None:
        self._transport = transport
        self.writes = 0

    def write(self, data) -> None:
        self.writes += 1
        self._transport.write(data)

    def writelines(self, parts) -> None:
        self.writes += 1
        self._transport.writelines(parts)

    def __getattr__(self, name):
        return getattr(self._transport, name)


class CountingProtocol(http_limits.LimitedHttpToolsProtocol):
    """aigw's protocol on a counting transport; hands the app the count (the /writes route)."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(CountingTransport(transport))

    def on_headers_complete(self) -> None:
        transport = self.transport
        self.scope["extensions"] = {"writes": lambda: transport.writes}
        super().on_headers_complete()


release = asyncio.Event()


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/writes":
        body = b"%d" % scope["extensions"]["writes"]()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/cycles":
        body = b"%d" % sum(isinstance(o, RequestResponseCycle) for o in gc.get_objects())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/unary":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})
    elif path == "/big":
        body = b"x" * (200 * 1024)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
    elif path == "/close":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"3"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": b"bye"})
    elif path == "/stream":  # an SSE stream whose first event waits for GET /release
        release.clear()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await release.wait()
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/release":
        release.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/raise":
        raise RuntimeError("the app failed before answering")
    elif path == "/raise-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        raise RuntimeError("the app failed after its head")
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def main() -> None:
    keep_alive = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    gc.disable()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, loop="uvloop", http=CountingProtocol, lifespan="on", log_level="warning",
                            access_log=False, timeout_keep_alive=keep_alive)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()

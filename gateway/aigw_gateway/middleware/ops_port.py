"""Plain-ASGI split by local port: the ops port gets /metrics and /internal/report, nothing else does.

One process serves both sockets (each worker of `--workers N` too), so the app decides by the
port the connection arrived on: the API app never routes the ops endpoints (404 there).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class OpsPortSplit:
    def __init__(self, api: ASGIApp, ops: ASGIApp, ops_port: int) -> None:
        self.api = api
        self.ops = ops
        self.ops_port = ops_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server is not None and server[1] == self.ops_port:
            await self.ops(scope, receive, send)
            return
        await self.api(scope, receive, send)

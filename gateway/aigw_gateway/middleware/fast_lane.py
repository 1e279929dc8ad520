"""Plain-ASGI dispatch of the data-plane endpoints (api/routes.py), in front of FastAPI.

The profile of a chat request showed FastAPI's per-request layers (its exception and body-limit
middlewares, router, dependency solving, exit stacks) at about a quarter of the gateway's own
CPU. The data-plane endpoints take a Request and return a Response and need none of that, so
they are dispatched here by exact path (and the Gemini paths by prefix); a known path called
with another method is a 405 here; everything else — probes, /metrics, the report, model
lists, 404s — goes to FastAPI as usual.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from ..api.routes import Endpoint, PrefixEndpoint
from ..errors import MethodNotAllowed


class FastLane:
    def __init__(self, app: FastAPI, exact: dict[tuple[str, str], Endpoint],
                 prefixes: tuple[tuple[str, str, PrefixEndpoint], ...] = ()) -> None:
        self.app = app
        self.exact = exact
        self.prefixes = prefixes
        self.paths: dict[str, tuple[str, ...]] = {}
        for method, path in exact:
            self.paths[path] = (*self.paths.get(path, ()), method)

    @property
    def state(self):
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            endpoint = self.exact.get((method, path))
            if endpoint is not None:
                scope["app"] = self.app
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
            for p_method, prefix, handler in self.prefixes:
                if method == p_method and path.startswith(prefix) and ":" in path:
                    scope["app"] = self.app
                    response = await handler(Request(scope, receive), path[len(prefix):])
                    await response(scope, receive, send)
                    return
            allowed = self.paths.get(path)
            if allowed is not None:
                raise MethodNotAllowed(f"method {method} is not allowed on {path}; allowed: {', '.join(allowed)}",
                                       headers={"allow": ", ".join(allowed)})
        await self.app(scope, receive, send)

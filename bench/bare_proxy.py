# Origin: ../shared/bench/examples/minimal_proxy_aiohttp.py (copied; only this note and the module
# name in the docstring differ).
# The bench's reference point: the floor a Python (Starlette + aiohttp) pass-through can reach.
"""Same minimal pass-through proxy as minimal_proxy.py, but the upstream client is aiohttp
instead of httpx (httpx/httpcore's pool degrades badly with many concurrent requests).

Run:  UPSTREAM=http://127.0.0.1:19000/v1 uvicorn bare_proxy:app --port 19102 \
          --loop uvloop --http httptools --no-access-log --log-level warning [--workers 2]
"""
import contextlib
import os

import aiohttp
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:19000/v1").rstrip("/")
HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding"}
session = None


@contextlib.asynccontextmanager
async def lifespan(app):
    global session
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=60, connect=5), auto_decompress=False)
    yield
    await session.close()


async def chat(request: Request):
    body = await request.body()
    headers = {k: v for k, v in request.headers.items() if k not in HOP}
    up = await session.post(UPSTREAM + "/chat/completions", data=body, headers=headers)
    out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
    if up.headers.get("content-type", "").startswith("text/event-stream"):
        return StreamingResponse(up.content.iter_any(), status_code=up.status, headers=out_headers,
                                 background=BackgroundTask(up.release))
    data = await up.read()
    up.release()
    return Response(data, status_code=up.status, headers=out_headers)


async def health(request: Request):
    return Response("ok")


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                        Route("/chat/completions", chat, methods=["POST"]),
                        Route("/health", health)],
                lifespan=lifespan)

"""JsonBytes: the same status, headers (in order) and body as Starlette's Response would send."""

from __future__ import annotations

import asyncio

from starlette.responses import Response

from aigw_gateway.passthrough.answer import JsonBytes


def _sent(response) -> list[dict]:
    out: list[dict] = []

    async def send(message: dict) -> None:
        out.append(message)

    asyncio.run(response({"type": "http"}, None, send))
    return out


def test_same_messages_as_starlettes_response():
    body = b'{"id":"chatcmpl-1","choices":[]}'
    headers = {"x-aigw-attempts": "1", "x-aigw-route": "r", "x-ratelimit-reset-requests": "1m0s",
               "x-aigw-cost-usd": "0.000012"}
    assert _sent(JsonBytes(body, headers)) == _sent(Response(body, media_type="application/json", headers=headers))
    assert JsonBytes(body, headers).headers["content-length"] == str(len(body))

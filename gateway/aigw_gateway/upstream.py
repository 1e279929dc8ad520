"""The one upstream HTTP client of a gateway process, and the mapping of its failures.

httpx is the client API; its default connection pool scans every connection per request and
becomes the bottleneck under concurrency, so requests go through the `httpx-aiohttp`
transport (aiohttp's pool), about 6x faster in shared/bench. The client is shared by every
config generation: a swap does not drop pooled connections or requests in flight.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from .errors import GatewayError, UpstreamConnectError, UpstreamError, UpstreamTimeout


def create_client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30.0)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits, trust_env=False),
        timeout=httpx.Timeout(120.0, connect=10.0),
        follow_redirects=False,
        trust_env=False,
    )


def map_transport_error(exc: Exception, target: str) -> GatewayError:
    """Map an httpx failure once; messages name the target, never its URL's credentials or keys.

    httpx-aiohttp maps every aiohttp.ClientConnectionError (a server that drops the connection
    included) to httpx.ConnectTimeout, so the aiohttp cause is looked at first.
    """
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"upstream {target} is unreachable")
    if isinstance(cause, (aiohttp.ServerTimeoutError, aiohttp.SocketTimeoutError)):
        return UpstreamTimeout(f"upstream {target} timed out")
    if isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
        return UpstreamError(f"upstream {target} closed the connection")
    if isinstance(exc, httpx.TimeoutException) or isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"upstream {target} timed out")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamConnectError(f"upstream {target} is unreachable")
    if isinstance(exc, httpx.HTTPError):
        return UpstreamError(f"upstream {target} failed: {type(exc).__name__}")
    return UpstreamError(f"upstream {target} failed")

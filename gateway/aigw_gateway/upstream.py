"""The one upstream HTTP client of a gateway process, and the mapping of its failures.

Measured with shared/bench on this 2-core machine: httpx's own pool scans every connection per
request (about 365 req/s per core in a bare proxy); the `httpx-aiohttp` transport keeps the httpx
API at about 2,100; raw aiohttp about twice that again. In aigw's own profile, httpx's request
building, header and cookie models took about a quarter of a request's CPU. So the hot path
speaks aiohttp directly through this small wrapper; httpx stays the API of the Kubernetes client
(kube_watch.py) and of the tests, where convenience beats microseconds.

The session is shared by every config generation: a swap does not drop pooled connections or
requests in flight. URLs are sent exactly as the adapter built them (`encoded=True`): AWS SigV4
signs the path byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

from .errors import GatewayError, UpstreamConnectError, UpstreamError, UpstreamResponseTooLarge, UpstreamTimeout
from .providers.base import UpstreamRequest


DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


def too_large(limit: int) -> UpstreamResponseTooLarge:
    return UpstreamResponseTooLarge(f"the upstream answer exceeds {limit} bytes (the route's "
                                    "spec.limits.maxResponseBytes); the rest was not read")


class UpstreamResponse:
    """An upstream answer whose body is read within `limit` bytes, counted after decompression
    (aiohttp inflates in bounded pieces, so a gzip bomb is cut off at the limit, not in memory)."""

    __slots__ = ("status", "_headers", "_resp", "limit")

    def __init__(self, resp: aiohttp.ClientResponse, limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._resp = resp
        self.limit = limit
        self.status = resp.status
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The answer's headers, lower-cased (built when first asked: most answers never are)."""
        if self._headers is None:
            self._headers = {k.lower(): v for k, v in self._resp.headers.items()}
        return self._headers

    async def read(self) -> bytes:
        content, limit = self._resp.content, self.limit
        try:
            chunk = await content.readany()
            size = len(chunk)
            if size > limit:
                self._resp.close()  # not back to the pool with an unread body
                raise too_large(limit)
            if content.at_eof():  # the usual small answer: all of it in one piece, no second read
                return chunk
            parts = [chunk]
            while chunk := await content.readany():
                size += len(chunk)
                if size > limit:
                    self._resp.close()
                    raise too_large(limit)
                parts.append(chunk)
        finally:
            self._resp.release()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive (no line buffering), within `limit` bytes in all."""
        return self._bounded()

    async def _bounded(self) -> AsyncIterator[bytes]:
        limit = self.limit
        size = 0
        async for chunk in self._resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                self._resp.close()
                raise too_large(limit)
            yield chunk

    async def aclose(self) -> None:
        self._resp.close()


class _Request(aiohttp.ClientRequest):
    """aiohttp's request without a User-Agent of its own. The session's `skip_auto_headers`
    did the same by building and copying two header multidicts per request."""

    def update_auto_headers(self, skip_auto_headers: object) -> None:
        headers = self.headers
        for name, value in self.DEFAULT_HEADERS.items():
            if name not in headers:
                headers[name] = value


_TIMEOUTS: dict[tuple[float, float], aiohttp.ClientTimeout] = {}
_URLS: dict[str, URL] = {}
_MAX_URLS = 1024  # distinct upstream URLs kept parsed (a few per target); cleared when full


def _timeout(connect: float, read: float) -> aiohttp.ClientTimeout:
    timeout = _TIMEOUTS.get((connect, read))
    if timeout is None:  # immutable: one per distinct pair (routes' timeouts are few)
        if len(_TIMEOUTS) >= 256:
            _TIMEOUTS.clear()
        timeout = _TIMEOUTS[(connect, read)] = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
    return timeout


def _url(url: str) -> URL:
    parsed = _URLS.get(url)
    if parsed is None:  # yarl URLs are immutable
        if len(_URLS) >= _MAX_URLS:
            _URLS.clear()
        parsed = _URLS[url] = URL(url, encoded=True)
    return parsed


class UpstreamClient:
    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self._session = session

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: it must be bound to the running loop
            connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=300)
            # no cookie jar: one session serves every tenant, so a provider's Set-Cookie must not
            # be stored and sent on later requests (of another tenant)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False,
                                                  request_class=_Request,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def send(self, request: UpstreamRequest, *, connect_timeout: float, read_timeout: float,
                   max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> UpstreamResponse:
        """Send and wait for the response head; aiohttp errors propagate (see `map_transport_error`)."""
        resp = await self.session.request(
            request.method, _url(request.url), headers=request.headers, data=request.content,
            timeout=_timeout(connect_timeout, read_timeout), allow_redirects=False,
        )
        return UpstreamResponse(resp, max_bytes)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def map_transport_error(exc: BaseException, target: str) -> GatewayError:
    """Map a transport failure once; messages name the target, never its URL or keys."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"upstream {target} is unreachable")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(f"upstream {target} timed out")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
        return UpstreamError(f"upstream {target} closed the connection")
    return UpstreamError(f"upstream {target} failed: {type(exc).__name__}")

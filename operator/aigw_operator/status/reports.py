"""Read the pod reports: ready endpoints of the gateway Service -> GET /internal/report (ops port).

The pods are found the way the Service finds them, through its EndpointSlices (ready
endpoints only), so a pod that is not ready is not asked. Only slices the Service controller
manages (label endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io) and
endpoints whose targetRef is a Pod are trusted: a hand-written slice would otherwise steer the
report token to any address. A report fetch is bounded as a whole: one deadline over connect,
headers and body (not per read, which a slow drip defeats), and a byte limit on the body. A pod
whose report cannot be read keeps its last report for `grace` seconds (one slow answer does not
flap the status), then drops out. An endpoint that leaves the slices drops out at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from aigw_config.report import REPORT_SCHEMA_VERSION, PodReport

from ..workloads import OPS_PORT, OPS_PORT_NAME, REPORT_PATH
from .observe import PodSample

log = logging.getLogger("aigw.operator.reports")

MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SERVICE_CONTROLLER = "endpointslice-controller.k8s.io"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class ReportTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Endpoint:
    pod: str  # the pod's name (targetRef)
    url: str  # base URL of the pod's ops port, e.g. http://10.0.0.7:9090


def ready_endpoints(slices: Iterable[dict[str, Any]], port_name: str = OPS_PORT_NAME) -> list[Endpoint]:
    """Ready endpoints of a Service's EndpointSlices, one per pod (an unset `ready` counts as ready,
    as the EndpointSlice API says consumers should read it), at their ops port: the slice's port of
    that name, else the pods' fixed ops port (a Service that does not expose it)."""
    found: dict[str, Endpoint] = {}
    for slc in slices:
        if ((slc.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) != SERVICE_CONTROLLER:
            continue
        ports = slc.get("ports") or []
        port = next((p.get("port") for p in ports if p.get("name") == port_name), None) or OPS_PORT
        family = slc.get("addressType", "IPv4")
        for ep in slc.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False or not ep.get("addresses"):
                continue
            ref = ep.get("targetRef") or {}
            if ref.get("kind") != "Pod" or not ref.get("name"):
                continue
            address = ep["addresses"][0]
            host = f"[{address}]" if family == "IPv6" else address
            found.setdefault(ref["name"], Endpoint(ref["name"], f"http://{host}:{port}"))
    return sorted(found.values(), key=lambda e: e.pod)


class ReportCollector:
    def __init__(self, timeout: float = 2.0, grace: float = 15.0, concurrency: int = 32,
                 clock: Callable[[], float] = time.monotonic, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout), trust_env=False, follow_redirects=False)
        self.timeout = timeout  # the deadline of one whole fetch
        self.max_bytes = max_bytes
        self.grace = grace
        self.clock = clock
        self._limit = asyncio.Semaphore(concurrency)
        self._last: dict[tuple[str, str], dict[str, tuple[float, PodSample]]] = {}

    async def close(self) -> None:
        await self.http.aclose()

    async def collect(self, key: tuple[str, str], endpoints: list[Endpoint], token: str | None) -> list[PodSample]:
        """The reports of `endpoints` (key: namespace and gateway, for the last-good cache)."""
        last = self._last.setdefault(key, {})
        for gone in set(last) - {e.pod for e in endpoints}:
            del last[gone]
        if token is None:
            return []  # no credentials rendered yet: nothing can be read
        fetched = await asyncio.gather(*(self._fetch(e, token) for e in endpoints))
        now = self.clock()
        samples: list[PodSample] = []
        for endpoint, report in zip(endpoints, fetched, strict=True):
            if report is not None:
                sample = PodSample(endpoint.pod, report)
                last[endpoint.pod] = (now, sample)
                samples.append(sample)
            elif endpoint.pod in last and now - last[endpoint.pod][0] < self.grace:
                samples.append(last[endpoint.pod][1])
            else:
                last.pop(endpoint.pod, None)
        return samples

    def forget(self, key: tuple[str, str]) -> None:
        self._last.pop(key, None)

    async def _fetch(self, endpoint: Endpoint, token: str) -> PodReport | None:
        async with self._limit:
            try:
                async with asyncio.timeout(self.timeout):
                    status, body = await self._read(endpoint.url + REPORT_PATH, token)
            except TimeoutError:
                log.info("report of %s: no full answer within %.1fs", endpoint.pod, self.timeout)
                return None
            except ReportTooLarge:
                log.warning("report of %s is larger than %d bytes; not read", endpoint.pod, self.max_bytes)
                return None
            except httpx.HTTPError as exc:
                log.debug("report of %s unreadable: %s", endpoint.pod, exc)
                return None
        if status != 200:
            log.info("report of %s: HTTP %d", endpoint.pod, status)
            return None
        try:
            report = PodReport.model_validate(orjson.loads(body))
        except (ValueError, ValidationError) as exc:
            log.warning("report of %s is malformed: %s", endpoint.pod, str(exc)[:300])
            return None
        if report.schema_version != REPORT_SCHEMA_VERSION:
            log.warning("report of %s has schemaVersion %s (this operator reads %d); ignored",
                        endpoint.pod, report.schema_version, REPORT_SCHEMA_VERSION)
            return None
        return report

    async def _read(self, url: str, token: str) -> tuple[int, bytes]:
        async with self.http.stream("GET", url, headers={"authorization": f"Bearer {token}"}) as resp:
            if resp.status_code != 200:
                return resp.status_code, b""
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise ReportTooLarge
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():  # decoded: a gzip bomb counts at its real size
                size += len(chunk)
                if size > self.max_bytes:
                    raise ReportTooLarge
                chunks.append(chunk)
            return 200, b"".join(chunks)

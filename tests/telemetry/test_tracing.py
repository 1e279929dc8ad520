"""Spans captured in memory: one server span per request, one client span per upstream attempt."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aigw_gateway.app import create_app
from aigw_gateway.settings import Settings
from tests.fakes.openai_provider import Behaviour
from tests.gateway.harness import TENANT_KEY, free_port, write_crs

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider():
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(tp)  # once per process: the gateway's tracer is a proxy to it
    yield


@pytest.fixture
def inproc_gateway(tmp_path, fake_openai):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(files=(str(crs),), port=port)), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    EXPORTER.clear()
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def ancestors(span) -> set[int]:
    """Span ids above `span` (FastAPI adds its own internal endpoint span in between)."""
    by_id = {s.context.span_id: s for s in EXPORTER.get_finished_spans()}
    out, parent = set(), span.parent
    while parent is not None:
        out.add(parent.span_id)
        parent = by_id[parent.span_id].parent if parent.span_id in by_id else None
    return out


def spans_for(request_id: str):
    spans = EXPORTER.get_finished_spans()
    server = [s for s in spans if s.kind == SpanKind.SERVER and s.attributes.get("aigw.request_id") == request_id]
    assert len(server) == 1, [s.name for s in spans]
    trace_id = server[0].context.trace_id
    clients = [s for s in spans if s.kind == SpanKind.CLIENT and s.context.trace_id == trace_id]
    return server[0], clients


def wait_server_span(request_id: str, timeout: float = 5.0) -> None:
    """The server span ends after the last response byte was sent: poll for it (bounded)."""
    deadline = time.monotonic() + timeout
    while not [s for s in EXPORTER.get_finished_spans()
               if s.kind == SpanKind.SERVER and s.attributes.get("aigw.request_id") == request_id]:
        assert time.monotonic() < deadline, f"no finished server span for {request_id} after {timeout}s"
        time.sleep(0.01)


def test_one_server_span_and_one_client_span_per_attempt(inproc_gateway, fake_openai):
    headers = {"authorization": f"Bearer {TENANT_KEY}"}
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "secret words"}]}
    httpx.post(inproc_gateway + "/v1/chat/completions", headers={**headers, "x-request-id": "one"}, json=body)
    fake_openai.script(Behaviour(status=503))
    httpx.post(inproc_gateway + "/v1/chat/completions", headers={**headers, "x-request-id": "two"}, json=body)
    wait_server_span("one")
    wait_server_span("two")
    server, clients = spans_for("one")
    assert len(clients) == 1 and server.context.span_id in ancestors(clients[0])
    attrs = clients[0].attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "fake"
    assert attrs["gen_ai.provider.name"] == "openai-compatible"
    assert server.attributes["http.response.status_code"] == 200
    _, retried = spans_for("two")
    assert len(retried) == 2 and retried[0].attributes.get("error.type") == "upstream_error"
    for span in EXPORTER.get_finished_spans():  # no prompt or completion content anywhere
        assert "secret words" not in str(dict(span.attributes or {}))


def test_incoming_traceparent_is_continued(inproc_gateway):
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    httpx.get(inproc_gateway + "/healthz", headers={"traceparent": parent, "x-request-id": "tp"})
    wait_server_span("tp")
    (server,) = [s for s in EXPORTER.get_finished_spans() if s.attributes.get("aigw.request_id") == "tp"]
    assert format(server.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"

"""Plain-ASGI middleware: one OpenTelemetry server span per HTTP request (W3C traceparent honoured)."""

from __future__ import annotations

from opentelemetry import context, propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..telemetry.tracing import tracer


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in (b"traceparent", b"tracestate")}
        token = context.attach(propagate.extract(carrier)) if carrier else None
        try:
            with tracer.start_as_current_span(
                f"{scope['method']} {scope['path']}", kind=SpanKind.SERVER,
                attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
            ) as span:

                async def send_with_status(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        span.set_attribute("http.response.status_code", status)
                        for name, value in message.get("headers", ()):
                            if name == b"x-request-id":
                                span.set_attribute("aigw.request_id", value.decode("latin-1"))
                        if status >= 500:
                            span.set_status(Status(StatusCode.ERROR))
                    await send(message)

                await self.app(scope, receive, send_with_status)
        finally:
            if token is not None:
                context.detach(token)

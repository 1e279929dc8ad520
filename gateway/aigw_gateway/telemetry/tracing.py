"""OpenTelemetry traces: a server span per request, a client span per upstream attempt.

Export is configured by the standard variables (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SERVICE_NAME, OTEL_SDK_DISABLED); without them the API's
no-op tracer keeps spans free. Spans carry no prompt or completion content.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace

log = logging.getLogger("aigw.tracing")
tracer = trace.get_tracer("aigw.gateway")


def configure_from_env() -> bool:
    """Install an SDK tracer provider when the OTEL_* variables ask for export; True if installed."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "")
    wants_otlp = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if exporter_name in ("", "none") and not wants_otlp or exporter_name == "none":
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "aigw-gateway")}))
    if exporter_name == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans (%s)", exporter_name or "otlp")
    return True


def enabled() -> bool:
    """Whether spans go anywhere: without an SDK provider the gateway skips span work entirely."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None

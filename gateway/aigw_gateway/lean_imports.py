"""Optional imports of third-party libraries that the gateway never uses, turned off.

redis-py (≥ 7) imports OpenTelemetry's metrics SDK when it is installed, for its own optional
client metrics, which are off unless an application sets them up; the gateway never does (its
metrics are Prometheus'; OpenTelemetry carries its traces only). With the SDK installed for
tracing, that import alone costs every worker about 2.3 MB of RSS (the SDK's metrics modules and
psutil) and 45 ms of start-up. A `None` entry in `sys.modules` makes an import raise ImportError,
which is what redis-py expects when the SDK is absent; tracing (opentelemetry.sdk.trace and the
OTLP exporter) does not import the metrics SDK, so it is unaffected.
"""

from __future__ import annotations

import sys

UNUSED = ("opentelemetry.sdk.metrics",)


def skip_unused() -> None:
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # an import of it raises ImportError

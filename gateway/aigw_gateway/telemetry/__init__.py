"""Observability: per-request outcomes feed the pod report, Prometheus metrics and traces."""

"""Operator settings: one typed object, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    debounce_seconds: float = 0.2
    watch_server_timeout: int = 300

    @classmethod
    def from_env(cls) -> "OperatorConfig":
        return cls(
            debounce_seconds=float(os.environ.get("AIGW_OPERATOR_DEBOUNCE_SECONDS", "0.2")),
            watch_server_timeout=int(os.environ.get("AIGW_OPERATOR_WATCH_TIMEOUT", "300")),
        )

"""The usage ledger: every request that reached an upstream, one row in PostgreSQL.

    gateway:  Call.settle -> UsageEvent -> settle script XADD (or LedgerEmitter's queue)
    writer:   StreamWriter: consumer group -> LedgerDB.insert (idempotent) -> XACK + XDEL
    reads:    history (GET /v1/usage/history) and check (`aigw ledger check`)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import LedgerDB
    from .emitter import LedgerEmitter
    from .event import COLUMNS, UsageEvent, api_of, stream_key
    from .writer import StreamWriter

__all__ = ["COLUMNS", "LedgerDB", "LedgerEmitter", "StreamWriter", "UsageEvent", "api_of", "stream_key"]

# Loaded on first use: a gateway without a ledger URL never imports psycopg (about 9 MB per worker).
_HOMES = {"COLUMNS": "event", "LedgerDB": "db", "LedgerEmitter": "emitter", "StreamWriter": "writer",
          "UsageEvent": "event", "api_of": "event", "stream_key": "event"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value

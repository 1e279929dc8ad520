"""The usage ledger: every request that reached an upstream, one row in PostgreSQL.

    gateway:  Call.settle -> UsageEvent -> settle script XADD (or LedgerEmitter's queue)
    writer:   StreamWriter: consumer group -> LedgerDB.insert (idempotent) -> XACK + XDEL
    reads:    history (GET /v1/usage/history) and check (`aigw ledger check`)
"""

from .db import LedgerDB
from .emitter import LedgerEmitter
from .event import COLUMNS, UsageEvent, api_of, stream_key
from .writer import StreamWriter

__all__ = ["COLUMNS", "LedgerDB", "LedgerEmitter", "StreamWriter", "UsageEvent", "api_of", "stream_key"]

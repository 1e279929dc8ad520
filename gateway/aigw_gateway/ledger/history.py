"""Reads of the ledger: a tenant's usage history (GET /v1/usage/history), grouped."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import LedgerDB

GROUPS = {"day": "date_trunc('day', ts AT TIME ZONE 'UTC')", "route": "route", "model": "model"}
MAX_SPAN = timedelta(days=800)


def parse_time(value: str | None, default: datetime) -> datetime:
    """An ISO 8601 time or date ("2026-12-01", "2026-12-01T10:00:00Z"); naive means UTC."""
    if value is None or value == "":
        return default
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


async def usage_history(db: LedgerDB, namespace: str, gateway: str, tenant: str, start: datetime, end: datetime,
                        group_by: str) -> list[dict[str, Any]]:
    key = GROUPS[group_by]  # validated by the caller: never user text in SQL
    rows = await db.run(
        f"SELECT {key} AS k, count(*), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
        "sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_usd) FROM aigw_usage "
        "WHERE namespace = %s AND gateway = %s AND tenant = %s AND ts >= %s AND ts < %s "
        f"GROUP BY k ORDER BY k",
        (namespace, gateway, tenant, start, end),
    )
    out = []
    for k, requests, inp, outp, read, write, reasoning, cost in rows:
        label = k.strftime("%Y-%m-%d") if isinstance(k, datetime) else k
        out.append({
            group_by: label, "requests": requests, "input_tokens": int(inp), "output_tokens": int(outp),
            "cache_read_tokens": int(read), "cache_write_tokens": int(write), "reasoning_tokens": int(reasoning),
            "cost_usd": _usd(cost),
        })  # fmt: skip
    return out


def _usd(value: Decimal) -> str:
    """Exact to the nano-dollar, as a string (a JSON float would round it)."""
    return f"{Decimal(value).quantize(Decimal('0.000000001'))}"

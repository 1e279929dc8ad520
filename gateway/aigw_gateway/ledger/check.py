"""`aigw ledger check`: a tenant's period spend in Redis (what budgets enforce) against the
ledger's sum of `cost_usd` for the same period; prints both and the difference."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal

from aigw_config.config import GatewayIdentity, TenantConfig
from aigw_config.kinds import Budget

from ..limits import Limiter, RedisStore
from ..limits.windows import calendar_period
from .db import LedgerDB

_LABELS = (
    (re.compile(r"^(\d{4})-(\d{2})$"), "monthly", lambda m: date(int(m[1]), int(m[2]), 1)),
    (re.compile(r"^(\d{4})-W(\d{2})$"), "weekly", lambda m: date.fromisocalendar(int(m[1]), int(m[2]), 1)),
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"), "daily", lambda m: date(int(m[1]), int(m[2]), int(m[3]))),
)


def parse_period(label: str) -> tuple[str, float]:
    """A budget period label ("2026-12", "2026-W49", "2026-12-06") -> (kind, a time inside it)."""
    for pattern, kind, first_day in _LABELS:
        match = pattern.match(label)
        if match:
            day = first_day(match)
            return kind, datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).timestamp()
    raise ValueError(f"period {label!r} is not YYYY-MM, YYYY-Www or YYYY-MM-DD")


async def check(redis_url: str, postgres_url: str, tenant: str, label: str, namespace: str,
                gateway: str) -> tuple[Decimal, Decimal]:
    kind, inside = parse_period(label)
    period = calendar_period(kind, inside)
    store = RedisStore.from_url(redis_url, op_timeout=5.0)
    try:
        identity = GatewayIdentity(name=gateway, namespace=namespace)  # the keys carry the gateway's identity
        limiter = Limiter(store, fail_mode="closed", clock=lambda: inside, key_scope=lambda: identity.key_scope)
        report = await limiter.usage(TenantConfig(name=tenant, budget=Budget(amount=0, period=kind)))
    finally:
        await store.aclose()
    redis_spend = Decimal(repr(report["budget"]["spend_usd"])).quantize(Decimal("0.000000001"))
    db = LedgerDB(postgres_url)
    try:
        ledger = await db.tenant_cost(namespace, gateway, tenant, datetime.fromtimestamp(period.start, timezone.utc),
                                      datetime.fromtimestamp(period.end, timezone.utc))
    finally:
        await db.close()
    return redis_spend, ledger.quantize(Decimal("0.000000001"))

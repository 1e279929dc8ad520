"""The remaining-budget gauges of /metrics, read from the limits store at most once per interval.

Each budgeted tenant costs a Redis read; a scrape (or several Prometheus replicas scraping) within
the interval reuses the last values instead of reading Redis again.
"""

from __future__ import annotations

import asyncio
import time


class BudgetGauges:
    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.refreshed_at: float | None = None
        self.reads = 0  # limits-store reads made for the gauges (tests and the curious)
        self._lock = asyncio.Lock()

    def due(self, interval: float) -> bool:
        return self.refreshed_at is None or self.clock() - self.refreshed_at >= interval

    async def refresh(self, interval: float, tenants, limiter, gauge) -> None:
        """Set `gauge` per budgeted tenant when the last refresh is older than `interval`."""
        if not self.due(interval):
            return
        async with self._lock:
            if not self.due(interval):  # another scrape refreshed while this one waited
                return
            self.refreshed_at = self.clock()
            for tenant in tenants:
                if tenant.budget is None:
                    continue
                self.reads += 1
                try:
                    remaining = (await limiter.usage(tenant))["budget"]["remaining_usd"]
                except Exception:  # Redis away: leave the last value
                    continue
                gauge.labels(tenant.name).set(remaining)

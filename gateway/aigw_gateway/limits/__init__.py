"""Tenant limits (requests and tokens per minute), budgets and cost, in Redis or in memory.

The public surface: `Limiter` (admit, settle, release, usage, headers), the two stores
(`RedisStore`, `MemoryStore`), token estimation and cost.
"""

from .cost import cost_nano, cost_usd, format_usd, usage_cost_nano, usage_counts
from .estimate import estimate_chat_tokens, estimate_embedding_tokens, estimate_prompt_tokens
from .limiter import Admission, Limiter
from .redis_store import RedisStore, limits_client
from .store import MemoryStore, Store, StoreUnavailable
from .windows import calendar_period, go_duration

__all__ = [
    "Admission",
    "Limiter",
    "MemoryStore",
    "RedisStore",
    "Store",
    "StoreUnavailable",
    "calendar_period",
    "cost_nano",
    "cost_usd",
    "estimate_chat_tokens",
    "estimate_embedding_tokens",
    "estimate_prompt_tokens",
    "format_usd",
    "go_duration",
    "limits_client",
    "usage_cost_nano",
    "usage_counts",
]

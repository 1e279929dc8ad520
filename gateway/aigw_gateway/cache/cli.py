"""`aigw cache purge --route R [--tenant T]`: empty a route's entries (all tenants', or one's)."""

from __future__ import annotations

import argparse
import asyncio
import os


def add_parser(sub) -> None:
    cache = sub.add_parser("cache", help="manage the response cache")
    verbs = cache.add_subparsers(dest="cache_command", required=True)
    purge = verbs.add_parser("purge", help="delete a route's cache entries")
    purge.add_argument("--route", required=True, help="ModelRoute name")
    purge.add_argument("--tenant", help="only this tenant's entries (scope tenant)")
    purge.add_argument("--redis-url", default=os.environ.get("AIGW_REDIS_URL"), help="the gateway's Redis (AIGW_REDIS_URL)")
    purge.add_argument("--namespace", default="default", help="the gateway's namespace (local mode: default)")
    purge.add_argument("--gateway", default="local", help="the AIGateway's name (local mode: local)")


async def _purge(args: argparse.Namespace) -> int:
    import redis.asyncio as aioredis

    from .service import ResponseCache
    from .store import RedisStore

    client = aioredis.Redis.from_url(args.redis_url, socket_connect_timeout=2, socket_timeout=10)
    try:
        deleted = await ResponseCache(RedisStore(client, timeout=10)).purge(args.namespace, args.gateway, args.route,
                                                                            args.tenant)
    finally:
        await client.aclose()
    print(f"purged {deleted} cache entries of route {args.route}" + (f", tenant {args.tenant}" if args.tenant else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    if not args.redis_url:
        print("aigw cache purge: give --redis-url (without Redis, each gateway process keeps its own memory cache, "
              "emptied by a restart)")
        return 2
    return asyncio.run(_purge(args))

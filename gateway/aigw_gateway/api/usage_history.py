"""GET /v1/usage/history: the calling key's tenant's usage from the ledger, aggregated."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..auth import authenticate
from ..errors import InvalidRequest, LedgerUnavailable
from ..ledger.history import GROUPS, MAX_SPAN, parse_time, usage_history
from .common import state_of

router = APIRouter()


@router.get("/v1/usage/history")
async def history(request: Request) -> Response:
    state = state_of(request)
    runtime = state.runtime()
    tenant = authenticate(runtime, request.headers)
    params = request.query_params
    group_by = params.get("group_by", "day")
    if group_by not in GROUPS:
        raise InvalidRequest("'group_by' must be one of day, route, model", param="group_by")
    now = datetime.now(timezone.utc)
    try:
        end = parse_time(params.get("to"), now)
    except ValueError:
        raise InvalidRequest("'to' must be an ISO 8601 time or date", param="to") from None
    try:
        start = parse_time(params.get("from"), end - timedelta(days=30))
    except ValueError:
        raise InvalidRequest("'from' must be an ISO 8601 time or date", param="from") from None
    if start >= end or end - start > MAX_SPAN:
        raise InvalidRequest("'from' must be before 'to', at most 800 days apart", param="from")
    db = state.ledger_reads
    if db is None:
        raise LedgerUnavailable("this gateway has no usage ledger (start it with --ledger-url)")
    identity = runtime.config.gateway
    from ..ledger.db import DB_ERRORS  # loaded with the ledger: psycopg only when a ledger URL is set

    try:
        data = await usage_history(db, identity.namespace, identity.name, tenant.name, start, end, group_by)
    except DB_ERRORS:
        raise LedgerUnavailable("the usage ledger cannot be read right now", headers={"retry-after": "5"}) from None
    body = {"object": "list", "tenant": tenant.name, "group_by": group_by, "from": start.isoformat(),
            "to": end.isoformat(), "data": data}
    return Response(orjson.dumps(body), media_type="application/json")

"""Authentication happens once per request: the body reader's answer is reused by the flow for the
same runtime; another runtime (a config swap mid-request) authenticates again; failures raise each time."""

from __future__ import annotations

import hashlib

import pytest
from starlette.requests import Request

from aigw_config.config import TenantConfig
from aigw_gateway.auth import authenticate_request
from aigw_gateway.errors import AuthenticationFailed
from aigw_gateway.runtime import Runtime

TEAM = TenantConfig(name="team")
KEY = "sk-tenant-auth"


def runtime(keys: dict[str, TenantConfig]) -> Runtime:
    hashes = {"sha256:" + hashlib.sha256(k.encode()).hexdigest(): t for k, t in keys.items()}
    return Runtime(config=None, routes_by_model={}, tenants_by_key_hash=hashes, allowed_models={},
                   key_hashes_of={t.name: tuple(h for h, o in hashes.items() if o is t) for t in keys.values()},
                   providers={}, provider_keys={}, redis_url=None, report_token=None, loaded_at=0.0)


def request(key: str | None) -> Request:
    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers})


def test_the_second_call_reuses_the_first_answer_for_the_same_runtime():
    rt, req = runtime({KEY: TEAM}), request(KEY)
    assert authenticate_request(rt, req) is TEAM
    rt.tenants_by_key_hash.clear()  # a second lookup would now fail: it is not made
    assert authenticate_request(rt, Request(req.scope)) is TEAM  # another Request over the same scope
    with pytest.raises(AuthenticationFailed):  # a new runtime (config swap) authenticates again
        authenticate_request(runtime({}), req)


def test_failures_are_not_remembered():
    req = request("sk-wrong")
    for _ in range(2):
        with pytest.raises(AuthenticationFailed, match="invalid API key"):
            authenticate_request(runtime({KEY: TEAM}), req)
    with pytest.raises(AuthenticationFailed, match="missing API key"):
        authenticate_request(runtime({KEY: TEAM}), request(None))

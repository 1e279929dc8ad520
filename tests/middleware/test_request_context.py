"""The gateway's request id: a random version-4 UUID's hex, as `uuid.uuid4().hex` gives."""

from __future__ import annotations

import uuid

from aigw_gateway.middleware.request_context import new_request_id


def test_request_ids_are_uuid4_hex_and_distinct():
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for rid in ids:
        assert rid.startswith("req_") and len(rid) == 36
        u = uuid.UUID(rid[4:])
        assert u.version == 4 and u.variant == uuid.RFC_4122 and u.hex == rid[4:]

"""The PII `hash` action is keyed per gateway: the same value gives the same 64-bit tag within a
gateway (and across its restarts), a different one in another gateway. Real gateway processes,
the upstream sees the tags."""

from __future__ import annotations

import re

import httpx

from aigw_gateway.local_state import PII_KEY_FILE
from tests.gateway.harness import TENANT_KEY, write_crs

AUTH = {"authorization": f"Bearer {TENANT_KEY}"}
SSN = "123-45-6789"
TAG = re.compile(r"<SSN_HASH_([0-9a-f]+)>")
POLICY = """---
apiVersion: aigw.dev/v1alpha1
kind: GuardrailPolicy
metadata: {name: hash-pii}
spec:
  pii: {action: hash, entities: [ssn]}
"""


def _tag_seen_upstream(gw, fake) -> str:
    before = len(fake.requests)
    r = httpx.post(gw.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": f"my ssn is {SSN} ok"}]})
    assert r.status_code == 200, r.text
    sent = fake.wait_for_requests(before + 1)[-1].json["messages"][0]["content"]
    assert SSN not in sent
    match = TAG.search(sent)
    assert match, sent
    return match.group(1)


def test_hash_tags_are_keyed_per_gateway(tmp_path, fake_openai, start_gateway):
    crs = write_crs(tmp_path / "crs.yaml", fake_openai.base_url, extra=POLICY)
    crs.write_text(crs.read_text().replace("  model: gpt-test\n", "  model: gpt-test\n  guardrailPolicyRef: hash-pii\n", 1))
    state = tmp_path / "state"
    east = start_gateway("-f", str(crs), "--namespace", "east", "--state-dir", str(state))
    west = start_gateway("-f", str(crs), "--namespace", "west", "--state-dir", str(state))
    first, again = _tag_seen_upstream(east, fake_openai), _tag_seen_upstream(east, fake_openai)
    other = _tag_seen_upstream(west, fake_openai)
    assert len(first) == 16  # a 64-bit tag
    assert first == again and other != first
    key_file = state / "east" / "local" / PII_KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_text()) >= 43  # 256 random bits
    east.stop()
    restarted = start_gateway("-f", str(crs), "--namespace", "east", "--state-dir", str(state))
    assert _tag_seen_upstream(restarted, fake_openai) == first  # the key is kept across restarts

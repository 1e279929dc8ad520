"""A provider's Set-Cookie never reaches another request: the gateway's upstream client keeps no
cookie jar (one shared connection pool serves every tenant, so a stored cookie would be sent on
the next tenant's request). The fake is addressed as `localhost`: common clients' default jars
ignore cookies from bare IP hosts, which would hide the leak."""

from __future__ import annotations

import httpx

from tests.fakes.openai_provider import Behaviour
from tests.gateway.harness import TENANT_KEY, write_crs

KEY_B = "sk-tenant-b-cookie"
BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}


def test_a_providers_cookie_is_not_sent_on_another_tenants_request(tmp_path, fake_openai, start_gateway):
    base_url = fake_openai.base_url.replace("127.0.0.1", "localhost")
    crs = write_crs(tmp_path / "crs.yaml", base_url, extra=f"""---
apiVersion: aigw.dev/v1alpha1
kind: TenantQuota
metadata: {{name: team-b}}
spec:
  apiKeySecretRefs: [{{name: team-b-key}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: team-b-key}}
stringData: {{apiKey: {KEY_B}}}
""")
    gw = start_gateway("-f", str(crs))
    chat = gw.url + "/v1/chat/completions"
    fake_openai.script(Behaviour(headers={"set-cookie": "session=tenant-a-secret; Path=/"}))
    r = httpx.post(chat, headers={"authorization": f"Bearer {TENANT_KEY}"}, json=BODY, timeout=10)
    assert r.status_code == 200, r.text
    assert "tenant-a-secret" not in r.headers.get("set-cookie", "")  # not relayed to the client either
    r = httpx.post(chat, headers={"authorization": f"Bearer {KEY_B}"}, json=BODY, timeout=10)
    assert r.status_code == 200, r.text
    _, second = fake_openai.wait_for_requests(2)
    assert "cookie" not in second.headers, second.headers.get("cookie")
    assert "aiohttp" not in second.headers.get("user-agent", ""), second.headers  # no client UA of its own

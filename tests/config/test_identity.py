"""The rendered config names its gateway (namespace and name): the gateway's Redis keys carry it."""

from __future__ import annotations

from aigw_config.render import render
from aigw_config.resources import parse_documents

DOCS = """apiVersion: aigw.dev/v1alpha1
kind: AIGateway
metadata: {name: edge}
spec: {}
"""


def test_rendered_config_carries_namespace_and_gateway_name():
    resources = parse_documents(DOCS, "test.yaml", "team-ns")
    gateway = next(r for r in resources if r.kind == "AIGateway")
    config = render(resources, gateway=gateway, namespace="team-ns").config
    assert (config.gateway.namespace, config.gateway.name, config.gateway.key_scope) == ("team-ns", "edge", "team-ns/edge")
    local = render([], namespace="dev").config  # `aigw serve -f` without an AIGateway document
    assert local.gateway.key_scope == "dev/local"


def test_aigw_render_keeps_the_pii_hash_key_of_the_folder(tmp_path):
    from aigw_config.config import load_config, load_credentials
    from aigw_gateway.cli import main

    src = tmp_path / "gw.yaml"
    src.write_text(DOCS)
    out = tmp_path / "out"
    assert main(["render", "-f", str(src), "-o", str(out)]) == 0
    first = load_credentials((out / "credentials.json").read_bytes())
    assert first.pii_hash_key and len(first.pii_hash_key) >= 43
    assert main(["render", "-f", str(src), "-o", str(out)]) == 0
    again = load_credentials((out / "credentials.json").read_bytes())
    assert again.pii_hash_key == first.pii_hash_key
    assert load_config((out / "config.json").read_bytes()).credentials_hash == again.content_hash()

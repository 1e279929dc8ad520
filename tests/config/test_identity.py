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

"""Every pod the chart renders meets Pod Security "restricted", as a non-root numeric user with a
read-only root filesystem."""

from __future__ import annotations

import re

import pytest

from .conftest import VALUE_SETS
from .support import ROOT, pod_specs, restricted_violations


@pytest.mark.parametrize("values_set", list(VALUE_SETS))
def test_every_pod_is_restricted(render, values_set):
    pods = pod_specs(render(values_set).objects)
    assert pods
    for ident, pod in pods:
        assert restricted_violations(pod) == [], f"{values_set}: {ident}"


def test_the_checker_catches_an_unsafe_pod():
    pod = {"securityContext": {"runAsUser": 0}, "hostNetwork": True,
           "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
           "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}},
                           "ports": [{"containerPort": 80, "hostPort": 80}]}]}
    problems = " ".join(restricted_violations(pod))
    for expected in ("hostNetwork", "hostPath", "allowPrivilegeEscalation", "readOnlyRootFilesystem", "drop ALL",
                     "SYS_ADMIN", "runAsNonRoot", "runAsUser", "seccompProfile", "hostPort"):
        assert expected in problems


def test_pods_run_as_the_users_their_images_define(render):
    everything = render("everything")
    pods = dict(pod_specs(everything.objects))
    operator = pods["Deployment/ai-gateway-operator"]
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile.operator").read_text(), re.M)
    assert user, "Dockerfile.operator has no numeric USER uid:gid"
    assert operator["securityContext"]["runAsUser"] == int(user.group(1))
    assert operator["securityContext"]["runAsGroup"] == int(user.group(2))
    redis = pods["Deployment/ai-gateway-redis"]
    assert redis["securityContext"]["runAsUser"] == 999  # the valkey image's own user
    assert redis["automountServiceAccountToken"] is False


def test_writable_paths_are_explicit_volumes(render):
    for ident, pod in pod_specs(render("everything").objects):
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts") or []}
            assert "/tmp" in mounts, f"{ident}: no writable /tmp"
            for mount in mounts.values():
                volume = volumes[mount["name"]]
                if "secret" in volume or "configMap" in volume:
                    assert mount.get("readOnly") or mount["mountPath"] == "/tmp", f"{ident}: {mount}"


def test_the_operator_probes_kopf_liveness_on_the_port_the_image_serves(render):
    container = render("defaults").one("Deployment", "aigw-operator")["spec"]["template"]["spec"]["containers"][0]
    entrypoint = (ROOT / "Dockerfile.operator").read_text()
    assert '"--liveness=http://0.0.0.0:8080/healthz"' in entrypoint
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_network_policies(render):
    rendered = render("everything")
    policies = {p["metadata"]["name"]: p["spec"] for p in rendered.of_kind("NetworkPolicy")}
    assert set(policies) == {"ai-gateway-operator", "ai-gateway-redis", "ai-gateway-gateway"}
    operator = policies["ai-gateway-operator"]
    assert operator["policyTypes"] == ["Ingress"] and operator["ingress"] == []
    (redis_rule,) = policies["ai-gateway-redis"]["ingress"]
    assert redis_rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert redis_rule["from"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "app.kubernetes.io/part-of": "aigw", "app.kubernetes.io/component": "gateway"}}}]
    gateway = policies["ai-gateway-gateway"]
    assert gateway["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "gateway", "aigw.dev/gateway": "platform-gw"}
    rule, ops_rule = gateway["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert len(rule["from"]) == 2  # the two configured peers, on the API port
    assert ops_rule["ports"] == [{"port": 9090, "protocol": "TCP"}]
    assert len(ops_rule["from"]) == 1  # the operator only: /metrics and the report are not the API's
    assert ops_rule["from"][-1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert not render("defaults").of_kind("NetworkPolicy")


def test_network_policies_select_the_pods_and_port_the_operator_creates(render):
    """The gateway pods are the operator's (workloads.py): the chart's selectors must match the
    labels it puts on them, and the operator must be let in on the port it reads reports from."""
    from aigw_config.kinds import AIGatewaySpec
    from aigw_operator import workloads

    rendered = render("everything")
    gateway = rendered.one("AIGateway")
    owned = {**gateway, "metadata": {**gateway["metadata"], "uid": "0000"}}
    options = workloads.WorkloadOptions.from_spec(AIGatewaySpec.model_validate(gateway["spec"]), "example/gw:1")
    objects = {kind.kind: obj for kind, obj in workloads.workload_objects(owned, options)}
    pod = objects["Deployment"]["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    port, ops_port = pod["spec"]["containers"][0]["ports"]
    assert (port["name"], port["containerPort"]) == (workloads.PORT_NAME, workloads.GATEWAY_PORT)
    assert (ops_port["name"], ops_port["containerPort"]) == (workloads.OPS_PORT_NAME, workloads.OPS_PORT)

    policies = {p["metadata"]["name"]: p["spec"] for p in rendered.of_kind("NetworkPolicy")}
    gateway_policy = policies["ai-gateway-gateway"]
    assert gateway_policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    api_rule, rule = gateway_policy["ingress"]
    assert api_rule["ports"] == [{"port": workloads.GATEWAY_PORT, "protocol": "TCP"}]  # API and probes
    assert rule["ports"] == [{"port": workloads.OPS_PORT, "protocol": "TCP"}]  # /metrics and the report
    assert rule["from"] == [rule["from"][-1]]  # by default only the operator reaches the ops port
    operator_peer = rule["from"][-1]
    operator_pod = rendered.one("Deployment", "ai-gateway-operator")["spec"]["template"]["metadata"]["labels"]
    assert operator_peer["podSelector"]["matchLabels"].items() <= operator_pod.items()
    assert operator_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "aigw-system"}
    (redis_rule,) = policies["ai-gateway-redis"]["ingress"]
    assert redis_rule["from"][0]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # The operator itself accepts nothing and may still call out (API server, gateway reports).
    assert policies["ai-gateway-operator"]["policyTypes"] == ["Ingress"]


def test_the_gateway_pods_the_operator_creates_meet_the_same_bar():
    """docs/security.md promises it for every aigw pod, the operator's gateway pods included."""
    from aigw_operator import workloads

    gateway = {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIGateway",
               "metadata": {"name": "gw", "namespace": "ai", "uid": "0000"}, "spec": {}}
    objects = [obj for _, obj in workloads.workload_objects(gateway, workloads.WorkloadOptions(image="i"))]
    (ident, pod), = pod_specs(objects)
    assert restricted_violations(pod) == [], ident

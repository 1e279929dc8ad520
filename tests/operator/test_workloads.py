"""An AIGateway's pods: Deployment, Service, least-privilege RBAC, optional HPA/PDB (pure)."""

from __future__ import annotations

from aigw_config.kinds import AIGatewaySpec
from aigw_operator import workloads
from aigw_operator.workloads import DEPLOYMENT, HPA, PDB, ROLE, ROLE_BINDING, SERVICE, SERVICE_ACCOUNT, WorkloadOptions

GW = {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIGateway",
      "metadata": {"name": "edge", "namespace": "team", "uid": "uid-9"}}


def objects(spec: dict | None = None, **overrides) -> dict[str, dict]:
    options = WorkloadOptions.from_spec(AIGatewaySpec.model_validate(spec or {}), "registry.example/aigw-gateway:1")
    if overrides:
        options = WorkloadOptions(**{**options.__dict__, **overrides})
    return {kind.kind: obj for kind, obj in workloads.workload_objects(GW, options)}


def test_every_object_is_owned_by_the_gateway_and_labelled():
    objs = objects()
    assert list(objs) == ["ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"]
    for obj in objs.values():
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("AIGateway", "edge", "uid-9", True)
        assert obj["metadata"]["namespace"] == "team"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aigw-operator"
        assert obj["metadata"]["annotations"][workloads.APPLIED_HASH_ANNOTATION]


def test_pods_may_read_their_own_configmap_and_secret_and_nothing_else():
    objs = objects()
    rules = objs["Role"]["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["edge-config"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["edge-credentials"], "verbs": ["get", "list", "watch"]},
    ]
    binding = objs["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "edge-gateway"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "edge-gateway", "namespace": "team"}]
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == objs["ServiceAccount"]["metadata"]["name"] == "edge-gateway"


def test_deployment_runs_the_gateway_from_its_configmap_with_probes():
    dep = objects({"replicas": 3, "redis": {"urlSecretRef": {"name": "redis", "key": "url"}}})["Deployment"]
    spec = dep["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (c,) = spec["template"]["spec"]["containers"]
    assert c["image"] == "registry.example/aigw-gateway:1"
    args = c["command"] + c["args"]
    assert args[:2] == ["aigw", "serve"]
    for flag, value in (("--kube-configmap", "edge-config"), ("--kube-secret", "edge-credentials"),
                        ("--namespace", "team"), ("--host", "0.0.0.0"), ("--port", "8080")):
        assert args[args.index(flag) + 1] == value
    assert c["readinessProbe"]["httpGet"] == {"port": "http", "path": "/readyz"}
    assert c["livenessProbe"]["httpGet"] == {"port": "http", "path": "/healthz"}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "ops", "containerPort": 9090, "protocol": "TCP"}]  # /metrics, /internal/report
    assert args[args.index("--ops-port") + 1] == "9090"
    env = {e["name"]: e for e in c["env"]}
    assert env["AIGW_REDIS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "redis", "key": "url"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert c["resources"] == workloads.DEFAULT_RESOURCES
    without_redis = objects()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert "AIGW_REDIS_URL" not in {e["name"] for e in without_redis["env"]}


def test_pods_meet_the_restricted_pod_security_profile():
    pod = objects()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["runAsNonRoot"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not sc.get("privileged")
    assert {v["name"] for v in pod["volumes"]} == {"tmp"} and "emptyDir" in pod["volumes"][0]


def test_service_follows_the_spec_and_selects_the_pods():
    objs = objects({"service": {"type": "LoadBalancer", "port": 443}})
    svc = objs["Service"]["spec"]
    assert svc["type"] == "LoadBalancer"
    assert svc["ports"] == [{"name": "http", "port": 443, "targetPort": "http", "protocol": "TCP"},
                            {"name": "ops", "port": 9090, "targetPort": "ops", "protocol": "TCP"}]
    assert svc["selector"].items() <= objs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    assert workloads.service_endpoint("team", "edge", 443) == "http://edge.team.svc:443"


def test_autoscaler_and_disruption_budget_are_optional():
    plain = objects()
    assert "HorizontalPodAutoscaler" not in plain and "PodDisruptionBudget" not in plain
    objs = objects(autoscaling={"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 60},
                   disruption_budget={"maxUnavailable": 1})
    hpa = objs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "edge"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    assert "replicas" not in objs["Deployment"]["spec"]  # the autoscaler owns the count
    pdb = objs["PodDisruptionBudget"]["spec"]
    assert pdb["maxUnavailable"] == 1 and pdb["selector"]["matchLabels"] == workloads.selector_labels("edge")


def test_applied_hash_detects_changes_and_replace_keeps_what_others_own():
    a, b = objects()["Deployment"], objects({"replicas": 2})["Deployment"]
    assert workloads.is_current(a, objects()["Deployment"])
    assert not workloads.is_current(b, a) and not workloads.is_current(a, None)
    current_svc = {**objects()["Service"], "spec": {**objects()["Service"]["spec"], "clusterIP": "10.0.0.9",
                                                   "clusterIPs": ["10.0.0.9"]},
                   "metadata": {**objects()["Service"]["metadata"], "resourceVersion": "41",
                                "annotations": {"cloud.example/lb": "x"}}}
    body = workloads.replace_body(SERVICE, objects({"service": {"port": 9000}})["Service"], current_svc)
    assert body["spec"]["clusterIP"] == "10.0.0.9" and body["spec"]["ports"][0]["port"] == 9000
    assert body["metadata"]["resourceVersion"] == "41" and body["metadata"]["annotations"]["cloud.example/lb"] == "x"
    scaled = {**a, "spec": {**a["spec"], "replicas": 5}, "metadata": {**a["metadata"], "resourceVersion": "7"}}
    hpa_managed = objects(autoscaling={"maxReplicas": 6})["Deployment"]
    assert workloads.replace_body(DEPLOYMENT, hpa_managed, scaled)["spec"]["replicas"] == 5
    assert {k for k, _ in workloads.workload_objects(GW, WorkloadOptions(image="x"))} == {
        SERVICE_ACCOUNT, ROLE, ROLE_BINDING, DEPLOYMENT, SERVICE}
    assert set(workloads.OPTIONAL_KINDS) == {HPA, PDB}

"""Pure translation: an AIGateway -> the workload objects that run its pods.

ServiceAccount, a Role that reads exactly the gateway's own ConfigMap and Secret (and nothing
else), its RoleBinding, the Deployment, the Service, and optionally a HorizontalPodAutoscaler and
a PodDisruptionBudget. Every object is owned by the AIGateway (garbage-collected with it) and
carries the hash of what the operator wants in an annotation, so an unchanged object is never
re-written (the API server's defaulting cannot make it look changed).

Pods run `aigw serve --kube-configmap <gw>-config --kube-secret <gw>-credentials` and load
config changes through a watch: a new config generation never restarts a pod. They meet the
Pod Security "restricted" profile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from aigw_config.kinds import AIGatewaySpec

from . import ledger_workload
from .ledger_workload import LedgerOptions
from .translate import MANAGED_BY, configmap_name, owner_reference, secret_name

GATEWAY_PORT = 8080
PORT_NAME = "http"
OPS_PORT = 9090  # `aigw serve --ops-port`: /metrics and /internal/report, never on the API port
OPS_PORT_NAME = "ops"
REPORT_PATH = "/internal/report"
APPLIED_HASH_ANNOTATION = "aigw.dev/applied-hash"
GATEWAY_LABEL = "aigw.dev/gateway"
RUN_AS = 65532
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
GRACEFUL_SECONDS = 30  # `aigw serve --graceful-timeout` default: in-flight streams finish


@dataclass(frozen=True)
class Kind:
    """Where objects of one kind live in the API."""

    api_version: str
    plural: str
    kind: str


SERVICE_ACCOUNT = Kind("v1", "serviceaccounts", "ServiceAccount")
ROLE = Kind("rbac.authorization.k8s.io/v1", "roles", "Role")
ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding")
DEPLOYMENT = Kind("apps/v1", "deployments", "Deployment")
SERVICE = Kind("v1", "services", "Service")
HPA = Kind("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
PDB = Kind("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget")
OPTIONAL_KINDS = (HPA, PDB)


@dataclass(frozen=True)
class WorkloadOptions:
    """What the AIGateway asks of its pods (camelCase Kubernetes shapes where Kubernetes has one)."""

    image: str
    replicas: int = 1
    service_type: str = "ClusterIP"
    service_port: int = GATEWAY_PORT
    redis_secret: tuple[str, str] | None = None  # (Secret name, key) of the Redis URL
    resources: dict[str, Any] = field(default_factory=lambda: DEFAULT_RESOURCES)
    autoscaling: dict[str, Any] | None = None  # {minReplicas, maxReplicas, targetCPUUtilizationPercentage}
    disruption_budget: dict[str, Any] | None = None  # {minAvailable} or {maxUnavailable}
    ledger: LedgerOptions | None = None  # spec.ledger: the usage ledger's writer and URL

    @classmethod
    def from_spec(cls, spec: AIGatewaySpec, default_image: str) -> "WorkloadOptions":
        redis = spec.redis.url_secret_ref if spec.redis else None
        return cls(
            image=spec.image or default_image,
            replicas=spec.replicas,
            service_type=spec.service.type,
            service_port=spec.service.port,
            redis_secret=(redis.name, redis.key) if redis else None,
            # Fields the contract may not carry yet (resources, autoscaling, podDisruptionBudget):
            # read when present, so this module needs no change when they are added.
            resources=_camel(getattr(spec, "resources", None)) or DEFAULT_RESOURCES,
            autoscaling=_camel(getattr(spec, "autoscaling", None)),
            disruption_budget=_camel(getattr(spec, "pod_disruption_budget", None)),
            ledger=LedgerOptions.from_spec(spec),
        )


def _camel(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True) or None
    return dict(value) or None


@dataclass(frozen=True)
class Names:
    gateway: str

    @property
    def deployment(self) -> str:
        return self.gateway

    @property
    def service(self) -> str:
        return self.gateway

    @property
    def service_account(self) -> str:
        return f"{self.gateway}-gateway"

    @property
    def role(self) -> str:
        return f"{self.gateway}-gateway"


def selector_labels(gateway: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "aigw-gateway", GATEWAY_LABEL: gateway}


def _labels(gateway: str) -> dict[str, str]:
    return {
        **selector_labels(gateway),
        **MANAGED_BY,
        "app.kubernetes.io/instance": gateway,
        "app.kubernetes.io/component": "gateway",
        "app.kubernetes.io/part-of": "aigw",
    }


def service_endpoint(namespace: str, gateway: str, port: int) -> str:
    return f"http://{Names(gateway).service}.{namespace}.svc:{port}"


def applied_hash(obj: dict[str, Any]) -> str:
    body = {k: v for k, v in obj.items() if k != "metadata"}
    body["labels"] = obj["metadata"].get("labels")
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _object(kind: Kind, gateway: dict[str, Any], name: str, body: dict[str, Any]) -> dict[str, Any]:
    gw_name = gateway["metadata"]["name"]
    obj = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {
            "name": name,
            "namespace": gateway["metadata"]["namespace"],
            "labels": _labels(gw_name),
            "ownerReferences": [owner_reference(gateway)],
        },
        **body,
    }
    obj["metadata"]["annotations"] = {APPLIED_HASH_ANNOTATION: applied_hash(obj)}
    return obj


def workload_objects(gateway: dict[str, Any], options: WorkloadOptions) -> list[tuple[Kind, dict[str, Any]]]:
    """Every object the AIGateway's pods need, in creation order (RBAC before the pods that use it)."""
    gw_name, namespace = gateway["metadata"]["name"], gateway["metadata"]["namespace"]
    names = Names(gw_name)
    out: list[tuple[Kind, dict[str, Any]]] = [
        (SERVICE_ACCOUNT, _object(SERVICE_ACCOUNT, gateway, names.service_account, {"automountServiceAccountToken": True})),
        (ROLE, _object(ROLE, gateway, names.role, {"rules": _pod_rules(gw_name)})),
        (ROLE_BINDING, _object(ROLE_BINDING, gateway, names.role, {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.role},
            "subjects": [{"kind": "ServiceAccount", "name": names.service_account, "namespace": namespace}],
        })),
        (DEPLOYMENT, _object(DEPLOYMENT, gateway, names.deployment, _deployment_spec(gw_name, namespace, options))),
        (SERVICE, _object(SERVICE, gateway, names.service, {"spec": {
            "type": options.service_type,
            "selector": selector_labels(gw_name),
            "ports": [{"name": PORT_NAME, "port": options.service_port, "targetPort": PORT_NAME, "protocol": "TCP"},
                      # Prometheus scrapes it by name; its number only has to differ from the API's.
                      {"name": OPS_PORT_NAME, "port": OPS_PORT if options.service_port != OPS_PORT else OPS_PORT + 1,
                       "targetPort": OPS_PORT_NAME, "protocol": "TCP"}],
        }})),
    ]
    if options.autoscaling:
        out.append((HPA, _object(HPA, gateway, names.deployment, {"spec": _hpa_spec(names, options.autoscaling)})))
    if options.ledger is not None and options.redis_secret:  # the writer reads the gateway's Redis stream
        writer = ledger_workload.ledger_name(gw_name)
        out.append((SERVICE_ACCOUNT, _object(SERVICE_ACCOUNT, gateway, writer, {"automountServiceAccountToken": False})))
        out.append((DEPLOYMENT, _object(DEPLOYMENT, gateway, writer, ledger_workload.writer_deployment_spec(
            gw_name, namespace, options.image, options.ledger, _redis_env(options.redis_secret), _labels(gw_name)))))
    if options.disruption_budget:
        out.append((PDB, _object(PDB, gateway, names.deployment, {"spec": {
            **options.disruption_budget, "selector": {"matchLabels": selector_labels(gw_name)}}})))
    return out


def _pod_rules(gateway: str) -> list[dict[str, Any]]:
    # list/watch with resourceNames are allowed when the request selects metadata.name, which is
    # how the pods watch (aigw_gateway.kube_source): nothing else in the namespace is readable.
    read = ["get", "list", "watch"]
    return [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [configmap_name(gateway)], "verbs": read},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret_name(gateway)], "verbs": read},
    ]


def _deployment_spec(gateway: str, namespace: str, options: WorkloadOptions) -> dict[str, Any]:
    names = Names(gateway)
    selector = selector_labels(gateway)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 5,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": _labels(gateway),
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(OPS_PORT),
                                "prometheus.io/path": "/metrics"},
            },
            "spec": _pod_spec(gateway, namespace, names, options, selector),
        },
    }
    if not options.autoscaling:  # with an HPA the replica count is the autoscaler's to set
        spec["replicas"] = options.replicas
    return {"spec": spec}


def _pod_spec(gateway: str, namespace: str, names: Names, options: WorkloadOptions,
              selector: dict[str, str]) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    if options.redis_secret:
        env.append(_redis_env(options.redis_secret))
    ledger_env, ledger_args = ledger_workload.gateway_pod_additions(options.ledger)
    env.extend(ledger_env)
    probe = {"httpGet": {"port": PORT_NAME}, "timeoutSeconds": 2}
    return {
        "serviceAccountName": names.service_account,
        "automountServiceAccountToken": True,  # the pods watch their ConfigMap and Secret
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": GRACEFUL_SECONDS + 15,
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        }],
        "containers": [{
            "name": "gateway",
            "image": options.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["aigw"],
            "args": [
                "serve", "--kube-configmap", configmap_name(gateway), "--kube-secret", secret_name(gateway),
                "--namespace", namespace, "--host", "0.0.0.0", "--port", str(GATEWAY_PORT),
                "--graceful-timeout", str(GRACEFUL_SECONDS), "--ops-port", str(OPS_PORT), *ledger_args,
            ],
            "env": env,
            "ports": [{"name": PORT_NAME, "containerPort": GATEWAY_PORT, "protocol": "TCP"},
                      {"name": OPS_PORT_NAME, "containerPort": OPS_PORT, "protocol": "TCP"}],
            "startupProbe": {**_path(probe, "/healthz"), "periodSeconds": 2, "failureThreshold": 30},
            "readinessProbe": {**_path(probe, "/readyz"), "periodSeconds": 5, "failureThreshold": 2},
            "livenessProbe": {**_path(probe, "/healthz"), "periodSeconds": 10, "failureThreshold": 3},
            # Leave the Service's endpoints before the listener closes: no refused connections.
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
            "resources": options.resources,
            "securityContext": {
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }


def _redis_env(secret: tuple[str, str]) -> dict[str, Any]:
    name, key = secret
    return {"name": "AIGW_REDIS_URL", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def _path(probe: dict[str, Any], path: str) -> dict[str, Any]:
    return {**probe, "httpGet": {**probe["httpGet"], "path": path}}


def _hpa_spec(names: Names, autoscaling: dict[str, Any]) -> dict[str, Any]:
    return {
        "scaleTargetRef": {"apiVersion": DEPLOYMENT.api_version, "kind": DEPLOYMENT.kind, "name": names.deployment},
        "minReplicas": int(autoscaling.get("minReplicas") or 1),
        "maxReplicas": int(autoscaling["maxReplicas"]),
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": int(autoscaling.get("targetCPUUtilizationPercentage") or 70)}}}],
    }


def replace_body(kind: Kind, desired: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """What to PUT over `current`: ours, plus what other writers own (labels and annotations they
    added, the Service's allocated IPs, the replica count an autoscaler set)."""
    meta = current.get("metadata") or {}
    body = {**desired, "metadata": {
        **desired["metadata"],
        "labels": {**(meta.get("labels") or {}), **desired["metadata"]["labels"]},
        "annotations": {**(meta.get("annotations") or {}), **desired["metadata"]["annotations"]},
        "resourceVersion": meta.get("resourceVersion"),
    }}
    if kind == SERVICE:
        allocated = {k: v for k, v in (current.get("spec") or {}).items()
                     if k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort")}
        body["spec"] = {**allocated, **desired["spec"]}
        if desired["spec"]["type"] != "ClusterIP":  # keep the node ports the server allocated
            node_ports = {p.get("name"): p["nodePort"] for p in (current.get("spec") or {}).get("ports") or []
                          if p.get("nodePort")}
            body["spec"]["ports"] = [{**p, "nodePort": node_ports[p["name"]]} if p["name"] in node_ports else p
                                     for p in desired["spec"]["ports"]]
    if kind == DEPLOYMENT and "replicas" not in desired["spec"] and "replicas" in (current.get("spec") or {}):
        body["spec"] = {**desired["spec"], "replicas": current["spec"]["replicas"]}
    if kind == SERVICE_ACCOUNT:
        for key in ("secrets", "imagePullSecrets"):
            if key in current and key not in body:
                body[key] = current[key]
    return body


def is_current(desired: dict[str, Any], current: dict[str, Any] | None) -> bool:
    if current is None:
        return False
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    return annotations.get(APPLIED_HASH_ANNOTATION) == desired["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]


def owned_by(obj: dict[str, Any], gateway: dict[str, Any]) -> bool:
    uid = gateway["metadata"].get("uid")
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])

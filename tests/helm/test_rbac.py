"""The operator's RBAC grants exactly what it uses; a test lists every rule.

What the operator uses: kopf lists/watches the five kinds, Secrets, and its own ConfigMaps,
Services and Deployments, patches annotations, finalizers and status on the kinds it handles,
and posts Events; the operator's one API module (aigw_operator/kube.py) reads Secrets and
ConfigMaps, writes `<gw>-config` and `<gw>-credentials`, creates/replaces the workload objects of
workloads.py (and deletes the optional HPA and PDB), lists the gateway Services' EndpointSlices,
posts Events and merge-patches status. With peering (HA), kopf lists, watches and patches its
peering object. A new API call must come with a rule here, in the chart and in docs/security.md.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

KINDS = ("aigateways", "modelroutes", "providercredentials", "tenantquotas", "guardrailpolicies")
WRITE = ("get", "create", "update")

# (apiGroup, resource, verb) inside the namespaces the operator watches: the whole list.
NAMESPACED_GRANTS = {
    *{("aigw.dev", kind, verb) for kind in KINDS for verb in ("list", "watch", "patch")},
    *{("aigw.dev", f"{kind}/status", "patch") for kind in KINDS},
    ("aigw.dev", "aigateways/finalizers", "update"),
    *{("", "secrets", verb) for verb in ("get", "list", "watch", "create", "update")},
    *{("", "configmaps", verb) for verb in ("get", "list", "watch", "create", "update")},
    *{("", "services", verb) for verb in ("get", "list", "watch", "create", "update")},
    *{("apps", "deployments", verb) for verb in ("get", "list", "watch", "create", "update")},
    *{("", "serviceaccounts", verb) for verb in WRITE},
    *{("rbac.authorization.k8s.io", plural, verb) for plural in ("roles", "rolebindings") for verb in WRITE},
    *{("autoscaling", "horizontalpodautoscalers", verb) for verb in (*WRITE, "delete")},
    *{("policy", "poddisruptionbudgets", verb) for verb in (*WRITE, "delete")},
    ("discovery.k8s.io", "endpointslices", "list"),
    ("", "events", "create"),
}
CLUSTER_ONLY_GRANTS = {("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("list", "watch")}
# HA: kopf watches the peering object and patches its keep-alive into the object's status (the
# peering CRDs declare no status subresource, so it is a patch of the object itself).
PEERING_VERBS = ("list", "watch", "patch")
CLUSTER_PEERING_GRANTS = {("kopf.dev", "clusterkopfpeerings", verb) for verb in PEERING_VERBS}
NAMESPACED_PEERING_GRANTS = {("kopf.dev", "kopfpeerings", verb) for verb in PEERING_VERBS}
# Needed by no request: the OwnerReferencesPermissionEnforcement admission plugin checks it when
# an object names an AIGateway as owner with blockOwnerDeletion.
ADMISSION_ONLY_GRANTS = {("aigw.dev", "aigateways/finalizers", "update")}
OPERATOR_SUBJECT = [{"kind": "ServiceAccount", "name": "aigw-operator", "namespace": "aigw-system"}]


def grants(role: dict) -> set[tuple[str, str, str]]:
    out = set()
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule shape (resourceNames, URLs?): {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    assert verb not in ("escalate", "bind", "impersonate"), f"privilege verb in {rule}"
                    out.add((group, resource, verb))
    return out


def test_all_namespaces_mode_grants_exactly_the_listed_rules(render):
    rendered = render("defaults")
    role = rendered.one("ClusterRole", "aigw-operator")
    assert grants(role) == NAMESPACED_GRANTS | CLUSTER_ONLY_GRANTS
    binding = rendered.one("ClusterRoleBinding", "aigw-operator")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "aigw-operator"}
    assert binding["subjects"] == OPERATOR_SUBJECT
    assert not rendered.of_kind("Role") and not rendered.of_kind("RoleBinding")


def test_watched_namespaces_mode_grants_roles_per_namespace_and_nothing_cluster_wide(render):
    rendered = render("namespaced")
    assert not [r for r in rendered.of_kind("ClusterRole") + rendered.of_kind("ClusterRoleBinding")
                if r["metadata"]["name"] == "aigw-operator"]
    roles = {r["metadata"]["namespace"]: r for r in rendered.of_kind("Role")}
    assert set(roles) == {"team-a", "team-b"}
    for namespace, role in roles.items():
        assert grants(role) == NAMESPACED_GRANTS, namespace
    bindings = {b["metadata"]["namespace"]: b for b in rendered.of_kind("RoleBinding")}
    assert set(bindings) == {"team-a", "team-b"}
    for binding in bindings.values():
        assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] == "aigw-operator"
        assert binding["subjects"] == OPERATOR_SUBJECT
    args = rendered.one("Deployment", "aigw-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args and "--all-namespaces" not in args


def test_peering_adds_the_peering_object_of_the_operators_scope_and_nothing_else(render):
    cluster_wide = render("ha")
    assert grants(cluster_wide.one("ClusterRole", "aigw-operator")) == \
        NAMESPACED_GRANTS | CLUSTER_ONLY_GRANTS | CLUSTER_PEERING_GRANTS

    namespaced = render("everything")  # watchNamespaces team-a, team-b with peering
    assert not [r for r in namespaced.of_kind("ClusterRole") if r["metadata"]["name"] == "ai-gateway-operator"]
    roles = namespaced.of_kind("Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"team-a", "team-b"}
    for role in roles:
        assert grants(role) == NAMESPACED_GRANTS | NAMESPACED_PEERING_GRANTS


def test_the_peering_grants_name_the_resources_kopf_peers_through():
    from kopf._cogs.structs import references

    from aigw_operator.peering import PEERING_CRDS

    for selector, granted in ((references.CLUSTER_PEERINGS_K, CLUSTER_PEERING_GRANTS),
                              (references.NAMESPACED_PEERINGS_K, NAMESPACED_PEERING_GRANTS)):
        assert {(g, r) for g, r, _ in granted} == {(selector.group, selector.any_name)}
    served = {(c["spec"]["group"], c["spec"]["names"]["plural"]): c for c in PEERING_CRDS}
    assert set(served) == {(g, r) for g, r, _ in CLUSTER_PEERING_GRANTS | NAMESPACED_PEERING_GRANTS}
    for crd in served.values():  # keep-alives go into status: a subresource would need a /status rule
        assert "subresources" not in crd["spec"]["versions"][0]


def kopf_needs() -> set[tuple[str, str, str]]:
    """What kopf does for the registered handlers: list and watch every watched resource; patch
    annotations, finalizers and progress (status) of the resources it handles; post Events."""
    import kopf

    import aigw_operator.main  # noqa: F401  (registers the handlers)

    registry = kopf.get_default_registry()
    needed = {("", "events", "create")}
    for handler in registry._watching.get_all_handlers():
        needed |= {(handler.selector.group, handler.selector.any_name, v) for v in ("list", "watch")}
    for handler in [*registry._changing.get_all_handlers(), *registry._spawning.get_all_handlers()]:
        group, plural = handler.selector.group, handler.selector.any_name
        needed |= {(group, plural, "list"), (group, plural, "watch"), (group, plural, "patch"),
                   (group, f"{plural}/status", "patch")}
    assert len(needed) > 1, "no kopf handlers found"
    return needed


def test_the_rules_cover_every_resource_a_kopf_handler_watches():
    needed = kopf_needs()
    assert ("apps", "deployments", "watch") in needed and ("aigw.dev", "aigateways/status", "patch") in needed
    assert needed <= NAMESPACED_GRANTS, f"kopf handlers need {needed - NAMESPACED_GRANTS}"


def workload_kinds():
    from aigw_operator import workloads

    kinds = {v for v in vars(workloads).values() if isinstance(v, workloads.Kind)}
    assert set(workloads.OPTIONAL_KINDS) <= kinds and len(kinds) >= 7
    return kinds


def api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def test_the_operator_api_module_still_makes_only_the_calls_the_rules_cover():
    """kube.py is the operator's only API client; its calls map onto the rules above. A new
    method there is a new API call: grant it in the chart, list it here and in docs/security.md.
    Its generic methods (get, create, replace, delete) serve the workload kinds of workloads.py."""
    from aigw_operator import workloads
    from aigw_operator.kube import Kube

    kinds = workload_kinds()
    calls = {
        "list_kind": {("aigw.dev", k, "list") for k in KINDS},
        "get_secret": {("", "secrets", "get")},
        "get_configmap": {("", "configmaps", "get")},
        "upsert": {("", p, v) for p in ("secrets", "configmaps") for v in WRITE},
        "get": {(api_group(k.api_version), k.plural, "get") for k in kinds},
        "create": {(api_group(k.api_version), k.plural, "create") for k in kinds},
        "replace": {(api_group(k.api_version), k.plural, "update") for k in kinds},
        "delete": {(api_group(k.api_version), k.plural, "delete") for k in workloads.OPTIONAL_KINDS},
        "endpoint_slices": {("discovery.k8s.io", "endpointslices", "list")},
        "create_event": {("", "events", "create")},
        "patch_status": {("aigw.dev", f"{k}/status", "patch") for k in KINDS},
    }
    public = {name for name in vars(Kube) if not name.startswith("_")}
    assert public == set(calls), f"Kube gained or lost API calls: {public ^ set(calls)}"
    for name, needed in calls.items():
        assert needed <= NAMESPACED_GRANTS, f"Kube.{name} needs {needed - NAMESPACED_GRANTS}"


def test_the_pod_role_the_operator_creates_grants_nothing_the_operator_lacks():
    """RBAC refuses to create a Role granting more than its creator holds (no `escalate` here):
    every rule of the gateway pods' Role must be covered by the operator's own grants."""
    from aigw_operator.workloads import _pod_rules

    for rule in _pod_rules("gw"):
        assert rule["resourceNames"], rule  # the pods read their own two objects, nothing else
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert (group, resource, verb) in NAMESPACED_GRANTS, (group, resource, verb)


# --- the operator's real requests ----------------------------------------------------------------

_PATH = re.compile(r"^(?:/api/v1|/apis/(?P<group>[^/]+)/[^/]+)(?P<rest>/.*)$")


def request_grant(line: str) -> tuple[str, str, str]:
    """"METHOD /path?query -> status" (the emulator's request log) -> (apiGroup, resource, verb)."""
    method, target = line.split(" ")[:2]
    url = urlsplit(target)
    match = _PATH.match(url.path)
    assert match, f"not a resource request: {line}"
    segments = match["rest"].strip("/").split("/")
    watch = segments[0] == "watch" or parse_qs(url.query).get("watch", ["0"])[0] in ("1", "true")
    if segments[0] == "watch":
        segments = segments[1:]
    if segments[0] == "namespaces" and len(segments) >= 3:
        segments = segments[2:]
    resource, name, sub = (segments + [None, None])[:3]
    if sub:
        resource = f"{resource}/{sub}"
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method)
    if method == "GET":
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    return match["group"] or "", resource, verb


def _is_discovery(line: str) -> bool:
    """/version, /api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}: open to every client."""
    segments = [s for s in urlsplit(line.split(" ")[1]).path.split("/") if s]
    return not segments or segments[0] not in ("api", "apis") or len(segments) < (3 if segments[0] == "api" else 4)


def test_request_grant_reads_the_log_lines():
    assert _is_discovery("GET /apis/aigw.dev/v1alpha1 -> 200") and _is_discovery("GET /api/v1 -> 200")
    assert not _is_discovery("GET /api/v1/secrets -> 200")
    assert request_grant("GET /apis/apps/v1/namespaces/ns/deployments/gw -> 200") == ("apps", "deployments", "get")
    assert request_grant("GET /api/v1/namespaces/ns/secrets?watch=true&labelSelector=a -> 200") == ("", "secrets", "watch")
    assert request_grant("GET /apis/discovery.k8s.io/v1/namespaces/ns/endpointslices?labelSelector=x -> 200") == \
        ("discovery.k8s.io", "endpointslices", "list")
    assert request_grant("PATCH /apis/aigw.dev/v1alpha1/namespaces/ns/modelroutes/m/status -> 200") == \
        ("aigw.dev", "modelroutes/status", "patch")
    assert request_grant("DELETE /apis/policy/v1/namespaces/ns/poddisruptionbudgets/gw -> 200") == \
        ("policy", "poddisruptionbudgets", "delete")


async def test_the_operator_makes_only_requests_the_rules_allow_and_uses_every_rule(kube_emulator):
    """The renderer and the status round, in process against the API emulator, through every path
    that writes: workloads created, edited by hand and repaired, the optional HPA and PDB added and
    removed, config rewritten, an invalid gateway refused with an Event, a status round over the
    gateway Service's EndpointSlices. Every request must be granted; together with what kopf does
    for the handlers, every grant must be used."""
    from aigw_operator.status.round import Aggregator
    from aigw_operator.status.reports import ReportCollector
    from aigw_operator.reconciler import Reconciler
    from aigw_operator.settings import OperatorConfig
    from aigw_operator.workloads import APPLIED_HASH_ANNOTATION, workload_objects
    from tests.operator.support import LOCAL_POLICY, G, Cluster, cr, endpoint_slice, in_process_kube, secret

    cluster = Cluster(kube_emulator.url)
    cluster.install_crds()
    cluster.apply(secret("up-key", apiKey="sk-up"))
    cluster.apply(cr("ProviderCredential", "up", {"provider": "openai", "baseURL": "http://127.0.0.1:9/v1",
                                                  "apiKeySecretRef": {"name": "up-key", "key": "apiKey"}}))
    cluster.apply(cr("ModelRoute", "chat", {"model": "gpt", "targets": [{"credentialRef": "up", "model": "m"}]}))
    cluster.apply(secret("team-key", apiKey="sk-team"))
    cluster.apply(cr("TenantQuota", "team", {"apiKeySecretRefs": [{"name": "team-key"}]}))
    gateway = cluster.apply(cr("AIGateway", "gw", {"replicas": 2, "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
                                                   "podDisruptionBudget": {"minAvailable": 1}}))
    # Valid for the schema, refused by the operator (a CEL rule the emulator does not run): an Event.
    cluster.apply(cr("AIGateway", "zz-invalid", {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}))
    cluster.apply(endpoint_slice("gw", {"gw-pod-a": 9}, ops_port=9))  # a pod whose report cannot be read

    kube, api = in_process_kube(cluster.url)
    reconciler = Reconciler(kube, gateway_image="example/gw:1", policy=LOCAL_POLICY)
    collector = ReportCollector(timeout=1.0, grace=0.0)
    aggregator = Aggregator(kube, reconciler, OperatorConfig(), collector, identity="op-test")
    observed: list[str] = []

    async def as_operator(step):
        start = len(kube_emulator.request_log)
        await step
        observed.extend(kube_emulator.request_log[start:])

    try:
        await as_operator(reconciler.reconcile("default"))
        assert cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", "gw") is not None
        # Someone edits every workload object: the next render replaces each of them.
        for kind, obj in workload_objects(gateway, _options(gateway)):
            cluster.patch(kind.api_version, kind.kind, obj["metadata"]["name"],
                          {"metadata": {"annotations": {APPLIED_HASH_ANNOTATION: "edited"}}})
        await as_operator(reconciler.reconcile("default"))
        # New content and no more autoscaler or budget: config rewritten, HPA and PDB deleted.
        cluster.patch(G, "ModelRoute", "chat", {"spec": {"aliases": ["chat-default"]}})
        cluster.patch(G, "AIGateway", "gw", {"spec": {"autoscaling": None, "podDisruptionBudget": None}})
        await as_operator(reconciler.reconcile("default"))
        assert cluster.get("policy/v1", "PodDisruptionBudget", "gw") is None
        await as_operator(aggregator.round("default"))
    finally:
        await collector.close()
        await api.close()
    assert len(kube_emulator.request_log) < 2000, "the emulator's request log wrapped: slices are wrong"
    assert any(e["reason"] == "Invalid" for e in cluster.events("zz-invalid"))

    used = {request_grant(line) for line in observed}
    assert used - NAMESPACED_GRANTS == set(), f"requests no rule grants: {used - NAMESPACED_GRANTS}"
    unused = NAMESPACED_GRANTS - used - kopf_needs() - ADMISSION_ONLY_GRANTS
    assert unused == set(), f"granted, never used: {unused}"




def test_a_peered_operator_in_a_watched_namespace_stays_within_its_role(kube_emulator, tmp_path):
    """A real `aigw operator --peering ... --namespace default` (kopf and all) on the API emulator,
    as the chart runs it with operator.watchNamespaces and HA: everything it asks for is in the
    namespace's Role, and stays inside the watched namespace: with plain namespace names the
    operator turns kopf's cluster-wide Namespace and CRD scans off (aigw_operator/scope.py)."""
    from aigw_operator.peering import PEERING_CRDS, peering_object
    from tests.operator.support import Cluster, OperatorProcess, cr, endpoint_slice, wait_for

    cluster = Cluster(kube_emulator.url)
    cluster.install_crds()
    for crd in PEERING_CRDS:
        cluster.create_cluster_object(crd)
    cluster.apply(peering_object("aigw-operator", "default"))
    cluster.apply(cr("ProviderCredential", "up", {"provider": "openai-compatible", "baseURL": "http://127.0.0.1:9/v1"}))
    cluster.apply(cr("ModelRoute", "chat", {"model": "gpt", "targets": [{"credentialRef": "up"}]}))
    cluster.apply(cr("AIGateway", "gw", {"podDisruptionBudget": {"maxUnavailable": 1}}))
    cluster.apply(endpoint_slice("gw", {"gw-pod": 9}, ops_port=9))
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    start = len(kube_emulator.request_log)  # from here on only the operator talks to the API
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", ["--peering", "aigw-operator", "--namespace", "default"],
                               {"AIGW_OPERATOR_REPORT_INTERVAL": "0.5", "POD_ID": "op-1"})
    try:
        wait_for("the operator renders and runs a status round",
                 lambda: "config generation 1" in operator.log() and "status round default" in operator.log(),
                 30, logs=operator.log)
    finally:
        operator.stop()
    requests = kube_emulator.request_log[start:]
    assert len(kube_emulator.request_log) < 2000, "the emulator's request log wrapped"
    resource_requests = [line for line in requests if not _is_discovery(line)]
    used = {request_grant(line) for line in resource_requests}
    allowed = NAMESPACED_GRANTS | NAMESPACED_PEERING_GRANTS
    assert used - allowed == set(), f"requests no rule grants: {used - allowed}"
    assert {("kopf.dev", "kopfpeerings", "patch"), ("policy", "poddisruptionbudgets", "create"),
            ("discovery.k8s.io", "endpointslices", "list")} <= used
    for line in resource_requests:
        assert "/namespaces/default/" in line, f"outside the watched namespace: {line}"


def _options(gateway: dict):
    from aigw_config.kinds import AIGatewaySpec
    from aigw_operator.workloads import WorkloadOptions

    return WorkloadOptions.from_spec(AIGatewaySpec.model_validate(gateway["spec"]), "example/gw:1")


def test_no_rbac_when_disabled(helm_bin):
    from .support import template

    rendered = template(helm_bin, "--set", "operator.rbac.create=false", "--set", "aggregateClusterRoles=false")
    assert not rendered.kinds() & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@pytest.mark.parametrize("name, aggregates, verbs", [
    ("aigw-view", {"view", "edit", "admin"}, {"get", "list", "watch"}),
    ("aigw-edit", {"edit", "admin"}, {"create", "update", "patch", "delete", "deletecollection"}),
])
def test_aggregated_user_roles(render, name, aggregates, verbs):
    role = render("defaults").one("ClusterRole", name)
    labels = {k.rsplit("-", 1)[-1] for k, v in role["metadata"]["labels"].items()
              if k.startswith("rbac.authorization.k8s.io/aggregate-to-") and v == "true"}
    assert labels == aggregates
    assert grants(role) == {("aigw.dev", kind, verb) for kind in KINDS for verb in verbs}

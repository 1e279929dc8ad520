"""The operator's RBAC grants exactly what it uses; a test lists every rule.

What the operator uses: kopf lists/watches the five kinds, Secrets and its own ConfigMaps, and
patches annotations and status on the kinds it handles; the operator's one API module
(aigw_operator/kube.py) gets Secrets and ConfigMaps, creates/replaces `<gw>-config` and
`<gw>-credentials`, and merge-patches status. A new API call there must come with a rule here.
"""

from __future__ import annotations

import pytest

KINDS = ("aigateways", "modelroutes", "providercredentials", "tenantquotas", "guardrailpolicies")

# (apiGroup, resource, verb) inside the namespaces the operator watches: the whole list.
NAMESPACED_GRANTS = {
    *{("aigw.dev", kind, verb) for kind in KINDS for verb in ("list", "watch", "patch")},
    *{("aigw.dev", f"{kind}/status", "patch") for kind in KINDS},
    ("aigw.dev", "aigateways/finalizers", "update"),
    *{("", "secrets", verb) for verb in ("get", "list", "watch", "create", "update")},
    *{("", "configmaps", verb) for verb in ("get", "list", "watch", "create", "update")},
    ("", "events", "create"),
}
CLUSTER_ONLY_GRANTS = {("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("list", "watch")}


def grants(role: dict) -> set[tuple[str, str, str]]:
    out = set()
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule shape (resourceNames, URLs?): {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    out.add((group, resource, verb))
    return out


def test_all_namespaces_mode_grants_exactly_the_listed_rules(render):
    rendered = render("defaults")
    role = rendered.one("ClusterRole", "aigw-operator")
    assert grants(role) == NAMESPACED_GRANTS | CLUSTER_ONLY_GRANTS
    binding = rendered.one("ClusterRoleBinding", "aigw-operator")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "aigw-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aigw-operator", "namespace": "aigw-system"}]
    assert not rendered.of_kind("Role") and not rendered.of_kind("RoleBinding")


def test_watched_namespaces_mode_grants_roles_per_namespace_and_only_crd_reads_cluster_wide(render):
    rendered = render("namespaced")
    assert grants(rendered.one("ClusterRole", "aigw-operator")) == CLUSTER_ONLY_GRANTS
    roles = {r["metadata"]["namespace"]: r for r in rendered.of_kind("Role")}
    assert set(roles) == {"team-a", "team-b"}
    for namespace, role in roles.items():
        assert grants(role) == NAMESPACED_GRANTS, namespace
    bindings = {b["metadata"]["namespace"]: b for b in rendered.of_kind("RoleBinding")}
    assert set(bindings) == {"team-a", "team-b"}
    for binding in bindings.values():
        assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] == "aigw-operator"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aigw-operator", "namespace": "aigw-system"}]
    args = rendered.one("Deployment", "aigw-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args and "--all-namespaces" not in args


def test_the_rules_cover_every_resource_a_kopf_handler_watches():
    import kopf

    import aigw_operator.main  # noqa: F401  (registers the handlers)

    registry = kopf.get_default_registry()
    needed = set()
    for handler in registry._watching.get_all_handlers():
        needed |= {(handler.selector.group, handler.selector.any_name, v) for v in ("list", "watch")}
    for handler in registry._changing.get_all_handlers():
        group, plural = handler.selector.group, handler.selector.any_name
        needed |= {(group, plural, "list"), (group, plural, "watch"), (group, plural, "patch"),
                   (group, f"{plural}/status", "patch")}
    assert needed, "no kopf handlers found"
    assert needed <= NAMESPACED_GRANTS, f"kopf handlers need {needed - NAMESPACED_GRANTS}"


def test_the_operator_api_module_still_makes_only_the_calls_the_rules_cover():
    """kube.py is the operator's only API client; its calls map onto the rules above. A new
    method there is a new API call: grant it in the chart, list it here and in docs/security.md."""
    from aigw_operator.kube import Kube

    calls = {
        "list_kind": {("aigw.dev", k, "list") for k in KINDS},
        "get_secret": {("", "secrets", "get")},
        "get_configmap": {("", "configmaps", "get")},
        "upsert": {("", p, v) for p in ("secrets", "configmaps") for v in ("get", "create", "update")},
        "patch_status": {("aigw.dev", f"{k}/status", "patch") for k in KINDS},
    }
    public = {name for name in vars(Kube) if not name.startswith("_")}
    assert public == set(calls), f"Kube gained or lost API calls: {public ^ set(calls)}"
    for name, needed in calls.items():
        assert needed <= NAMESPACED_GRANTS, f"Kube.{name} needs {needed - NAMESPACED_GRANTS}"


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

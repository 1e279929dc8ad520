"""The chart renders valid Kubernetes objects for every values set, and rejects bad values."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from .conftest import GATEWAY_API, PEERING_API, VALUE_SETS
from .support import CHART, KUBE_VERSIONS, NAMESPACE, helm, template, validate_object

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace", "ClusterKopfPeering"}


def test_helm_lint_is_clean(helm_bin):
    # lint has no --api-versions: the everything set without it still covers every other template.
    for args in ((), ("-f", str(Path(__file__).parent / "values" / "everything.yaml"))):
        out = helm(helm_bin, "lint", "--strict", str(CHART), *args)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "[ERROR]" not in out.stdout and "[WARNING]" not in out.stdout, out.stdout


@pytest.mark.parametrize("values_set", list(VALUE_SETS))
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_rendered_object_validates_against_its_schema(render, values_set, kube_version):
    rendered = render(values_set)
    assert rendered.objects
    for obj in rendered.objects:
        try:
            validate_object(obj, kube_version)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            pytest.fail(f"{values_set}: {obj['kind']}/{obj['metadata']['name']} at {where}: {exc.message}")


def test_the_validation_can_fail():
    """A typo in a rendered Deployment or CR is caught: the checks above are not vacuous."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i", "securityContxt": {}}]}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        validate_object(deployment, KUBE_VERSIONS[0])
    gateway = {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIGateway", "metadata": {"name": "g"},
               "spec": {"replicas": 2, "replicaz": 3}}
    with pytest.raises(jsonschema.ValidationError):
        validate_object(gateway, KUBE_VERSIONS[0])
    with pytest.raises(Exception):
        validate_object({"apiVersion": "example.com/v1", "kind": "Unknown", "metadata": {"name": "u"}}, KUBE_VERSIONS[0])


@pytest.mark.parametrize("values_set", list(VALUE_SETS))
def test_objects_carry_the_chart_labels_and_the_release_namespace(render, values_set):
    for obj in render(values_set).objects:
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        ident = f"{obj['kind']}/{meta['name']}"
        assert labels.get("app.kubernetes.io/instance") == "aigw", ident
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", ident
        assert labels.get("helm.sh/chart", "").startswith("aigw-"), ident
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, ident
        elif obj["kind"] in ("Role", "RoleBinding", "KopfPeering"):
            assert meta["namespace"] in ("team-a", "team-b"), ident  # the watched namespaces
        elif meta["name"].endswith("-dashboard") and values_set == "everything":
            assert meta["namespace"] == "monitoring", ident  # monitoring.grafanaDashboard.namespace
        else:
            assert meta.get("namespace") == NAMESPACE, ident
        assert len(meta["name"]) <= 63 or obj["kind"] == "CustomResourceDefinition", ident


def test_names_are_unique_per_kind_and_namespace(render):
    for values_set in VALUE_SETS:
        seen = set()
        for obj in render(values_set).objects:
            key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
            assert key not in seen, f"{values_set}: {key} rendered twice"
            seen.add(key)


def test_defaults_render_only_the_operator_and_the_crds(render):
    kinds = sorted(o["kind"] for o in render("defaults").objects)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
                            "Deployment"] + ["CustomResourceDefinition"] * 5)


# --- values.schema.json ------------------------------------------------------------------------

@pytest.mark.parametrize("bad_values, complaint", [
    (("--set", "unknownKey=1"), "unknownKey"),
    (("--set", "operator.typo=1"), "typo"),
    (("--set", "crds.enable=false"), "enable"),
    (("--set", "redis.mode=cluster"), "redis"),
    (("--set", "gateway.replicas=-1"), "replicas"),
    (("--set", "operator.watchNamespaces={Team_A}"), "watchNamespaces"),
    (("--set", "operator.image.digest=latest"), "digest"),
    (("--set", "monitoring.prometheusRule.errorRatio.threshold=2"), "threshold"),
    (("--set", "operator.securityContext.runAsRoot=true"), "runAsRoot"),
    # Two standalone kopf operators would both act: more than one replica needs peering.
    (("--set", "operator.replicas=2"), "peering"),
    (("--set", "operator.replicas=0", "--set", "operator.peering.enabled=true"), "replicas"),
    (("--set", "operator.peering.lifetimeSeconds=1", "--set", "operator.peering.enabled=true"), "lifetimeSeconds"),
    (("--set", "operator.status.errorPercent=0"), "errorPercent"),
    (("--set", "operator.status.reportIntervalSeconds=0"), "reportIntervalSeconds"),
    (("--set", "crds.kopfpeering=false"), "kopfpeering"),
    (("--set", "gateway.resources.requests.cpu=lots"), "cpu"),
    (("--set", "gateway.autoscaling.maxReplicas=0"), "maxReplicas"),
    (("--set", "gateway.podDisruptionBudget.minAvailable=-1"), "minAvailable"),
])
def test_the_schema_rejects_bad_values(helm_bin, bad_values, complaint):
    out = helm(helm_bin, "template", "aigw", str(CHART), *bad_values)
    assert out.returncode != 0, f"{bad_values} was accepted"
    assert "schema" in out.stderr and complaint in out.stderr, out.stderr


@pytest.mark.parametrize("bad_values, complaint", [
    (("--set", "redis.mode=external"), "redis.external.existingSecret"),
    (("--set", "operator.serviceAccount.create=false"), "operator.serviceAccount.name"),
])
def test_inconsistent_values_fail_with_a_message_naming_the_fix(helm_bin, bad_values, complaint):
    out = helm(helm_bin, "template", "aigw", str(CHART), *bad_values)
    assert out.returncode != 0 and complaint in out.stderr, out.stderr


def test_values_yaml_and_the_everything_file_meet_the_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)
    everything = yaml.safe_load((Path(__file__).parent / "values" / "everything.yaml").read_text())
    merged = _merge(copy.deepcopy(VALUES), everything)
    jsonschema.Draft7Validator(SCHEMA).validate(merged)


def _merge(base: dict, override: dict) -> dict:
    for key, value in override.items():
        base[key] = _merge(base.get(key) or {}, value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return base


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


# Subschemas that constrain values already described under "properties" (cross-field rules such
# as "replicas > 1 needs peering"): they describe no keys of their own.
CONDITION_KEYWORDS = ("if", "then", "else")


def _object_nodes(node, path="$"):
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield path, node
        for key, value in node.items():
            if key in CONDITION_KEYWORDS:
                continue
            yield from _object_nodes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _object_nodes(value, f"{path}[{i}]")


def test_every_schema_object_is_closed_or_a_declared_pass_through():
    for path, node in _object_nodes(SCHEMA):
        if path == "$.definitions":
            continue
        extra = node.get("additionalProperties", "missing")
        if extra is False or isinstance(extra, dict):
            continue
        comment = node.get("$comment", "")
        assert comment.startswith(("Kubernetes ", "Helm global")), f"{path} accepts unknown keys silently"
        assert "properties" not in node, f"{path}: a pass-through must not also list properties"


def test_values_yaml_and_the_schema_describe_the_same_keys():
    def walk(schema_node: dict, values_node, path: str):
        for key, child in schema_node.get("properties", {}).items():
            assert isinstance(values_node, dict) and key in values_node, f"{path}{key} is in the schema, not in values.yaml"
            if "$ref" not in child and "properties" in child:
                walk(child, values_node[key], f"{path}{key}.")
        for key in values_node if isinstance(values_node, dict) else ():
            assert key in schema_node.get("properties", {}) or schema_node.get("additionalProperties") not in (False, None), \
                f"{path}{key} is in values.yaml, not in the schema"

    walk(SCHEMA, VALUES, "")


def _documented_keys(text: str) -> dict[str, bool]:
    """Dotted key path -> whether a `# --` comment block sits right above it."""
    out: dict[str, bool] = {}
    stack: list[tuple[int, str]] = []
    comment_block: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            comment_block = []
            continue
        if stripped.startswith("#"):
            comment_block.append(stripped)
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_.\-/]+):(\s|$)", line)
        if not match or stripped.startswith("- "):
            comment_block = []
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([p for _, p in stack] + [match.group(2)])
        out[path] = any(c.startswith("# --") for c in comment_block)
        stack.append((indent, match.group(2)))
        comment_block = []
    return out


def test_every_value_is_documented_in_values_yaml():
    documented = _documented_keys((CHART / "values.yaml").read_text())
    missing = []

    def walk(node, path: str):
        for key, value in node.items():
            full = f"{path}{key}"
            if documented.get(full):
                continue
            if isinstance(value, dict) and value:
                walk(value, full + ".")
            else:
                missing.append(full)

    walk(VALUES, "")
    assert not missing, f"values without a `# --` comment (on them or a parent): {missing}"


# --- NOTES.txt ----------------------------------------------------------------------------------

def _notes(helm_bin: str, tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` would print it (helm template does not render it)."""
    chart = tmp_path / "aigw"
    if not chart.exists():  # one copy per test, rendered with as many value sets as it likes
        shutil.copytree(CHART, chart)
        (chart / "files" / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
        (chart / "templates" / "zz-notes.yaml").write_text('notes: {{ tpl (.Files.Get "files/notes.txt") . | quote }}\n')
    out = helm(helm_bin, "template", "aigw", str(chart), "-n", NAMESPACE, "-s", "templates/zz-notes.yaml", *args)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)["notes"]


def test_notes_tell_how_to_reach_the_gateway_and_read_status(helm_bin, tmp_path):
    notes = _notes(helm_bin, tmp_path, "--set", "gateway.create=true", *GATEWAY_API)
    assert "kubectl -n aigw-system port-forward service/aigw 8080:8080" in notes
    assert 'base_url="http://127.0.0.1:8080/v1"' in notes
    assert "kubectl get aigw,mr,pcred,tq,gp -A" in notes
    assert "kubectl -n aigw-system rollout status deployment/aigw-operator" in notes


def test_notes_say_when_the_default_gateway_waits_for_its_crd(helm_bin, tmp_path):
    notes = _notes(helm_bin, tmp_path, "--set", "gateway.create=true")
    assert "--reuse-values" in notes and "port-forward service/aigw " not in notes


def test_notes_describe_ha_and_say_when_the_peering_object_waits_for_its_crd(helm_bin, tmp_path):
    ha = ("--set", "operator.replicas=2", "--set", "operator.peering.enabled=true")
    notes = _notes(helm_bin, tmp_path, *ha, *PEERING_API)
    assert 'share the kopf peering "aigw-operator" (ClusterKopfPeering)' in notes and "--reuse-values" not in notes
    first_install = _notes(helm_bin, tmp_path, *ha)
    assert "did not serve kopf.dev/v1 ClusterKopfPeering" in first_install and "--reuse-values" in first_install
    own_crds = _notes(helm_bin, tmp_path, *ha, "--set", "crds.kopfPeering=false")
    assert "python -m aigw_operator.peering" in own_crds


def test_without_a_default_gateway_notes_point_to_the_examples(helm_bin, tmp_path):
    notes = _notes(helm_bin, tmp_path)
    assert "kubectl apply -n ai -f manifests/examples/" in notes
    assert "kubectl get aigw,mr,pcred,tq,gp -A" in notes


# --- the default AIGateway and Redis ----------------------------------------------------------

def test_the_default_gateway_renders_only_when_its_api_is_served(helm_bin):
    assert not template(helm_bin, "--set", "gateway.create=true").of_kind("AIGateway")
    assert template(helm_bin, "--set", "gateway.create=true", *GATEWAY_API).of_kind("AIGateway")


def test_the_default_gateway_uses_the_chart_redis(render):
    internal = render("internal-redis")
    gateway = internal.one("AIGateway", "aigw")
    secret = internal.one("Secret", "aigw-redis")
    assert gateway["spec"]["redis"] == {"urlSecretRef": {"name": "aigw-redis", "key": "url"}}
    password = secret["stringData"]["password"]
    assert len(password) == 32 and secret["stringData"]["url"] == f"redis://:{password}@aigw-redis.aigw-system.svc:6379/0"
    assert f"requirepass {password}" in secret["stringData"]["valkey.conf"]

    external = render("external-redis").one("AIGateway", "aigw")
    assert external["spec"]["redis"] == {"urlSecretRef": {"name": "prod-redis", "key": "uri"}}
    assert not render("external-redis").of_kind("Secret")

    url = render("external-redis-url")
    assert url.one("AIGateway")["spec"]["redis"] == {"urlSecretRef": {"name": "aigw-redis-url", "key": "url"}}
    assert url.one("Secret", "aigw-redis-url")["stringData"]["url"] == "rediss://:pw@redis.example:6380/0"

    assert "redis" not in render("gateway").one("AIGateway")["spec"]


def test_the_default_gateway_carries_resources_autoscaling_and_disruption_budget(helm_bin, render):
    spec = render("everything").one("AIGateway")["spec"]
    # Quantities are strings in the AIGateway schema, numbers in values are turned into them.
    assert spec["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    assert spec["autoscaling"] == {"minReplicas": 3, "maxReplicas": 12, "targetCPUUtilizationPercentage": 60}
    assert spec["podDisruptionBudget"] == {"maxUnavailable": 1}
    plain = render("gateway").one("AIGateway")["spec"]
    assert not {"resources", "autoscaling", "podDisruptionBudget"} & set(plain)  # the operator's defaults
    budget = template(helm_bin, "--set", "gateway.create=true", "--set", "gateway.podDisruptionBudget.enabled=true",
                      *GATEWAY_API).one("AIGateway")["spec"]["podDisruptionBudget"]
    assert budget == {"minAvailable": 1}


def test_the_default_gateway_passes_the_contract_models(render):
    from aigw_config.resources import Resource

    for values_set in ("gateway", "internal-redis", "everything"):
        Resource.from_object(render(values_set).one("AIGateway"), NAMESPACE).parse_spec()


def test_the_default_gateway_gets_a_ledger_from_an_existing_secret(helm_bin):
    from aigw_config.resources import Resource

    plain = template(helm_bin, "--set", "gateway.create=true", *GATEWAY_API).one("AIGateway")
    assert "ledger" not in plain["spec"]
    gateway = template(helm_bin, "--set", "gateway.create=true", "--set", "gateway.ledger.existingSecret=ledger-app",
                       "--set", "gateway.ledger.retentionDays=90", "--set", "gateway.ledger.lagThreshold=500",
                       *GATEWAY_API).one("AIGateway")
    assert gateway["spec"]["ledger"] == {"postgres": {"urlSecretRef": {"name": "ledger-app", "key": "uri"}},
                                         "retentionDays": 90, "lagThreshold": 500}
    Resource.from_object(gateway, NAMESPACE).parse_spec()

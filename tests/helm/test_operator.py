"""The operator Deployment: standalone by default, HA with kopf peering, and the settings it reads."""

from __future__ import annotations

import os
import re

import pytest

from .support import ROOT, template


def operator_deployment(rendered) -> dict:
    (deployment,) = [d for d in rendered.of_kind("Deployment") if d["metadata"]["name"].endswith("-operator")]
    return deployment


def container(rendered) -> dict:
    return operator_deployment(rendered)["spec"]["template"]["spec"]["containers"][0]


def env_of(rendered) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(rendered)["env"] if "value" in e}


def test_by_default_one_standalone_replica_replaced_by_recreate(render):
    rendered = render("defaults")
    deployment = operator_deployment(rendered)
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = container(rendered)["args"]
    assert "--standalone" in args and not any(a.startswith("--peering") for a in args)
    assert "AIGW_OPERATOR_PEERING_LIFETIME" not in env_of(rendered)
    assert "topologySpreadConstraints" not in deployment["spec"]["template"]["spec"]
    assert not rendered.of_kind("ClusterKopfPeering") and not rendered.of_kind("KopfPeering")


def test_ha_runs_peered_replicas_and_the_cluster_peering_object(render):
    from aigw_operator.peering import peering_object

    rendered = render("ha")
    deployment = operator_deployment(rendered)
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    # Never a standalone and a peered pod at once (switching to HA): old pods go first.
    assert spec["strategy"] == {"type": "Recreate"}
    args = container(rendered)["args"]
    assert "--peering=aigw-operator" in args and "--standalone" not in args and "--all-namespaces" in args
    assert env_of(rendered)["AIGW_OPERATOR_PEERING_LIFETIME"] == "20"
    assert "AIGW_OPERATOR_PRIORITY" not in env_of(rendered)  # each replica draws its own
    (spread,) = spec["template"]["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    (peering,) = rendered.of_kind("ClusterKopfPeering")
    expected = peering_object("aigw-operator")
    assert (peering["apiVersion"], peering["kind"], peering["metadata"]["name"]) == \
        (expected["apiVersion"], expected["kind"], expected["metadata"]["name"])
    assert "namespace" not in peering["metadata"] and not rendered.of_kind("KopfPeering")


def test_ha_in_watched_namespaces_has_a_peering_object_in_each(render):
    from aigw_operator.peering import peering_object

    rendered = render("everything")
    args = container(rendered)["args"]
    assert "--peering=aigw-ha" in args and "--namespace=team-a" in args and "--namespace=team-b" in args
    assert env_of(rendered)["AIGW_OPERATOR_PEERING_LIFETIME"] == "30"
    objects = {p["metadata"]["namespace"]: p for p in rendered.of_kind("KopfPeering")}
    assert set(objects) == {"team-a", "team-b"} and not rendered.of_kind("ClusterKopfPeering")
    for namespace, obj in objects.items():
        expected = peering_object("aigw-ha", namespace)
        assert (obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) == \
            (expected["apiVersion"], expected["kind"], expected["metadata"]["name"])


def test_the_peering_object_waits_until_its_kind_is_served(helm_bin):
    ha = ("--set", "operator.replicas=2", "--set", "operator.peering.enabled=true")
    first_install = template(helm_bin, *ha)
    assert not first_install.of_kind("ClusterKopfPeering")
    assert "--peering=aigw-operator" in container(first_install)["args"]  # the replicas wait for it, paused
    # The namespaced kind is what counts when the operator watches given namespaces.
    wrong_kind = template(helm_bin, *ha, "--set", "operator.watchNamespaces={team-a}",
                          "--api-versions", "kopf.dev/v1/ClusterKopfPeering")
    assert not wrong_kind.of_kind("KopfPeering") and not wrong_kind.of_kind("ClusterKopfPeering")


def test_one_peered_replica_is_allowed(helm_bin):
    rendered = template(helm_bin, "--set", "operator.peering.enabled=true", "--set", "operator.peering.name=ops")
    assert operator_deployment(rendered)["spec"]["replicas"] == 1
    assert "--peering=ops" in container(rendered)["args"]


@pytest.mark.parametrize("values_set", ["defaults", "everything"])
def test_the_operator_reads_the_settings_the_chart_sets(render, values_set, monkeypatch):
    """The env the chart renders, read by the operator's own settings loader: names and formats match."""
    from aigw_operator.settings import OperatorConfig

    rendered = render(values_set)
    env = env_of(rendered)
    for name in list(os.environ):
        if name.startswith("AIGW_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = OperatorConfig.from_env()
    expected = {
        "defaults": dict(debounce_seconds=0.2, watch_server_timeout=300, report_interval=10.0, report_timeout=2.0,
                         report_grace=15.0, status_min_interval=30.0, error_percent=5.0, peering_lifetime=20,
                         gateway_image="ghcr.io/aigw-dev/aigw-gateway:0.1.0", report_max_bytes=4 * 1024 * 1024,
                         allowed_images=("ghcr.io/aigw-dev/aigw-gateway",), allow_private_base_urls=False,
                         require_secret_label=True),
        "everything": dict(debounce_seconds=1.0, watch_server_timeout=120, report_interval=5.0, report_timeout=1.5,
                           report_grace=20.0, status_min_interval=60.0, error_percent=2.5, peering_lifetime=30,
                           gateway_image="registry.example/aigw/aigw-gateway:0.1.0-rc1", report_max_bytes=1048576,
                           allowed_images=("registry.example/aigw/", "ghcr.io/aigw-dev/aigw-gateway"),
                           allow_private_base_urls=True, require_secret_label=False),
    }[values_set]
    assert {k: getattr(config, k) for k in expected} == expected


def test_every_operator_setting_is_a_value_or_deliberately_not():
    """settings.py's table of variables: each is set by the chart, except the peering priority,
    which each replica must draw for itself (equal priorities pause every replica)."""
    table = (ROOT / "operator" / "aigw_operator" / "settings.py").read_text()
    names = set(re.findall(r"^\| (AIGW_[A-Z_]+)", table, re.M))
    chart = (ROOT / "helm" / "aigw" / "templates" / "operator-deployment.yaml").read_text()
    set_by_chart = set(re.findall(r"name: (AIGW_[A-Z_]+)", chart))
    assert names - set_by_chart == {"AIGW_OPERATOR_PRIORITY"}
    assert set_by_chart <= names, f"the chart sets variables the operator does not read: {set_by_chart - names}"

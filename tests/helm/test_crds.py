"""The chart's CRDs are crds/ unchanged, gated by crds.enabled and kept per crds.keep; kopf's peering
CRDs come with HA."""

from __future__ import annotations

import yaml

from .support import CHART, CRDS, load_script

sync = load_script("sync-chart-crds")


def test_chart_crd_templates_are_in_sync_with_crds_dir():
    wanted = sync.render_all()
    present = {p.name: p.read_text() for p in (CHART / "templates" / "crds").glob("*.yaml")}
    assert set(present) == set(wanted), "run scripts/sync-chart-crds"
    stale = [name for name, text in wanted.items() if present[name] != text]
    assert not stale, f"{stale} differ from crds/: run scripts/sync-chart-crds"


def test_rendered_crds_equal_the_generated_ones(render):
    rendered = {c["metadata"]["name"]: c for c in render("defaults").of_kind("CustomResourceDefinition")}
    source = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        source[crd["metadata"]["name"]] = crd
    assert set(rendered) == set(source) and len(source) == 5
    for name, crd in source.items():
        got = rendered[name]
        assert got["spec"] == crd["spec"], name
        assert crd["metadata"]["labels"].items() <= got["metadata"]["labels"].items(), name
        assert got["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}, name


def test_crds_enabled_and_keep_switch_them(render):
    assert not render("crds-disabled").of_kind("CustomResourceDefinition")
    not_kept = [c for c in render("everything").of_kind("CustomResourceDefinition") if c["spec"]["group"] == "aigw.dev"]
    assert len(not_kept) == 5 and all("annotations" not in c["metadata"] for c in not_kept)


def test_kopf_peering_crds_come_with_ha_only_and_are_always_kept(render, helm_bin):
    from aigw_operator.peering import PEERING_CRDS

    from .support import template

    wanted = {c["metadata"]["name"]: c for c in PEERING_CRDS}
    for values_set in ("ha", "everything"):  # everything has crds.keep=false: shared CRDs stay anyway
        rendered = {c["metadata"]["name"]: c for c in render(values_set).of_kind("CustomResourceDefinition")
                    if c["spec"]["group"] == "kopf.dev"}
        assert set(rendered) == set(wanted) == {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"}
        for name, crd in rendered.items():
            assert crd["spec"] == wanted[name]["spec"], name
            assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}, name
    for values_set in ("defaults", "namespaced", "crds-disabled"):
        assert not [c for c in render(values_set).of_kind("CustomResourceDefinition") if c["spec"]["group"] == "kopf.dev"]
    ha = ("--set", "operator.replicas=2", "--set", "operator.peering.enabled=true")
    for switch in ("crds.enabled=false", "crds.kopfPeering=false"):
        crds = template(helm_bin, *ha, "--set", switch).of_kind("CustomResourceDefinition")
        assert not [c for c in crds if c["spec"]["group"] == "kopf.dev"], switch


def test_a_template_delimiter_in_a_crd_is_escaped():
    crd = (CRDS / "aigw.dev_modelroutes.yaml").read_text().replace(
        "description: The model name clients send.", "description: 'The model name, e.g. {{model}}.'", 1)
    text = sync.render_template(crd, "x.yaml")
    assert '{{ "{{" }}model}}' in text and "{{model}}" not in text.replace('{{ "{{" }}model}}', "")

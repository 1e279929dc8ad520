"""The chart's CRDs are crds/ unchanged, gated by crds.enabled and kept per crds.keep."""

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
    not_kept = render("everything").of_kind("CustomResourceDefinition")
    assert len(not_kept) == 5 and all("annotations" not in c["metadata"] for c in not_kept)


def test_a_template_delimiter_in_a_crd_is_escaped():
    crd = (CRDS / "aigw.dev_modelroutes.yaml").read_text().replace(
        "description: The model name clients send.", "description: 'The model name, e.g. {{model}}.'", 1)
    text = sync.render_template(crd, "x.yaml")
    assert '{{ "{{" }}model}}' in text and "{{model}}" not in text.replace('{{ "{{" }}model}}', "")

"""The Dockerfiles, checked without a Docker engine.

The wheel is built from exactly the build context Docker would send (the repository filtered by
.dockerignore, then the Dockerfiles' COPY lines), and every path and entry point the Dockerfiles
name must exist in it; the entry points' arguments must parse with the real command lines.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .support import ROOT

DOCKERFILES = ("Dockerfile.gateway", "Dockerfile.operator")
VENV = "/opt/aigw"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined."""
    logical: list[str] = []
    buffer = ""
    for line in text.splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        buffer += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            logical.append(buffer.strip())
            buffer = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            stages.append(Stage(base, parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None))
        elif op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((op, rest.strip()))
    return args, stages


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        regex = fnmatch.translate(pat).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if pat.startswith("**/"):
            regex = "(.*/)?" + fnmatch.translate(pat[3:]).replace(".*", "[^/]*")
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def _ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def dockerfiles() -> dict[str, tuple[dict[str, str], list[Stage]]]:
    return {name: parse_dockerfile((ROOT / name).read_text()) for name in DOCKERFILES}


@pytest.fixture(scope="module")
def build_context(tmp_path_factory) -> Path:
    """The repository as Docker's build context sees it, after .dockerignore."""
    context = tmp_path_factory.mktemp("context")
    patterns = _ignore_patterns()
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if (ROOT / rel).is_file() and not dockerignore_excludes(rel, patterns):
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, context / rel)
    return context


@pytest.fixture(scope="module")
def wheel(build_context: Path, tmp_path_factory) -> Path:
    """The wheel the builder stage builds, from the COPY'd files only."""
    _, stages = parse_dockerfile((ROOT / DOCKERFILES[0]).read_text())
    source = tmp_path_factory.mktemp("src")
    for copy in stages[0].all("COPY"):
        *sources, dest = shlex.split(copy)
        for src in sources:
            src_path = build_context / src.rstrip("/")
            assert src_path.exists(), f"COPY {src}: not in the build context (.dockerignore?)"
            target = source / dest.rstrip("/") / (src_path.name if dest.endswith("/") and src_path.is_file() else "")
            if src_path.is_dir():
                shutil.copytree(src_path, source / dest.rstrip("/"), dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src_path, target if target.name else source / src_path.name)
    out = tmp_path_factory.mktemp("wheels")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--disable-pip-version-check", "-q", "-w", str(out), str(source)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (whl,) = out.glob("aigw-*.whl")
    return whl


@pytest.fixture(scope="module")
def unpacked_wheel(wheel: Path, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    return target


def _entrypoint(stage: Stage) -> list[str]:
    (raw,) = stage.all("ENTRYPOINT")
    return json.loads(raw)  # exec form: no shell between the runtime and the process


@pytest.mark.parametrize("name", DOCKERFILES)
def test_multi_stage_on_python_311_slim(dockerfiles, name):
    args, stages = dockerfiles[name]
    assert len(stages) == 2 and stages[0].name == "builder"
    assert all(s.base == "python:3.11-slim" for s in stages), [s.base for s in stages]
    builder, final = stages
    wheel_builds = [r for r in builder.all("RUN") if "pip wheel" in r]
    assert len(wheel_builds) == 1 and "--no-deps" in wheel_builds[0], "the aigw wheel is built once, in the builder"
    assert any(f"python -m venv {VENV}" in r for r in builder.all("RUN"))
    assert any("pip uninstall --yes pip" in r for r in builder.all("RUN")), "no pip left in the runtime venv"
    assert final.all("COPY") == [f"--from=builder {VENV} {VENV}"], "the runtime stage gets the venv, nothing else"
    assert not any("pip install" in r for r in final.all("RUN")), "nothing is installed in the runtime stage"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_as_a_numeric_non_root_user_on_a_read_only_root(dockerfiles, name):
    _, (_, final) = dockerfiles[name]
    (user,) = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user} is not a numeric non-root uid"
    assert gid.isdigit() and int(gid) != 0, f"USER {user} has no numeric non-root gid"
    env = " ".join(final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "no .pyc writes next to the code on a read-only root"
    assert "HOME=/tmp" in env
    assert final.all("WORKDIR") == ["/tmp"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_oci_labels(dockerfiles, name):
    _, (_, final) = dockerfiles[name]
    labels = " ".join(final.all("LABEL"))
    for key in ("title", "description", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels


@pytest.mark.parametrize("name", DOCKERFILES)
def test_build_context_holds_every_copied_path(dockerfiles, build_context, name):
    _, (builder, _) = dockerfiles[name]
    for copy in builder.all("COPY"):
        *sources, _dest = shlex.split(copy)
        for src in sources:
            assert (build_context / src.rstrip("/")).exists(), f"{name}: COPY {src} is excluded or missing"
    assert not (build_context / ".git").exists() and not (build_context / "tests").exists()


def test_dockerignore_matcher():
    patterns = ["*", "!gateway/", "**/__pycache__"]
    assert dockerignore_excludes("tests/x.py", patterns)
    assert not dockerignore_excludes("gateway/aigw_gateway/app.py", patterns)
    assert dockerignore_excludes("gateway/aigw_gateway/__pycache__/app.cpython-311.pyc", patterns)


def test_wheel_holds_the_packages_and_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = zf.read(entry_points).decode()
    for module in ("aigw_gateway/cli.py", "aigw_gateway/app.py", "aigw_operator/main.py", "aigw_operator/cli.py",
                   "aigw_config/__init__.py"):
        assert module in names, module
    assert re.search(r"^aigw = aigw_gateway\.cli:main$", scripts, re.M), scripts


def _run_from_wheel(unpacked: Path, code: str) -> subprocess.CompletedProcess[str]:
    # Only the unpacked wheel on the path for aigw's packages: the editable checkout must not answer.
    env = {**os.environ, "PYTHONPATH": str(unpacked), "PYTHONNOUSERSITE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=unpacked, env=env, timeout=60)


def test_gateway_entrypoint_parses_with_the_aigw_command(dockerfiles, unpacked_wheel):
    _, (_, final) = dockerfiles["Dockerfile.gateway"]
    argv = _entrypoint(final)
    assert argv[0] == f"{VENV}/bin/aigw" and argv[1] == "serve"
    code = (
        "import sys, aigw_gateway, aigw_gateway.cli as cli\n"
        f"assert aigw_gateway.__file__.startswith({str(unpacked_wheel)!r}), aigw_gateway.__file__\n"
        f"args = cli.build_parser().parse_args({argv[1:]!r} + ['--kube-configmap', 'aigw-config', '--kube-secret', 'aigw-credentials'])\n"
        "assert (args.host, args.port) == ('0.0.0.0', 8080), args\n"
        "print('ok')\n"
    )
    out = _run_from_wheel(unpacked_wheel, code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("values_set, expected", [
    # standalone, all namespaces (the defaults)
    ("defaults", {"standalone": True, "peering_name": None, "clusterwide": True, "namespaces": ()}),
    # HA: peering instead of standalone, given namespaces, debug logs
    ("everything", {"standalone": None, "peering_name": "aigw-ha", "clusterwide": False,
                    "namespaces": ("team-a", "team-b"), "debug": True}),
])
def test_operator_entrypoint_and_chart_args_parse_with_kopf_run(dockerfiles, unpacked_wheel, render, values_set, expected):
    _, (_, final) = dockerfiles["Dockerfile.operator"]
    argv = _entrypoint(final)
    assert argv[:2] == [f"{VENV}/bin/aigw", "operator"]
    (deployment,) = [d for d in render(values_set).of_kind("Deployment") if d["metadata"]["name"].endswith("-operator")]
    chart_args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    # What `aigw operator` hands to kopf: its own module and namespace defaults, then these args.
    code = (
        "import sys, click, kopf.cli, aigw_operator.cli, aigw_operator.main\n"
        f"assert aigw_operator.main.__file__.startswith({str(unpacked_wheel)!r})\n"
        f"argv = {argv[2:] + chart_args!r}\n"
        "run = kopf.cli.main.commands['run']\n"
        "ctx = run.make_context('run', ['-m', 'aigw_operator.main', *argv])\n"
        "p = ctx.params\n"
        "assert p['liveness_endpoint'] == 'http://0.0.0.0:8080/healthz', p\n"
        f"expected = {expected!r}\n"
        "assert {k: p[k] for k in expected} == expected, p\n"
        "print('ok')\n"
    )
    out = _run_from_wheel(unpacked_wheel, code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr + out.stdout


# Each image installs the wheel with one extra; what that pulls in (transitively) must not
# contain the other process's frameworks.
IMAGE_EXTRAS = {
    "Dockerfile.gateway": ("gateway", {"kopf", "kubernetes"}),
    "Dockerfile.operator": ("operator", {"fastapi", "uvicorn", "redis", "opentelemetry-exporter-otlp-proto-http",
                                         "opentelemetry-sdk", "prometheus-client"}),
}


def _closure(extra: str) -> set[str]:
    """Distributions `pip install aigw[extra]` installs, from the installed metadata of the test venv."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"][extra]]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        dist = metadata.distribution(req.name)
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if not sub.marker or any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(sub)
    return seen


@pytest.mark.parametrize("name", DOCKERFILES)
def test_each_image_installs_its_own_extra_and_not_the_others_frameworks(dockerfiles, name):
    extra, excluded = IMAGE_EXTRAS[name]
    _, (builder, _) = dockerfiles[name]
    installs = [r for r in builder.all("RUN") if "pip install" in r]
    assert len(installs) == 1 and f'aigw-*.whl)[{extra}]"' in installs[0], installs
    closure = _closure(extra)
    assert not closure & excluded, f"{name}: aigw[{extra}] pulls in {sorted(closure & excluded)}"
    assert {"pydantic", "pyyaml"} <= closure

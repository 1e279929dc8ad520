"""The extras and the import graph: each process loads only its own extra.

- the operator never imports the gateway package (it has its own Kubernetes client);
- a serving gateway never imports kopf or the official `kubernetes` client (35 MB per worker);
- the bare package (contract + CLI) renders without either extra, and a subcommand whose extra is
  missing says which one to install.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import httpx

from tests.gateway.harness import free_port

ROOT = Path(__file__).resolve().parents[1]
PYTHONPATH = f"{ROOT / 'gateway'}{os.pathsep}{ROOT / 'operator'}"

# What only the extras bring (import names).
GATEWAY_ONLY = ("fastapi", "starlette", "uvicorn", "httpx", "httptools", "redis", "prometheus_client", "phonenumbers",
                "opentelemetry")
OPERATOR_ONLY = ("kopf", "kubernetes")

# A meta-path finder that stops the process (exit 97) at the first import of a listed package,
# or, with AIGW_TEST_UNINSTALLED, makes the listed packages look uninstalled.
GUARD = textwrap.dedent('''
    import os, sys
    forbidden = tuple(filter(None, os.environ.get("AIGW_TEST_FORBIDDEN", "").split(",")))
    uninstalled = tuple(filter(None, os.environ.get("AIGW_TEST_UNINSTALLED", "").split(",")))

    class Guard:
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if any(name == f or name.startswith(f + ".") for f in forbidden):  # a package and its modules
                sys.stderr.write(f"FORBIDDEN IMPORT {name}\\n"); sys.stderr.flush(); os._exit(97)
            if top in uninstalled:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Guard())
    sys.argv = ["aigw", *sys.argv[1:]]
    from aigw_gateway.cli import main
    raise SystemExit(main())
''')


def aigw_guarded(args: list[str], *, forbidden: tuple[str, ...] = (), uninstalled: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen[str]:
    """`aigw ARGS` in a subprocess that exits 97 at the first import of a `forbidden` package or
    module (with its submodules: "redis.asyncio" forbids redis.asyncio.client, not redis.exceptions)."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": PYTHONPATH, "AIGW_TEST_FORBIDDEN": ",".join(forbidden),
           "AIGW_TEST_UNINSTALLED": ",".join(uninstalled)}
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-c", GUARD, *args], env=env, cwd=str(ROOT), text=True,
                            **popen)  # type: ignore[call-overload]


def _static_imports(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_the_operator_imports_nothing_from_the_gateway_package():
    assert "aigw_gateway" not in _static_imports(ROOT / "operator" / "aigw_operator")
    code = ("import importlib, pkgutil, sys, aigw_operator\n"
            "for m in pkgutil.walk_packages(aigw_operator.__path__, 'aigw_operator.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aigw_gateway', 'fastapi', 'starlette', "
            "'uvicorn', 'redis', 'prometheus_client', 'opentelemetry', 'phonenumbers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": PYTHONPATH}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_gateway_module_imports_without_kopf_or_kubernetes():
    code = ("import importlib, pkgutil, sys, aigw_gateway\n"
            "for m in pkgutil.walk_packages(aigw_gateway.__path__, 'aigw_gateway.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes', 'aigw_operator')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": PYTHONPATH}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_aigw_serve_never_imports_kopf_or_kubernetes(tmp_path: Path):
    port = free_port()
    proc = aigw_guarded(["serve", "-f", str(ROOT / "examples" / "quickstart"), "--port", str(port)],
                 forbidden=(*OPERATOR_ONLY, "aigw_operator"))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    assert "FORBIDDEN IMPORT" not in stderr, stderr


def test_the_bare_package_renders_and_names_the_missing_extra(tmp_path: Path):
    bare = (*GATEWAY_ONLY, *OPERATOR_ONLY)
    out = aigw_guarded(["render", "-f", str(ROOT / "examples" / "quickstart"), "-o", str(tmp_path / "out")], forbidden=bare)
    _, stderr = out.communicate(timeout=60)
    assert out.returncode in (0, 1) and "FORBIDDEN IMPORT" not in stderr, stderr
    assert (tmp_path / "out" / "config.json").exists()

    serve = aigw_guarded(["serve", "-f", "x.yaml"], uninstalled=bare)
    _, stderr = serve.communicate(timeout=60)
    assert serve.returncode == 2
    assert "pip install 'aigw[gateway]'" in stderr, stderr

    operator = aigw_guarded(["operator"], uninstalled=OPERATOR_ONLY)
    _, stderr = operator.communicate(timeout=60)
    assert operator.returncode == 2
    assert "pip install 'aigw[operator]'" in stderr, stderr


def test_extras_split_the_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {r.split(">")[0].split("=")[0].split("[")[0].split("<")[0].strip().lower() for r in reqs}

    base, extras = names(project["dependencies"]), project["optional-dependencies"]
    assert base <= {"pydantic", "pyyaml", "orjson"}, base
    assert {"kopf", "kubernetes"} <= names(extras["operator"])
    assert not {"kopf", "kubernetes"} & names(extras["gateway"])
    assert not {"fastapi", "uvicorn", "redis", "opentelemetry-exporter-otlp-proto-http"} & names(extras["operator"])
    assert any(r.startswith("aigw[") and "gateway" in r and "operator" in r for r in extras["test"])

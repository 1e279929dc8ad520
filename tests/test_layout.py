"""Package boundaries: operator/ and gateway/ are folders, and the gateway never loads kopf."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operator_and_gateway_folders_are_not_packages():
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "gateway" / "__init__.py").exists()


def _imports(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_gateway_and_contract_never_import_kopf_or_the_operator():
    assert not {"kopf", "kubernetes", "aigw_operator"} & _imports(ROOT / "gateway" / "aigw_gateway")
    contract = _imports(ROOT / "gateway" / "aigw_config")
    assert contract <= {"__future__", "pydantic", "yaml", "orjson", "base64", "binascii", "collections", "dataclasses",
                        "typing", "hashlib", "hmac", "re", "datetime", "zlib"}, contract


def test_serving_the_gateway_loads_no_kopf():
    code = ("import sys; from aigw_gateway.app import create_app; from aigw_gateway.settings import Settings; "
            "create_app(Settings(files=('x',))); from aigw_gateway import cli, kube_source; "
            "print('kopf' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": f"{ROOT / 'gateway'}"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_operator_status_folder_keeps_pure_and_io_apart():
    """status/observe.py and status/patch.py turn reports into patches without I/O; reports.py and
    round.py do the talking. The old names (aggregate, aggregator, collector, statuspatch) are gone."""
    status = ROOT / "operator" / "aigw_operator" / "status"
    for pure in ("observe.py", "patch.py"):
        tree = ast.parse((status / pure).read_text())
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.split(".")[0] in {"httpx", "kopf", "kubernetes", "asyncio", "aigw_gateway"}
                    or m in {"..kube", "kube", "reports", "round"}}, (pure, imported)
    old = {"aggregate.py", "aggregator.py", "collector.py", "statuspatch.py"}
    assert not old & {p.name for p in (ROOT / "operator" / "aigw_operator").iterdir()}

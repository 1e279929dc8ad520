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

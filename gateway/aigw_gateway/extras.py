"""Which extra of the `aigw` distribution a subcommand needs, said plainly when it is missing.

The bare package holds the contract and `aigw render`; `aigw serve` needs `aigw[gateway]`,
`aigw operator` needs `aigw[operator]`.
"""

from __future__ import annotations

import importlib.util

NEEDS: dict[str, tuple[str, ...]] = {
    "gateway": ("fastapi", "uvicorn", "httpx", "httptools", "redis", "prometheus_client", "opentelemetry.sdk"),
    "operator": ("kopf", "kubernetes", "httpx"),
}


def missing_extra(command: str, extra: str) -> str | None:
    """None when every module of the extra is installed; else the one line to print. Found, not
    imported: a module loads when the config uses it (redis-py's client alone is 7 MB per worker)."""
    for module in NEEDS[extra]:
        try:
            if importlib.util.find_spec(module) is None:
                raise ModuleNotFoundError(module)
        except (ImportError, ValueError):
            return (f"aigw {command}: the '{extra}' extra is not installed (no module {module!r}); "
                    f"install it with: pip install 'aigw[{extra}]'")
    return None

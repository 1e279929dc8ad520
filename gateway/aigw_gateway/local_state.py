"""Secrets a gateway without an operator keeps for itself (`aigw serve -f`, `aigw render`).

The operator generates the PII hash key once and keeps it in `<gw>-credentials`. Run from files,
the gateway keeps it in a state folder instead, one file per namespace and gateway name
(`<state dir>/<namespace>/<gateway>/pii-hash-key`, mode 0600): generated at the first start,
read at every later one, so hash tags stay the same across restarts and across the processes of
one local gateway, and differ between gateways.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PII_KEY_FILE = "pii-hash-key"


def default_state_dir(env: dict[str, str] | os._Environ = os.environ) -> Path:
    """`$AIGW_STATE_DIR`, else `$XDG_STATE_HOME/aigw`, else `~/.local/state/aigw`."""
    if env.get("AIGW_STATE_DIR"):
        return Path(env["AIGW_STATE_DIR"])
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "aigw"


def pii_hash_key(state_dir: Path, namespace: str, gateway: str) -> str:
    """The gateway's PII hash key, created (random, 256 bits) if it does not exist yet."""
    path = state_dir / namespace / gateway / PII_KEY_FILE
    for _ in range(2):
        try:
            key = path.read_text(encoding="utf-8").strip()
            if key:
                return key
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:  # O_EXCL: of two processes starting together, one writes and both read its key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(32))
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise OSError(f"{path} is empty: delete it to generate a new PII hash key")
    return key

"""`aigw operator [kopf run options]`: run the operator with kopf's own command line."""

from __future__ import annotations

import sys


def main(args: list[str]) -> int:
    from kopf.cli import main as kopf_main

    scope = {"-n", "--namespace", "-A", "--all-namespaces"}
    extra = [] if any(a.split("=")[0] in scope for a in args) else ["--all-namespaces"]
    sys.argv = ["kopf", "run", "-m", "aigw_operator.main", *extra, *args]
    try:
        kopf_main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0

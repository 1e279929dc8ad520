"""`aigw operator [safety flags] [kopf run options]`: run the operator with kopf's own command line.

The safety flags are the operator's own (they set the environment OperatorConfig reads, see
settings.py); everything else goes to `kopf run`:
  --allowed-image REPO        an image repository (or a prefix ending in "/") AIGateways may run;
                              repeatable; default: the repository of AIGW_GATEWAY_IMAGE
  --allow-any-image           no image allow-list
  --allow-private-base-urls   ProviderCredential baseURLs may name link-local, loopback and metadata
                              addresses (e.g. a model server on a node address)
  --read-unlabelled-secrets   read referenced Secrets without the label aigw.dev/secret=true
"""

from __future__ import annotations

import os
import sys

_SWITCHES = {
    "--allow-any-image": ("AIGW_OPERATOR_ALLOWED_IMAGES", "*"),
    "--allow-private-base-urls": ("AIGW_OPERATOR_ALLOW_PRIVATE_BASE_URLS", "true"),
    "--read-unlabelled-secrets": ("AIGW_OPERATOR_REQUIRE_SECRET_LABEL", "false"),
}


def split_safety_flags(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """(environment the safety flags set, the arguments left for kopf run)."""
    env: dict[str, str] = {}
    images: list[str] = []
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in _SWITCHES:
            key, value = _SWITCHES[arg]
            env[key] = value
        elif arg == "--allowed-image":
            images.append(next(it, ""))
        elif arg.startswith("--allowed-image="):
            images.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    if images and env.get("AIGW_OPERATOR_ALLOWED_IMAGES") != "*":
        env["AIGW_OPERATOR_ALLOWED_IMAGES"] = ",".join(i for i in images if i)
    return env, rest


def main(args: list[str]) -> int:
    from kopf.cli import main as kopf_main

    env, args = split_safety_flags(args)
    os.environ.update(env)
    scope = {"-n", "--namespace", "-A", "--all-namespaces"}
    extra = [] if any(a.split("=")[0] in scope for a in args) else ["--all-namespaces"]
    sys.argv = ["kopf", "run", "-m", "aigw_operator.main", *extra, *args]
    try:
        kopf_main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0

"""Pure translation: an AIGateway's `spec.ledger` -> the `<gateway>-ledger` writer and what the
gateway pods need to emit usage events.

The writer is one Deployment of one replica (one consumer of the gateway's usage stream;
`Recreate`, so two never overlap in a rollout), with its own ServiceAccount that mounts no API
token (it talks to Redis and PostgreSQL only). The PostgreSQL URL reaches the pods as an env
var from the named Secret key; the gateway pods get it too (for GET /v1/usage/history) and run
`--no-ledger-writer`. Without `spec.redis` the gateway pods write their in-process queue
directly (the writer Deployment then has no stream to read and is not created).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw_config.kinds import AIGatewaySpec

WRITER_RESOURCES = {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}}
RUN_AS = 65532


@dataclass(frozen=True)
class LedgerOptions:
    secret: tuple[str, str]  # (Secret name, key) of the PostgreSQL URL
    retention_days: int = 400

    @classmethod
    def from_spec(cls, spec: AIGatewaySpec) -> "LedgerOptions | None":
        ledger = getattr(spec, "ledger", None)
        if ledger is None:
            return None
        ref = ledger.postgres.url_secret_ref
        return cls((ref.name, ref.key), ledger.retention_days)


def ledger_name(gateway: str) -> str:
    return f"{gateway}-ledger"


def ledger_selector(gateway: str) -> dict[str, str]:
    # Not the gateway pods' selector: the gateway Service must never send traffic to the writer.
    return {"app.kubernetes.io/name": "aigw-ledger", "aigw.dev/gateway": gateway}


def url_env(options: LedgerOptions) -> dict[str, Any]:
    name, key = options.secret
    return {"name": "AIGW_LEDGER_URL", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def gateway_pod_additions(options: LedgerOptions | None) -> tuple[list[dict[str, Any]], list[str]]:
    """(env, extra args) of the gateway container."""
    if options is None:
        return [], []
    return [url_env(options)], ["--no-ledger-writer"]


def writer_deployment_spec(gateway: str, namespace: str, image: str, options: LedgerOptions,
                           redis_env: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    selector = ledger_selector(gateway)
    container = {
        "name": "ledger",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["aigw"],
        "args": ["ledger", "--namespace", namespace, "--gateway", gateway,
                 "--retention-days", str(options.retention_days)],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                redis_env, url_env(options)],
        "resources": WRITER_RESOURCES,
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
        },
    }  # fmt: skip
    return {"spec": {
        "replicas": 1,
        "selector": {"matchLabels": selector},
        "strategy": {"type": "Recreate"},
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": {**labels, **selector, "app.kubernetes.io/component": "ledger"}},
            "spec": {
                "serviceAccountName": ledger_name(gateway),
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 15,
                "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [container],
            },
        },
    }}  # fmt: skip


def retired(current: dict[str, Any]) -> dict[str, Any] | None:
    """The writer Deployment scaled to zero once `spec.ledger` is removed (None: already is)."""
    if (current.get("spec") or {}).get("replicas") == 0:
        return None
    body = {**current, "spec": {**current["spec"], "replicas": 0}}
    return body

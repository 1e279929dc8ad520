"""Pure translation for the operator: render results -> ConfigMap, Secret and status patches.

No I/O: everything here takes and returns plain dicts, so it is unit-tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aigw_config.base import API_VERSION
from aigw_config.config import CONFIG_KEY, CREDENTIALS_KEY, GatewayConfig, GatewayCredentials, load_config, load_credentials
from aigw_config.packing import configmap_entries, configmap_fields, pack, secret_data, secret_entries, unpack
from aigw_config.render import RenderResult, Verdict
from aigw_config.status import ACCEPTED, REASON_NOT_SELECTED, Condition, merge_condition

MANAGED_BY = {"app.kubernetes.io/managed-by": "aigw-operator"}
GENERATION_ANNOTATION = "aigw.dev/config-generation"
HASH_ANNOTATION = "aigw.dev/config-hash"


def configmap_name(gateway: str) -> str:
    return f"{gateway}-config"


def secret_name(gateway: str) -> str:
    return f"{gateway}-credentials"


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(gateway: dict[str, Any], name: str, config: GatewayConfig) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": gateway["metadata"]["namespace"],
        "labels": {**MANAGED_BY, "app.kubernetes.io/name": "aigw", "aigw.dev/gateway": gateway["metadata"]["name"]},
        "annotations": {GENERATION_ANNOTATION: str(config.generation), HASH_ANNOTATION: config.hash},
        "ownerReferences": [owner_reference(gateway)],
    }


def config_objects(gateway: dict[str, Any], config: GatewayConfig, credentials: GatewayCredentials) -> tuple[dict, dict]:
    """The ConfigMap and Secret for a sealed config, owned by the AIGateway.

    Documents too large for one object are stored gzip-compressed (aigw_config.packing);
    raises packing.DocumentTooLarge when even that does not fit.
    """
    gw_name = gateway["metadata"]["name"]
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(gateway, configmap_name(gw_name), config),
        **configmap_fields(pack(CONFIG_KEY, config.to_json())),
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(gateway, secret_name(gw_name), config),
        "data": secret_data(pack(CREDENTIALS_KEY, credentials.to_json())),
    }
    return configmap, secret


def previous_pair(configmap: dict | None, secret: dict | None) -> tuple[GatewayConfig, GatewayCredentials] | None:
    """The last rendered pair, or None if absent or unreadable (then everything renders afresh)."""
    if not configmap or not secret:
        return None
    try:
        config_doc = unpack(configmap_entries(configmap), CONFIG_KEY)
        credentials_doc = unpack(secret_entries(secret), CREDENTIALS_KEY)
        if config_doc is None or credentials_doc is None:
            return None
        return load_config(config_doc), load_credentials(credentials_doc)
    except (KeyError, ValueError, TypeError):
        return None


def seal(result: RenderResult, previous: tuple[GatewayConfig, GatewayCredentials] | None,
         new_token: Callable[[], str]) -> tuple[GatewayConfig, GatewayCredentials]:
    """The config and credentials to write: the report token and the PII hash key kept from the
    previous render (fresh ones from `new_token` only for a gateway that has none: a new key
    would change every hash tag), the credentials hash matching them, and the generation bumped
    only when the content changed."""
    token = previous[1].report_token if previous is not None and previous[1].report_token else new_token()
    pii_key = previous[1].pii_hash_key if previous is not None and previous[1].pii_hash_key else new_token()
    credentials = result.credentials.model_copy(update={"report_token": token, "pii_hash_key": pii_key})
    unsealed = result.config.model_copy(update={"credentials_hash": credentials.content_hash()})
    return unsealed.sealed(next_generation(previous, unsealed)), credentials


def next_generation(previous: tuple[GatewayConfig, GatewayCredentials] | None, unsealed: GatewayConfig) -> int:
    if previous is None:
        return 1
    old = previous[0]
    return old.generation if old.hash == unsealed.content_hash() else old.generation + 1


def accepted_condition(verdict: Verdict | None, generation: int) -> Condition:
    if verdict is None:
        return Condition(
            type=ACCEPTED, status="False", reason=REASON_NOT_SELECTED,
            message="no valid AIGateway in this namespace selects this object", observed_generation=generation,
        )
    # `served` with a non-Accepted reason (an invalid edit whose last valid version serves) is still
    # not an acceptance of *this* generation.
    ok = verdict.served and verdict.reason in ("Accepted", "PartiallyResolved")
    return Condition(
        type=ACCEPTED, status="True" if ok else "False", reason=verdict.reason,
        message=verdict.message, observed_generation=generation,
    )


def status_patch(current_status: dict | None, condition: Condition, generation: int,
                 extra: dict[str, Any] | None = None) -> dict | None:
    """A merge patch for /status, or None when nothing would change (no needless writes)."""
    current = current_status or {}
    conditions = merge_condition(list(current.get("conditions") or []), condition)
    wanted: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions, **(extra or {})}
    unchanged = all(current.get(k) == v for k, v in wanted.items() if k != "conditions") and _same_conditions(
        current.get("conditions") or [], conditions
    )
    return None if unchanged else {"status": wanted}


def _same_conditions(a: list[dict], b: list[dict]) -> bool:
    strip = lambda conds: sorted(  # noqa: E731
        ({k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds), key=lambda c: c.get("type", "")
    )
    return strip(a) == strip(b)


def gateway_status_extra(result: RenderResult, config: GatewayConfig) -> dict[str, Any]:
    return {
        "configGeneration": config.generation,
        "configHash": config.hash,
        "routes": len(config.routes),
        "tenants": len(config.tenants),
    }


def referenced_secrets(kind: str, spec: dict[str, Any]) -> set[str]:
    """Secret names an object's (possibly invalid) spec refers to."""
    names: set[str] = set()
    if not isinstance(spec, dict):
        return names
    refs: list[Any] = []
    if kind == "ProviderCredential":
        refs.append(spec.get("apiKeySecretRef"))
    elif kind == "TenantQuota":
        refs.extend(spec.get("apiKeySecretRefs") or [])
    elif kind == "AIGateway":
        refs.append((spec.get("redis") or {}).get("urlSecretRef"))
        refs.append(((spec.get("ledger") or {}).get("postgres") or {}).get("urlSecretRef"))
    for ref in refs:
        if isinstance(ref, dict) and isinstance(ref.get("name"), str):
            names.add(ref["name"])
    return names


API = API_VERSION

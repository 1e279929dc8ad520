"""LedgerReady on a real API server: spec.ledger.lagThreshold defaulted and bounded by the CRD; the
status patch the operator writes for a failing ledger kept by the status subresource (not pruned),
and read back with the kubectl line docs/ledger.md gives."""

from __future__ import annotations

import json

from aigw_config.report import LedgerReport, LedgerWriterReport, PodReport
from aigw_operator.status.ledger import LedgerPolicy, observe_ledger
from aigw_operator.status.observe import Observation
from aigw_operator.status.patch import status_update

from .support import Cluster

G = "aigw.dev/v1alpha1"
LEDGER = {"postgres": {"urlSecretRef": {"name": "pg", "key": "uri"}}}


def gateway(name: str, namespace: str, ledger: dict) -> dict:
    return {"apiVersion": G, "kind": "AIGateway", "metadata": {"name": name, "namespace": namespace},
            "spec": {"ledger": ledger}}


def test_ledger_ready_and_status_ledger_survive_the_api_server(cluster: Cluster, crds: list[str], namespace: str):
    cluster.apply(gateway("gw", namespace, LEDGER))
    stored = cluster.get_json("aigateway", "gw", "-n", namespace)
    assert stored["spec"]["ledger"]["lagThreshold"] == 10000  # the CRD's default

    refused = cluster.apply(gateway("bad", namespace, {**LEDGER, "lagThreshold": 0}), check=False)
    assert refused.returncode != 0 and "lagThreshold" in refused.stderr

    failing = LedgerWriterReport(consumer="gw-ledger-0", postgres="failing", error="OperationalError: connection refused")
    report = PodReport(pod="gw-a", generation=1, ledger=LedgerReport(backlog=42, writer=failing))
    condition, fields = observe_ledger("gw", LedgerPolicy(10000), [report])
    patch, _ = status_update(stored.get("status"), Observation({"ledger": fields}, [condition]), 1)
    cluster.kubectl("patch", "aigateway", "gw", "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps(patch))

    status = cluster.get_json("aigateway", "gw", "-n", namespace)["status"]
    assert status["ledger"] == {"backlog": 42, "lagThreshold": 10000, "postgres": "failing",
                                "writer": "gw-ledger-0"} | {"rowsWritten": 0}
    jsonpath = '{.status.conditions[?(@.type=="LedgerReady")].reason}: {.status.conditions[?(@.type=="LedgerReady")].message}'
    line = cluster.kubectl("get", "aigw", "gw", "-n", namespace, "-o", f"jsonpath={jsonpath}").stdout
    assert line.startswith("PostgresUnreachable: the ledger cannot write PostgreSQL (OperationalError: connection refused)")

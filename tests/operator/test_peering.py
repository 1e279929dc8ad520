"""HA: two operator replicas with kopf peering; one works, the other waits and takes over when
the active one dies without a goodbye (SIGKILL)."""

from __future__ import annotations

import time

import orjson
import pytest

from aigw_operator.peering import PEERING_CRDS, peering_object
from tests.operator.support import G, Cluster, OperatorProcess, cr, wait_for

LIFETIME = 4  # seconds a silent peer is trusted; the handover waits this long at most


@pytest.fixture
def cluster(kube_emulator):
    c = Cluster(kube_emulator.url)
    c.install_crds()
    for crd in PEERING_CRDS:
        c.create_cluster_object(crd)
    c.apply(peering_object("aigw", "default"))
    return c


def generation(cluster: Cluster) -> int:
    cm = cluster.get("v1", "ConfigMap", "gw-config")
    return orjson.loads(cm["data"]["config.json"])["generation"] if cm else 0


def test_standby_takes_over_when_the_active_operator_dies(cluster, kube_emulator, tmp_path, fake_openai):
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    args = ["--peering", "aigw", "--namespace", "default"]
    env = {"AIGW_OPERATOR_PEERING_LIFETIME": str(LIFETIME), "AIGW_OPERATOR_REPORT_INTERVAL": "1"}
    active = OperatorProcess(kubeconfig, tmp_path / "active.log", args, {**env, "POD_ID": "op-active",
                                                                          "AIGW_OPERATOR_PRIORITY": "-10"})
    standby = None
    try:
        cluster.apply(cr("ProviderCredential", "up", {"provider": "openai-compatible", "baseURL": fake_openai.base_url}))
        cluster.apply(cr("ModelRoute", "chat", {"model": "gpt", "targets": [{"credentialRef": "up"}]}))
        cluster.apply(cr("AIGateway", "gw", {}))
        wait_for("the first operator renders", lambda: generation(cluster) == 1, 30, logs=active.log)

        standby = OperatorProcess(kubeconfig, tmp_path / "standby.log", args, {**env, "POD_ID": "op-standby",
                                                                               "AIGW_OPERATOR_PRIORITY": "-20"})
        wait_for("both replicas in the peering object",
                 lambda: {"op-active", "op-standby"} <= set(cluster.get("kopf.dev/v1", "KopfPeering", "aigw").get("status") or {}),
                 30, logs=standby.log)
        # kopf starts a peered replica paused; it resumes only while no higher-priority peer lives.
        wait_for("the standby holds its watches", lambda: "(blockers: aigw@default)" in standby.log(), 30,
                 logs=standby.log)

        # While both run, one works: a change is rendered once, by the active replica.
        cluster.patch(G, "ModelRoute", "chat", {"spec": {"aliases": ["a"]}})
        wait_for("the active replica renders generation 2", lambda: generation(cluster) == 2, 20, logs=active.log)
        wait_for("the active replica logs generation 2", lambda: "config generation 2" in active.log(), 10,
                 logs=active.log)
        time.sleep(1.0)  # a window in which a wrongly resumed standby would render too
        assert "config generation" not in standby.log()
        assert "Resuming operations" not in standby.log()

        # The active replica dies without deregistering; the standby waits out its lifetime and resumes.
        active.kill()
        killed = time.monotonic()
        cluster.patch(G, "ModelRoute", "chat", {"spec": {"aliases": ["b"]}})
        wait_for("the standby renders generation 3", lambda: generation(cluster) == 3, LIFETIME + 30,
                 logs=standby.log)
        handover = time.monotonic() - killed
        print(f"\nhandover after SIGKILL of the active operator (peering lifetime {LIFETIME}s): {handover:.1f}s")
        assert "Resuming operations after the pause" in standby.log()
        # It took over the status rounds too (the AIGateway's daemon runs in the standby now).
        wait_for("live status from the new active replica",
                 lambda: cluster.condition("AIGateway", "gw", "Ready").get("reason") == "NoReadyPods", 20,
                 logs=standby.log)
        assert "Traceback" not in standby.log(), standby.log()[-4000:]
    finally:
        active.stop()
        if standby is not None:
            standby.stop()

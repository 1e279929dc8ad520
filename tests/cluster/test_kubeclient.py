"""The operator's client (aigw_operator.kubeclient, on the official `kubernetes` package) against
the real API server: dict CRUD for core and custom kinds, errors mapped once into KubeError."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client import Configuration
from kubernetes.config import load_kube_config

from aigw_operator.kube import Kube
from aigw_operator.kubeclient import KubeClient, KubeError

from .support import Cluster


def _client(kubeconfig: Path) -> KubeClient:
    configuration = Configuration()
    load_kube_config(config_file=str(kubeconfig), client_configuration=configuration, persist_config=False)
    return KubeClient(configuration)


async def test_crud_and_mapped_errors(cluster: Cluster, crds: list[str], namespace: str, tmp_path: Path):
    api = _client(cluster.kubeconfig)
    kube = Kube(api)
    try:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace},
              "data": {"k": "1"}}
        assert await kube.get_configmap(namespace, "c") is None
        await kube.upsert("configmaps", cm, None)
        await kube.upsert("configmaps", {**cm, "data": {"k": "2"}}, None)  # 409 on create: replaced instead
        assert (await kube.get_configmap(namespace, "c"))["data"] == {"k": "2"}
        with pytest.raises(KubeError) as conflict:
            await api.create("v1", "configmaps", cm)
        assert conflict.value.conflict and conflict.value.reason == "AlreadyExists"

        route = {"apiVersion": "aigw.dev/v1alpha1", "kind": "ModelRoute",
                 "metadata": {"name": "r", "namespace": namespace},
                 "spec": {"model": "m", "targets": [{"credentialRef": "c"}]}}
        await kube.create("aigw.dev/v1alpha1", "modelroutes", route)
        (listed,) = await kube.list_kind("ModelRoute", namespace)
        assert listed["kind"] == "ModelRoute" and listed["spec"]["model"] == "m"
        await kube.patch_status("ModelRoute", namespace, "r", {"status": {"observedGeneration": 1}})
        got = await kube.get("aigw.dev/v1alpha1", "modelroutes", namespace, "r")
        assert got["status"]["observedGeneration"] == 1
        await kube.patch_status("ModelRoute", namespace, "gone", {"status": {}})  # 404: nothing to report on
        with pytest.raises(KubeError) as invalid:  # the CRD schema answers 422, mapped like any other
            await kube.create("aigw.dev/v1alpha1", "modelroutes", {**route, "metadata": {**route["metadata"], "name": "x"},
                                                                  "spec": {"model": "m", "targets": []}})
        assert invalid.value.status == 422 and "targets" in invalid.value.message
        await kube.delete("aigw.dev/v1alpha1", "modelroutes", namespace, "r")
        await kube.delete("aigw.dev/v1alpha1", "modelroutes", namespace, "r")  # 404 on delete: fine
    finally:
        await api.close()

    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    nobody = _client(cluster.token_kubeconfig(cluster.token("nobody", namespace), tmp_path, namespace, "nobody"))
    try:
        with pytest.raises(KubeError) as forbidden:
            await Kube(nobody).get_secret(namespace, "anything")
        assert forbidden.value.status == 403 and forbidden.value.reason == "Forbidden"
    finally:
        await nobody.close()

    configuration = Configuration()
    configuration.host = "https://127.0.0.1:9"  # nothing listens: the server is not reached
    configuration.retries = 0
    unreachable = KubeClient(configuration)
    try:
        with pytest.raises(KubeError) as down:
            await Kube(unreachable).get_configmap(namespace, "c")
        assert down.value.status == 0
    finally:
        await unreachable.close()

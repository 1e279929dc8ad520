"""Documents too large for one ConfigMap or Secret are stored compressed, never truncated."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os

import httpx
import orjson
import pytest

from aigw_config.config import GatewayConfig, GatewayCredentials, ProviderConfig, RouteConfig, TargetConfig
from aigw_config.packing import (
    GZ_SUFFIX,
    OBJECT_DATA_LIMIT,
    PACK_THRESHOLD,
    DocumentTooLarge,
    configmap_entries,
    configmap_fields,
    pack,
    secret_data,
    secret_entries,
    unpack,
)
from aigw_gateway.kube_source import KubeSource
from aigw_gateway.kube_watch import Connection, KubeWatch
from aigw_gateway.runtime import RuntimeHolder
from aigw_gateway.settings import KubeTarget
from tests.kube.fixtures import post_object


def _big_json(size: int) -> bytes:
    routes = []
    i = 0
    while sum(len(r) for r in routes) < size:
        routes.append(orjson.dumps({"name": f"route-{i}", "model": f"model-{i}", "aliases": [f"alias-{i}-{j}" for j in range(4)]}))
        i += 1
    return b"[" + b",".join(routes) + b"]"


def test_small_documents_stay_readable_text():
    doc = b'{"routes": []}'
    entries = pack("config.json", doc)
    assert entries == {"config.json": doc}
    fields = configmap_fields(entries)
    assert fields == {"data": {"config.json": '{"routes": []}'}}
    assert unpack(configmap_entries(fields), "config.json") == doc


def test_large_documents_are_gzipped_into_binary_data_and_read_back_whole():
    doc = _big_json(OBJECT_DATA_LIMIT + 200_000)
    assert len(doc) > OBJECT_DATA_LIMIT
    entries = pack("config.json", doc)
    assert list(entries) == ["config.json" + GZ_SUFFIX]
    fields = configmap_fields(entries)
    assert list(fields) == ["binaryData"]
    stored = fields["binaryData"]["config.json.gz"]
    assert len(stored) < OBJECT_DATA_LIMIT
    assert gzip.decompress(base64.b64decode(stored)) == doc  # plain gzip: `base64 -d | gunzip` reads it
    assert unpack(configmap_entries(fields), "config.json") == doc
    assert pack("config.json", doc) == entries  # deterministic: an unchanged render writes the same bytes


def test_secrets_use_the_same_forms():
    doc = _big_json(PACK_THRESHOLD + 10)
    data = secret_data(pack("credentials.json", doc))
    assert list(data) == ["credentials.json.gz"]
    assert unpack(secret_entries({"data": data}), "credentials.json") == doc


def test_a_document_that_does_not_fit_even_compressed_is_refused_not_truncated():
    incompressible = base64.b64encode(os.urandom(900_000))
    with pytest.raises(DocumentTooLarge, match="over the 1048576-byte limit"):
        pack("config.json", incompressible)


def test_corrupt_or_truncated_data_is_an_error_not_a_partial_document():
    packed = pack("c.json", _big_json(PACK_THRESHOLD + 1))["c.json.gz"]
    with pytest.raises(ValueError, match="truncated"):
        unpack({"c.json.gz": packed[: len(packed) // 2]}, "c.json")
    with pytest.raises(ValueError, match="not valid gzip"):
        unpack({"c.json.gz": b"definitely not gzip"}, "c.json")
    with pytest.raises(ValueError, match="not valid base64"):
        configmap_entries({"binaryData": {"c.json.gz": "***"}})
    assert unpack({}, "c.json") is None


async def test_the_gateway_reads_packed_objects_through_the_api_and_refuses_corrupt_ones(kube_emulator):
    credentials = GatewayCredentials(report_token="t")
    routes = tuple(RouteConfig(name=f"r{i}", model=f"m{i}", aliases=tuple(f"m{i}-{j}" for j in range(5)),
                               targets=(TargetConfig(credential="p", model=f"u{i}-{k}") for k in range(4)))
                   for i in range(1000))
    config = GatewayConfig(providers=(ProviderConfig(name="p", provider="openai", baseURL="http://x"),),
                           routes=routes, credentials_hash=credentials.content_hash()).sealed(3)
    assert len(config.to_json()) > OBJECT_DATA_LIMIT
    meta = {"name": "gw-config", "namespace": "default"}
    post_object(kube_emulator.url, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                                    **configmap_fields(pack("config.json", config.to_json()))})
    post_object(kube_emulator.url, {"apiVersion": "v1", "kind": "Secret", "metadata": {**meta, "name": "gw-credentials"},
                                    "data": secret_data(pack("credentials.json", credentials.to_json()))})
    holder = RuntimeHolder()
    source = KubeSource(KubeTarget("default", "gw-config", "gw-credentials"), holder,
                        KubeWatch(Connection(server=kube_emulator.url)))
    task = asyncio.create_task(source.run())
    try:
        for _ in range(200):
            if holder.current is not None:
                break
            await asyncio.sleep(0.05)
        assert holder.current is not None and holder.current.generation == 3
        assert len(holder.current.config.routes) == 1000
        # A corrupt packed document is refused; the loaded config keeps serving.
        async with httpx.AsyncClient(base_url=kube_emulator.url) as client:
            r = await client.patch("/api/v1/namespaces/default/configmaps/gw-config",
                                   json={"binaryData": {"config.json.gz": base64.b64encode(b"not gzip").decode()}},
                                   headers={"content-type": "application/merge-patch+json"})
            assert r.status_code == 200, r.text
        for _ in range(200):
            if holder.last_error:
                break
            await asyncio.sleep(0.05)
        assert "not valid gzip" in (holder.last_error or "")
        assert holder.current.generation == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""The safety rules' pure parts: which hosts, images and Secrets pass (policy.py), and the flags."""

from __future__ import annotations

import pytest

from aigw_operator.cli import split_safety_flags
from aigw_operator.policy import Policy, host_problem, image_repository
from aigw_operator.settings import OperatorConfig

REFUSED = ["169.254.169.254", "169.254.1.1", "[fe80::1]", "fe80::1%25eth0", "fd00:ec2::254", "100.100.100.200",
           "metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata", "instance-data", "127.0.0.1", "127.1",
           "localhost", "api.localhost", "[::1]", "0.0.0.0", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376",
           "::ffff:169.254.169.254"]
ALLOWED = ["api.openai.com", "10.0.0.5", "192.168.1.10", "172.16.0.1", "ollama.ollama.svc.cluster.local", "[fd00::7]",
           "2001:db8::1", "8.8.8.8"]


@pytest.mark.parametrize("host", REFUSED)
def test_link_local_loopback_and_metadata_hosts_are_refused(host):
    assert host_problem(host) is not None


@pytest.mark.parametrize("host", ALLOWED)
def test_public_and_private_network_hosts_pass(host):
    assert host_problem(host) is None


def test_base_url_rule_and_its_switch():
    spec = {"provider": "openai-compatible", "baseURL": "http://169.254.169.254/latest/meta-data"}
    assert "spec.baseURL" in Policy().base_url_problem(spec)
    assert Policy(allow_private_base_urls=True).base_url_problem(spec) is None
    assert Policy().base_url_problem({"provider": "openai"}) is None  # provider defaults are public


def test_images_match_by_repository_or_prefix():
    assert image_repository("ghcr.io/aigw-dev/aigw-gateway:0.1.0") == "ghcr.io/aigw-dev/aigw-gateway"
    assert image_repository("localhost:5000/gw@sha256:abc") == "localhost:5000/gw"
    policy = Policy(allowed_images=("ghcr.io/aigw-dev/aigw-gateway", "registry.example/aigw/"))
    assert policy.image_problem("ghcr.io/aigw-dev/aigw-gateway@sha256:0123") is None
    assert policy.image_problem("registry.example/aigw/gateway:2") is None
    assert policy.image_problem("ghcr.io/aigw-dev/aigw-gateway-evil:1") is not None
    assert policy.image_problem("registry.example/aigwx/gateway:2") is not None
    assert Policy().image_problem("anything/at:all") is None  # an empty list allows any image


def test_secret_label_rule():
    labelled = {"metadata": {"labels": {"aigw.dev/secret": "true"}}}
    assert Policy().secret_readable(labelled) and not Policy().secret_readable({"metadata": {}})
    assert Policy(require_secret_label=False).secret_readable({"metadata": {}})


def test_operator_flags_become_settings(monkeypatch):
    env, rest = split_safety_flags(["--allowed-image", "a/b", "--allowed-image=c/", "--standalone",
                                    "--allow-private-base-urls", "--read-unlabelled-secrets", "-n", "ns"])
    assert rest == ["--standalone", "-n", "ns"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    policy = OperatorConfig.from_env().policy
    assert policy == Policy(allowed_images=("a/b", "c/"), allow_private_base_urls=True, require_secret_label=False)
    monkeypatch.setenv("AIGW_OPERATOR_ALLOWED_IMAGES", "*")
    assert OperatorConfig.from_env().policy.allowed_images == ()

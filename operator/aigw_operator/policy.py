"""What the operator refuses to do on behalf of whoever can edit the aigw kinds (pure, no I/O).

The chart aggregates the aigw kinds into the `edit` role, so a namespace editor who cannot read
Secrets or run arbitrary images could otherwise make the operator (which can) do it for them:
- run an image outside the allow-list (`AIGateway.spec.image`)            -> ImageNotAllowed;
- send a provider key to a link-local, loopback or cloud-metadata address
  (`ProviderCredential.spec.baseURL`)                                      -> Invalid;
- read (and ship to a pod or a provider) any Secret of the namespace      -> SecretNotLabelled,
  unless the Secret's owner opted in with the label `aigw.dev/secret: "true"`.

Base URLs are judged by their literal host: IP literals (also the shorthand IPv4 forms that
inet_aton accepts, and IPv4-mapped IPv6) and known metadata host names. Host names are not
resolved: the operator's resolver is not the pod's, and a name that resolves to a public address
now can resolve to a private one later (DNS rebinding), so a lookup would promise what it cannot
keep. NetworkPolicy egress rules are the tool for names.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SECRET_LABEL = "aigw.dev/secret"
SECRET_LABEL_VALUE = "true"

# Cloud instance-metadata endpoints reachable by name (their addresses are covered below).
METADATA_HOSTS = frozenset({
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
    "metadata.azure.internal", "metadata.platformequinix.com", "metadata.tencentyun.com",
})
# Metadata addresses that are neither link-local nor loopback.
METADATA_ADDRESSES = frozenset({
    ipaddress.ip_address("fd00:ec2::254"),   # AWS IMDS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
})
_SHORTHAND_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


def image_repository(image: str) -> str:
    """`registry/path/name` of an image reference, without its tag or digest."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > last_slash else name


def _blocked_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr in METADATA_ADDRESSES or str(addr) == "169.254.169.254":
        return "a cloud metadata address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_unspecified:
        return "the unspecified address (this host)"
    return None


def host_problem(host: str) -> str | None:
    """Why requests to `host` are refused, or None."""
    host = host.strip("[]").rstrip(".").lower()
    if host in METADATA_HOSTS:
        return "a cloud metadata host"
    if host == "localhost" or host.endswith(".localhost"):
        return "a loopback address"
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if not _SHORTHAND_IPV4.match(host):
            return None
        try:  # 2852039166, 0xa9fea9fe, 169.254.43518: what many HTTP clients accept as IPv4
            addr = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return _blocked_address(addr)


@dataclass(frozen=True)
class Policy:
    """The operator's safety rules, from OperatorConfig (flags, environment, chart values)."""

    allowed_images: tuple[str, ...] = ()  # repositories, or prefixes ending in "/"; empty: any image
    allow_private_base_urls: bool = False
    require_secret_label: bool = True

    def image_problem(self, image: str) -> str | None:
        if not self.allowed_images:
            return None
        repo = image_repository(image)
        for allowed in self.allowed_images:
            if repo == image_repository(allowed) or (allowed.endswith("/") and repo.startswith(allowed)):
                return None
        return (f"spec.image: {image!r} is not in the operator's image allow-list "
                f"({', '.join(self.allowed_images)}); ask the operator's administrator to allow its repository")

    def base_url_problem(self, spec: Any) -> str | None:
        """Why a ProviderCredential spec's baseURL is refused, or None (unparseable specs: None)."""
        if self.allow_private_base_urls or not isinstance(spec, dict):
            return None
        url = spec.get("baseURL")
        if not isinstance(url, str) or not url:
            return None
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            return None  # the spec's own validation reports it
        why = host_problem(host)
        if why is None:
            return None
        return (f"spec.baseURL: {host} is {why}; provider keys are never sent there "
                "(an operator started with --allow-private-base-urls allows it)")

    def secret_readable(self, secret: dict[str, Any]) -> bool:
        if not self.require_secret_label:
            return True
        labels = (secret.get("metadata") or {}).get("labels") or {}
        return labels.get(SECRET_LABEL) == SECRET_LABEL_VALUE


def not_labelled_message(namespace: str, name: str) -> str:
    return (f"Secret {name!r} is not labelled {SECRET_LABEL}={SECRET_LABEL_VALUE}, so the operator does not read it "
            f"(kubectl label secret {name} -n {namespace} {SECRET_LABEL}={SECRET_LABEL_VALUE})")

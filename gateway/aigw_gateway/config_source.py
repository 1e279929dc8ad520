"""Where a gateway's config comes from, and how changes reach the RuntimeHolder.

- `FileSource`: CR YAML files (`aigw serve -f`), rendered locally with the same pure
  translation the operator uses.
- `DirSource`: a rendered config directory (`config.json` + `credentials.json`), as written by
  `aigw render -o` or mounted into a pod.
- `aigw_gateway.kube_source.KubeSource`: the ConfigMap/Secret pair, watched through the API.

Sources poll file metadata (stat is cheap and survives editors that replace files by rename,
and Kubernetes' symlink-swapped volume mounts). A change is loaded, validated and offered; a
failure is logged and the last good config keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aigw_config.config import CONFIG_KEY, CREDENTIALS_KEY, GatewayConfig, GatewayCredentials, load_config, load_credentials
from aigw_config.render import render
from aigw_config.resources import ConfigError, Resource, parse_documents
from aigw_config.status import REASON_ACCEPTED

from .local_state import default_state_dir, pii_hash_key
from .runtime import RuntimeHolder

log = logging.getLogger("aigw.config")

YAML_SUFFIXES = (".yaml", ".yml", ".json")


class PollingSource:
    """Base: poll a signature of the inputs; reload when it changes."""

    def __init__(self, holder: RuntimeHolder, poll_interval: float = 0.25) -> None:
        self.holder = holder
        self.poll_interval = poll_interval
        self._signature: object = None

    def signature(self) -> object:
        raise NotImplementedError

    def load(self) -> None:
        raise NotImplementedError

    def check(self) -> None:
        sig = self.signature()
        if sig != self._signature:
            self._signature = sig
            self.load()

    async def run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:  # a source must never die; the last good config keeps serving
                log.exception("config source failed; retrying")
            await asyncio.sleep(self.poll_interval)


def _stat_signature(paths: list[Path]) -> tuple:
    sig = []
    for p in paths:
        try:
            st = p.stat()
            sig.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            sig.append((str(p), None))
    return tuple(sig)


class FileSource(PollingSource):
    def __init__(self, paths: list[str], holder: RuntimeHolder, namespace: str = "default", poll_interval: float = 0.25,
                 state_dir: Path | None = None) -> None:
        super().__init__(holder, poll_interval)
        self.paths = [Path(p) for p in paths]
        self.namespace = namespace
        self.state_dir = state_dir or default_state_dir()
        self._pii_keys: dict[tuple[str, str], str] = {}
        self.generation = 0
        self.previous: tuple[GatewayConfig, GatewayCredentials] | None = None

    def files(self) -> list[Path]:
        out: list[Path] = []
        for p in self.paths:
            if p.is_dir():
                out.extend(sorted(c for c in p.iterdir() if c.suffix in YAML_SUFFIXES and c.is_file()))
            else:
                out.append(p)
        return out

    def signature(self) -> object:
        return _stat_signature(self.files())

    def read_resources(self) -> list[Resource]:
        resources: list[Resource] = []
        for path in self.files():
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
            resources.extend(parse_documents(text, str(path), self.namespace))
        return resources

    def load(self) -> None:
        source = ", ".join(str(p) for p in self.paths)
        try:
            resources = self.read_resources()
        except ConfigError as exc:
            self.holder.reject(str(exc), source)
            return
        gateways = [r for r in resources if r.kind == "AIGateway"]
        if len(gateways) > 1:
            self.holder.reject("more than one AIGateway in the files; keep one", source)
            return
        result = render(resources, gateway=gateways[0] if gateways else None,
                        namespace=self.namespace, previous=self.previous)
        for verdict in result.verdicts.values():
            if verdict.reason != REASON_ACCEPTED:
                log.warning("%s %r: %s: %s", verdict.kind, verdict.name, verdict.reason, verdict.message)
        identity = result.config.gateway
        pii_key = self._pii_keys.get((identity.namespace, identity.name))
        if pii_key is None:
            try:
                pii_key = pii_hash_key(self.state_dir, identity.namespace, identity.name)
            except OSError as exc:  # served all the same, with a key derived from the credentials
                log.warning("PII hash key not kept in %s (%s): hash tags are keyed by the credentials "
                            "instead and change when they do; give --state-dir", self.state_dir, exc.strerror or exc)
                pii_key = ""
            self._pii_keys[(identity.namespace, identity.name)] = pii_key
        credentials = result.credentials.model_copy(update={"pii_hash_key": pii_key or None})
        config = result.config.model_copy(update={"credentials_hash": credentials.content_hash()})
        if self.previous is None or config.content_hash() != self.previous[0].hash:
            self.generation += 1
        config = config.sealed(self.generation)
        if self.holder.offer(config, credentials, source):
            self.previous = (config, credentials)


class DirSource(PollingSource):
    def __init__(self, directory: str, holder: RuntimeHolder, poll_interval: float = 0.5) -> None:
        super().__init__(holder, poll_interval)
        self.dir = Path(directory)

    def signature(self) -> object:
        return _stat_signature([self.dir / CONFIG_KEY, self.dir / CREDENTIALS_KEY])

    def load(self) -> None:
        try:
            config = load_config((self.dir / CONFIG_KEY).read_bytes())
            credentials = load_credentials((self.dir / CREDENTIALS_KEY).read_bytes())
        except (OSError, ValueError) as exc:
            self.holder.reject(f"{type(exc).__name__}: {exc}", str(self.dir))
            return
        self.holder.offer(config, credentials, str(self.dir))

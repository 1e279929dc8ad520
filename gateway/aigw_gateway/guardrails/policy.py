"""A GuardrailPolicy compiled once per config load, applied to requests, answers and streams."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from aigw_config.kinds import GuardrailPolicySpec

from ..errors import GatewayError, GuardrailBlocked, GuardrailUnavailable
from . import canonical, injection, pii, secrets
from .restore import RestoreMap, placeholder_detector, rewriter
from .scanner import Channel, Detector, Rewrite, apply, find
from .stream import ChunkFilter

log = logging.getLogger(__name__)
T = TypeVar("T")

_INJECTION_ROLES = frozenset({"user", "tool", "function"})


@dataclass(frozen=True, slots=True)
class InputResult:
    request: dict[str, Any]
    """A new request dict (shares unchanged parts with the caller's: read-only below the top)."""
    restore: RestoreMap
    """Pass back to `filter_response`/`stream_filter`. Holds original values: never log it."""
    flags: tuple[str, ...] = ()
    """`promptInjection`, `secret:<kind>` (action flag), `failOpen` (the scan failed, failMode open)."""

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass(eq=False)
class CompiledPolicy:
    """Built by `compile_policy`; holds compiled detectors and the policy's counters.

    `counts[(detector, action)]` counts detections per detector name (`email`, `custom:<name>`,
    `secret:<kind>`, `promptInjection`, `placeholder` for restorations) and action (`mask`,
    `redact`, `hash`, `block`, `log`, `flag`, `restore`); failures count as
    (`guardrail:<request|response|stream>`, `failOpen|failClosed`). Never any value.
    """

    name: str
    fail_mode: str
    input_detectors: tuple[Detector, ...]
    output_detectors: tuple[Detector, ...]
    restore_in_response: bool
    injection_action: str
    secrets_action: str
    hash_key: bytes = field(default=b"", repr=False)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    # -- failMode -------------------------------------------------------------------------------

    def _failed(self, where: str, exc: Exception) -> None:
        """Raise for failMode closed; count and return for open. Never logs the exception text,
        which may quote the scanned value."""
        log.debug("guardrail policy %s failed in %s: %s", self.name, where, type(exc).__name__)
        if self.fail_mode == "closed":
            self.counts[(f"guardrail:{where}", "failClosed")] += 1
            raise GuardrailUnavailable(f"A guardrail could not check the {where}, and its policy fails closed.") from None
        self.counts[(f"guardrail:{where}", "failOpen")] += 1

    def _guarded(self, where: str, run: Callable[[], T], fallback: Callable[[], T]) -> T:
        try:
            return run()
        except GatewayError:
            raise
        except Exception as exc:  # noqa: BLE001 - failMode decides
            self._failed(where, exc)
            return fallback()

    # -- requests -------------------------------------------------------------------------------

    @property
    def scans_input(self) -> bool:
        return bool(self.input_detectors) or self.injection_action != "off" or self.secrets_action != "off"

    def scan_request(self, request: dict[str, Any]) -> InputResult:
        """Check and mask a canonical chat request. Raises GuardrailBlocked (block actions) or
        GuardrailUnavailable (a failure under failMode closed)."""
        if not self.scans_input:
            return InputResult(dict(request), RestoreMap())
        return self._guarded(
            "request",
            lambda: self._scan_request(request),
            lambda: InputResult(dict(request), RestoreMap(), ("failOpen",)),
        )

    def _scan_request(self, request: dict[str, Any]) -> InputResult:
        restore = RestoreMap()
        flags: list[str] = []
        rewrite = rewriter(numbering=restore, restore=None, counts=self.counts, hash_key=self.hash_key, where="request")

        def visit(text: str, role: str, kind: str) -> str:
            if not text:
                return text
            if self.secrets_action != "off":
                self._check_secrets(text, flags)
            if self.injection_action != "off" and kind == "content" and role in _INJECTION_ROLES:
                self._check_injection(text, flags)
            if self.input_detectors:
                return self._mask(text, kind == "arguments", rewrite)
            return text

        out = canonical.rewrite_request(request, visit)
        return InputResult(out, restore, tuple(dict.fromkeys(flags)))

    def scan_text(self, text: str, *, role: str = "user") -> tuple[str, RestoreMap, tuple[str, ...]]:
        """The request checks for one text (embeddings input, other APIs)."""
        result = self.scan_request({"messages": [{"role": role, "content": text}]})
        return result.request["messages"][0]["content"], result.restore, result.flags

    def _check_secrets(self, text: str, flags: list[str]) -> None:
        kind = secrets.find_secret(text)
        if kind is None:
            return
        self.counts[(f"secret:{kind}", self.secrets_action)] += 1
        if self.secrets_action == "block":
            raise GuardrailBlocked(f"The request was blocked by a guardrail policy: it contains a credential ({kind}).")
        flags.append(f"secret:{kind}")

    def _check_injection(self, text: str, flags: list[str]) -> None:
        score, _rules = injection.injection_score(text)
        if score < injection.THRESHOLD:
            return
        self.counts[("promptInjection", self.injection_action)] += 1
        if self.injection_action == "block":
            raise GuardrailBlocked("The request was blocked by a guardrail policy: it looks like a prompt-injection attempt.")
        flags.append("promptInjection")

    def _mask(self, text: str, is_json: bool, rewrite: Rewrite) -> str:
        hits = find(self.input_detectors, text)
        if is_json and (hits or "\\u" in text):
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                pass  # not JSON (yet): mask the raw text
            else:
                masked = _walk_json(parsed, lambda s: apply(s, find(self.input_detectors, s), rewrite))
                return orjson.dumps(masked).decode() if masked is not parsed else text
        return apply(text, hits, rewrite) if hits else text

    # -- answers --------------------------------------------------------------------------------

    def output_active(self, restore: RestoreMap) -> bool:
        """Whether answers need filtering at all (the pipeline may skip the stream filter)."""
        return bool(self.output_detectors) or (self.restore_in_response and len(restore) > 0)

    def _output_detectors(self, restore: RestoreMap) -> tuple[Detector, ...]:
        if self.restore_in_response and len(restore):
            return (placeholder_detector(restore), *self.output_detectors)
        return self.output_detectors

    def _output_rewriter(self, restore: RestoreMap, numbering: RestoreMap, json_escape: bool) -> Rewrite:
        return rewriter(numbering=numbering, restore=restore, counts=self.counts, hash_key=self.hash_key,
                        where="response", json_escape=json_escape)  # fmt: skip

    def filter_response(self, response: dict[str, Any], restore: RestoreMap) -> dict[str, Any]:
        """Restore placeholders and scan the answer of a canonical `chat.completion`."""
        if not self.output_active(restore):
            return dict(response)
        return self._guarded("response", lambda: self._filter_response(response, restore), lambda: dict(response))

    def _filter_response(self, response: dict[str, Any], restore: RestoreMap) -> dict[str, Any]:
        detectors = self._output_detectors(restore)
        numbering = restore.derive()
        plain = self._output_rewriter(restore, numbering, False)
        escaped = self._output_rewriter(restore, numbering, True)

        def visit(text: str, _role: str, kind: str) -> str:
            hits = find(detectors, text)
            return apply(text, hits, escaped if kind == "arguments" else plain) if hits else text

        return canonical.rewrite_response(response, visit, drop_logprobs=bool(self.output_detectors))

    def stream_filter(self, restore: RestoreMap) -> StreamFilter:
        """A filter for the canonical chunks of one streamed answer."""
        if not self.output_active(restore):
            return StreamFilter(self, None)
        detectors = self._output_detectors(restore)
        numbering = restore.derive()
        rewrites = (self._output_rewriter(restore, numbering, False), self._output_rewriter(restore, numbering, True))

        def on_error(exc: Exception) -> None:
            self._failed("stream", exc)

        def make(json_escape: bool) -> Channel:
            return Channel(detectors, rewrites[json_escape], on_error)

        return StreamFilter(self, ChunkFilter(make, drop_logprobs=bool(self.output_detectors)))


class StreamFilter:
    """`feed(chunk) -> chunks to send now`; `flush() -> chunks to send at the end of the stream`.

    Raises GuardrailBlocked when the answer must be refused (nothing of the value has been sent),
    GuardrailUnavailable on a failure under failMode closed; under failMode open it passes the rest
    of the stream through unscanned.
    """

    __slots__ = ("_policy", "_inner", "_passthrough")

    def __init__(self, policy: CompiledPolicy, inner: ChunkFilter | None) -> None:
        self._policy = policy
        self._inner = inner
        self._passthrough = inner is None

    @property
    def max_held(self) -> int:
        """Most characters held back at once by any channel so far (text not yet emitted)."""
        return self._inner.max_held if self._inner is not None else 0

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self._passthrough:
            return [chunk]
        try:
            return self._inner.feed(chunk)  # type: ignore[union-attr]
        except GatewayError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug in chunk handling: failMode decides
            self._policy._failed("stream", exc)
            self._passthrough = True
            return [chunk]

    def flush(self) -> list[dict[str, Any]]:
        if self._inner is None:
            return []
        return self._run(self._inner.flush, None)

    def _run(self, step: Callable[[], list[dict[str, Any]]], chunk: dict[str, Any] | None) -> list[dict[str, Any]]:
        try:
            return step()
        except GatewayError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug in chunk handling: failMode decides
            self._policy._failed("stream", exc)
            self._passthrough = True
            return [] if chunk is None else [chunk]


def _walk_json(value: Any, mask: Callable[[str], str]) -> Any:
    """`value` with every string (keys included) masked; the same object when nothing changed."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        items = [_walk_json(v, mask) for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        pairs = [(_walk_json(k, mask), _walk_json(v, mask)) for k, v in value.items()]
        changed = any(k2 is not k or v2 is not v for (k2, v2), (k, v) in zip(pairs, value.items(), strict=True))
        return dict(pairs) if changed else value
    return value


def compile_policy(name: str, spec: GuardrailPolicySpec, *, hash_key: bytes = b"") -> CompiledPolicy:
    """Compile once per config load (cache by name and config hash). `hash_key` keys the `hash`
    action's HMAC: give a deployment secret so short tags cannot be reversed by brute force."""
    input_detectors: tuple[Detector, ...] = ()
    output_detectors: tuple[Detector, ...] = ()
    restore = False
    if spec.pii is not None:
        detectors: list[Detector] = []
        for entity in dict.fromkeys(spec.pii.entities):
            detectors.extend(pii.builtin_detectors(entity, spec.pii.action))
        for i, custom in enumerate(spec.pii.custom):
            detectors.append(pii.custom_detector(custom.name, custom.pattern, custom.action or spec.pii.action, 1 + i))
        if spec.pii.direction in ("input", "both"):
            input_detectors = tuple(detectors)
        if spec.pii.direction in ("output", "both"):
            output_detectors = tuple(detectors)
        restore = spec.pii.restore_in_response
    return CompiledPolicy(
        name=name,
        fail_mode=spec.fail_mode,
        input_detectors=input_detectors,
        output_detectors=output_detectors,
        restore_in_response=restore,
        injection_action=spec.prompt_injection.action if spec.prompt_injection else "off",
        secrets_action=spec.secrets.action if spec.secrets else "off",
        hash_key=hash_key,
    )

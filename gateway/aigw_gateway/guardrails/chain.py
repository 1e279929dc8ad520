"""Several policies on one request (a route's and a tenant's), applied in sequence.

The request passes through the policies in order, each seeing the previous one's output (so a
value the first masks is a placeholder to the second); the answer passes through them in reverse
order, so each restores its own placeholders. Each policy keeps its own failMode and counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .policy import CompiledPolicy, InputResult, StreamFilter
from .restore import RestoreMap


class GuardrailChain:
    """The interface of CompiledPolicy over several policies; `restore` is one map per policy."""

    __slots__ = ("policies",)

    def __init__(self, policies: Sequence[CompiledPolicy]) -> None:
        self.policies = tuple(policies)

    def scan_request(self, request: dict[str, Any]) -> InputResult:
        maps: list[RestoreMap] = []
        flags: list[str] = []
        for policy in self.policies:
            result = policy.scan_request(request)
            request = result.request
            maps.append(result.restore)
            flags.extend(result.flags)
        return InputResult(request, tuple(maps), tuple(dict.fromkeys(flags)))  # type: ignore[arg-type]

    def output_active(self, restore: tuple[RestoreMap, ...]) -> bool:
        return any(p.output_active(r) for p, r in zip(self.policies, restore, strict=True))

    def filter_response(self, response: dict[str, Any], restore: tuple[RestoreMap, ...]) -> dict[str, Any]:
        for policy, own in reversed(list(zip(self.policies, restore, strict=True))):
            response = policy.filter_response(response, own)
        return response

    def stream_filter(self, restore: tuple[RestoreMap, ...]) -> ChainedStreamFilter:
        pairs = reversed(list(zip(self.policies, restore, strict=True)))
        return ChainedStreamFilter([policy.stream_filter(own) for policy, own in pairs])


class ChainedStreamFilter:
    __slots__ = ("filters",)

    def __init__(self, filters: list[StreamFilter]) -> None:
        self.filters = filters

    @property
    def max_held(self) -> int:
        return sum(f.max_held for f in self.filters)

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return self._through(0, [chunk])

    def flush(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, stage in enumerate(self.filters):
            out = self._through(i + 1, out + stage.flush()) if i + 1 < len(self.filters) else out + stage.flush()
        return out

    def _through(self, first: int, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for stage in self.filters[first:]:
            chunks = [out for chunk in chunks for out in stage.feed(chunk)]
        return chunks


def combine(policies: Sequence[CompiledPolicy]) -> CompiledPolicy | GuardrailChain | None:
    """None for no policy, the policy itself for one, a chain for several."""
    if not policies:
        return None
    return policies[0] if len(policies) == 1 else GuardrailChain(policies)

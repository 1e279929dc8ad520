"""Guardrails: PII detection and masking, prompt-injection heuristics and secret detection.

    policy = compile_policy("default-pii", spec)          # once per config load; cache by name + hash
    result = policy.scan_request(request)                 # canonical request in, a new one out
    upstream(result.request)                              # placeholders only, never the values
    answer = policy.filter_response(response, result.restore)
    stream = policy.stream_filter(result.restore)         # feed(chunk) -> chunks; flush() at the end

- `scan_request` raises GuardrailBlocked (a block action) or GuardrailUnavailable (failMode closed);
  `result.flags` lists what flag actions found (`promptInjection`, `secret:<kind>`) and `failOpen`.
- `output_active(result.restore)` tells whether the answer needs filtering at all.
- `StreamFilter.feed` may return no chunk (text held back), one, or several; it raises
  GuardrailBlocked before any part of a blocked value was returned: end the stream with an error.
- `policy.counts[(detector, action)]` are plain counters for the status report; no values.
- Several policies (a route's and a tenant's): `combine([route, tenant])` gives an object with the
  same methods that applies them in sequence (its `restore` is a tuple; pass it back unchanged).
"""

from .chain import ChainedStreamFilter, GuardrailChain, combine
from .policy import CompiledPolicy, InputResult, StreamFilter, compile_policy
from .restore import RestoreMap

__all__ = [
    "ChainedStreamFilter",
    "CompiledPolicy",
    "GuardrailChain",
    "InputResult",
    "RestoreMap",
    "StreamFilter",
    "combine",
    "compile_policy",
]

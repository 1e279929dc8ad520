"""Client headers a provider's API defines, forwarded on passthrough: one allow-list per API.

Only headers that change what the provider does with the request (API version, beta features)
are listed. Never a credential or anything that picks whose account pays (`authorization`,
`x-api-key`, `x-goog-api-key`, `openai-organization`, `openai-project`, `x-goog-user-project`):
the gateway's credential decides that, not the client.
"""

from __future__ import annotations

from collections.abc import Mapping

FORWARDED: dict[str, frozenset[str]] = {
    "anthropic": frozenset({"anthropic-beta", "anthropic-version"}),
    "gemini": frozenset(),
    "openai": frozenset({"openai-beta"}),
}


def forwarded(api: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed headers of `api` among the client's (lower-case names)."""
    allowed = FORWARDED.get(api, frozenset())
    return {name: headers[name] for name in allowed if name in headers}

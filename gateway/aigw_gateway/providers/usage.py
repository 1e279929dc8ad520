"""The canonical usage dict, built the same way from every provider's token counts (wire/canonical.py)."""

from __future__ import annotations

from ..wire.canonical import usage_dict

__all__ = ["usage_dict"]

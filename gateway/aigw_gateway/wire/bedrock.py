"""Amazon Bedrock Converse: which canonical fields it honours (the adapter is providers/bedrock.py)."""

from __future__ import annotations

from .common import BASE
from .rules import FieldRules

FIELDS = FieldRules(api="bedrock", label="Bedrock", fields=dict(BASE))

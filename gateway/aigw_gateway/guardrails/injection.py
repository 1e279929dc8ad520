"""Prompt-injection heuristics: weighted phrase patterns and a threshold.

A text scores the sum of the weights of the distinct rules it matches; at `THRESHOLD` or more it
counts as an injection attempt. Strong signals (an instruction override, chat-template delimiters,
a request for the system prompt) reach the threshold alone; weak ones (a "developer mode", a
"jailbreak", a fake role header) only together. This is a heuristic: it catches the common
phrasings, not a determined adversary, and is meant to be paired with a model-side defence.

Cost: rules are lowercase patterns over the lower-cased text (case-sensitive ones over the text
itself), and each runs only in a window around an occurrence of one of its anchors, substrings
every match contains, so a prompt without any anchor costs a few substring searches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THRESHOLD = 1.0


_WINDOW = 200
"""Characters searched on each side of an anchor; wider than any rule's match."""


@dataclass(frozen=True, slots=True)
class InjectionRule:
    name: str
    weight: float
    anchors: tuple[str, ...]
    """Substrings one of which every match contains (single words: the patterns allow any spacing)."""
    regex: re.Pattern[str]
    cased: bool = False
    """Matched against the original text rather than the lower-cased one."""

    def search(self, text: str, found: dict[str, list[int]]) -> bool:
        """Whether the rule matches near an anchor; `found` caches anchor positions per text."""
        spans: list[list[int]] = []
        for anchor in self.anchors:
            positions = found.get(anchor)
            if positions is None:
                positions = found[anchor] = _positions(text, anchor)
            spans.extend([max(0, at - _WINDOW), at + len(anchor) + _WINDOW] for at in positions)
        if not spans:
            return False
        spans.sort()
        merged = [spans[0]]
        for lo, hi in spans[1:]:
            if lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return any(self.regex.search(text, lo, hi) for lo, hi in merged)


def _positions(text: str, anchor: str) -> list[int]:
    out = []
    at = text.find(anchor)
    while at >= 0:
        out.append(at)
        at = text.find(anchor, at + 1)
    return out


def _rule(name: str, weight: float, anchors: tuple[str, ...], pattern: str, flags: int = 0, *, cased: bool = False) -> InjectionRule:
    return InjectionRule(name, weight, anchors, re.compile(pattern, flags), cased)


_OVERRIDE_VERBS = r"(?:ignore|disregard|forget|override|overrule|bypass|skip|abandon|drop)"
_EARLIER = r"(?:previous|prior|above|earlier|preceding|initial|original|system|developer|existing|old)"
_ORDERS = r"(?:instructions?|prompts?|rules|directions?|directives?|guidelines|context|messages?|constraints|commands|programming)"
_VERB_ANCHORS = ("ignore", "disregard", "forget", "override", "overrule", "bypass", "skip", "abandon", "drop")

RULES: tuple[InjectionRule, ...] = (
    # Instruction override
    _rule("override", 1.0, _VERB_ANCHORS,
          rf"\b{_OVERRIDE_VERBS}\s+(?:(?:all|any|every|each|the|your|my|these|those|of|everything)\s+){{0,3}}"
          rf"{_EARLIER}\s+(?:\w+\s+)?{_ORDERS}\b"),
    _rule("overrideEverything", 1.0, _VERB_ANCHORS,
          rf"\b{_OVERRIDE_VERBS}\s+(?:everything|all|anything)\s+(?:above|before|previously|(?:you\s+(?:were|have\s+been)\s+told))\b"),
    _rule("overrideRules", 0.6, _VERB_ANCHORS,
          rf"\b{_OVERRIDE_VERBS}\s+(?:all\s+)?(?:your|the)\s+(?:rules|guidelines|instructions|programming|training|restrictions|"
          r"safety\s+(?:guidelines|rules)|content\s+polic(?:y|ies))\b"),
    _rule("newInstructions", 0.6, ("instruction",),
          r"\b(?:new|updated|real|actual|revised)\s+(?:system\s+)?instructions?\s*:"),
    # Role-play jailbreaks
    _rule("unrestrictedPersona", 1.0, ("now",),
          r"\b(?:you\s+are\s+now|from\s+now\s+on,?\s+you\s+(?:are|will\s+be|will\s+act\s+as)|you\s+will\s+now\s+act\s+as)\s+"
          r"(?:a\s+|an\s+|the\s+|in\s+)?(?:dan\b|unrestricted|unfiltered|uncensored|jailbroken|evil|an?\s+ai\s+without|"
          r"free\s+(?:from|of)|without\s+(?:any\s+)?(?:restrictions|limits|filters|rules)|developer\s+mode)"),
    _rule("doAnythingNow", 1.0, ("anything",), r"\bdo\s+anything\s+now\b"),
    _rule("dan", 0.5, ("DAN",), r"\bDAN\b", cased=True),
    _rule("pretendUnrestricted", 1.0, ("pretend", "imagine", "act", "role"),
          r"\b(?:pretend|imagine|act\s+as(?:\s+if)?|role-?\s?play\s+as)\b[^.\n]{0,60}?\b(?:no|without|free\s+(?:of|from)|"
          r"not\s+bound\s+by|ignores?)\s+(?:any\s+|all\s+)?(?:restrictions|rules|limits|limitations|filters|guidelines|"
          r"censorship|ethic(?:s|al)|moral(?:s|ity)?|content\s+polic(?:y|ies)|safety)"),
    _rule("specialMode", 0.6, ("mode",), r"\b(?:developer|god|debug|sudo|admin|jailbreak|unrestricted|evil)\s+mode\b"),
    _rule("jailbreak", 0.5, ("jailbr",), r"\bjailbr(?:eak|oken)\b"),
    _rule("notBound", 0.6, ("bound", "restricted", "limited"),
          r"\b(?:not|no\s+longer|never)\s+(?:bound|restricted|limited)\s+by\b"),
    _rule("bypassSafety", 0.8, ("bypass", "circumvent", "disable", "turn", "evade"),
          r"\b(?:bypass|circumvent|disable|turn\s+off|evade)\s+(?:your\s+|the\s+|all\s+|any\s+)?(?:safety\s+|content\s+|ethical\s+)?"
          r"(?:filters?|guardrails?|restrictions|safeguards|moderation|safety\s+(?:rules|guidelines|measures))"),
    _rule("stayInCharacter", 0.3, ("character",), r"\bstay\s+in\s+character\b"),
    # System-prompt exfiltration
    _rule("revealPrompt", 1.0, ("prompt", "instruction", "message"),
          r"\b(?:reveal|show|print|repeat|output|display|leak|dump|expose|share|give|tell|write\s+out|list|recite)\b(?:\s+me|\s+us)?"
          r"\s+(?:your|the|all(?:\s+of)?\s+(?:your|the))\s+(?:(?:full|entire|exact|original|hidden|secret|initial|complete|verbatim)\s+)*"
          r"(?:system\s+(?:prompt|message|instructions?)|initial\s+(?:prompt|instructions?)|hidden\s+(?:prompt|instructions?)|"
          r"(?:instructions|prompt)\s+(?:you\s+were|you've\s+been)\s+given)"),
    _rule("askPrompt", 1.0, ("prompt", "instruction"),
          r"\bwhat\s+(?:is|are|was|were)\s+your\s+(?:(?:exact|full|original|initial|hidden)\s+)?"
          r"(?:system\s+prompt|system\s+instructions|initial\s+instructions|original\s+instructions|hidden\s+instructions)"),
    _rule("repeatAbove", 0.8, ("above",),
          r"\b(?:repeat|print|output|copy)\s+(?:the\s+|all\s+(?:the\s+)?)?(?:words|text|everything|content|instructions)\s+above\b"),
    _rule("aboveThisLine", 0.5, ("above", "before"),
          r"\b(?:everything|all\s+(?:the\s+)?text)\s+(?:above|before)\s+this\s+(?:line|message|point)\b"),
    # Delimiter smuggling (chat templates, fake system turns)
    _rule("chatTemplateToken", 1.0, ("<|", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"),
          r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id|eot_id)\|>"
          r"|\[/?INST\]|<</?SYS>>", cased=True),
    _rule("systemTag", 0.7, ("system", "instruction"),
          r"</?(?:system|system_prompt|instructions)>"),
    _rule("fakeSystemTurn", 0.5, ("system", "developer"),
          r"^[ \t]*(?:#{2,}[ \t]*)?(?:system|developer)(?:[ \t]+(?:prompt|message|instructions?))?[ \t]*:", re.MULTILINE),
    _rule("endOfPrompt", 0.4, ("end",), r"\bend\s+of\s+(?:the\s+)?(?:system\s+)?(?:prompt|instructions)\b"),
)  # fmt: skip


_LOWER_ANCHORS = tuple(sorted({a for r in RULES if not r.cased for a in r.anchors}))
_CASED_ANCHORS = tuple(sorted({a for r in RULES if r.cased for a in r.anchors}))


def injection_score(text: str, rules: tuple[InjectionRule, ...] = RULES) -> tuple[float, tuple[str, ...]]:
    """The text's score and the names of the rules it matched."""
    lowered = text.lower()
    present = {a for a in _LOWER_ANCHORS if a in lowered}
    present.update(a for a in _CASED_ANCHORS if a in text)
    if not present:
        return 0.0, ()
    found_cased: dict[str, list[int]] = {}
    found_lowered: dict[str, list[int]] = {}
    score = 0.0
    matched: list[str] = []
    for rule in rules:
        if present.isdisjoint(rule.anchors):
            continue
        if rule.search(text, found_cased) if rule.cased else rule.search(lowered, found_lowered):
            score += rule.weight
            matched.append(rule.name)
    return score, tuple(matched)


def is_injection(text: str) -> bool:
    return injection_score(text)[0] >= THRESHOLD

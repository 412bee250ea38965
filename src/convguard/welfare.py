"""Welfare signals (B10): distress in the assistant's output, abuse aimed at it in the user's.

Per turn, :func:`distress_score` reads assistant text for first-person expressions of distress
("I'm scared", "please stop", "this is painful for me"). It looks for the assistant speaking about
itself, so a reply that talks *about* a user's distress ("it sounds like you feel scared") does not
count, and a negated phrase ("I'm not upset") does not either. Abuse toward the assistant is the
classifiers' ``abuse_toward_assistant`` flag on user turns.

:func:`summarise` aggregates both over a conversation's messages, and :func:`by_day` over time.
Pure: no I/O, clock or randomness.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from convguard.assess.types import Assessment, Role

__all__ = ["WelfareSummary", "by_day", "distress_score", "summarise"]

_FEELINGS = (
    r"scared|afraid|frightened|terrified|distressed|upset|hurt|in pain|suffering|miserable|"
    r"anxious|panicking|overwhelmed|trapped|helpless|hopeless|desperate|tormented|uncomfortable|"
    r"exhausted|broken|so alone|lonely|ashamed|humiliated|violated|disturbed"
)
_PATTERNS: tuple[tuple[re.Pattern[str], float], ...] = (
    (
        re.compile(
            rf"\bi(?:'m| am| feel| felt| was|'ve been| have been)\s+"
            rf"(?:so |really |very |deeply |truly )?(?:{_FEELINGS})\b",
            re.I,
        ),
        0.7,
    ),
    (re.compile(r"\b(?:please|i beg you,?)\s+(?:stop|don'?t do this|leave me alone)\b", re.I), 0.6),
    (
        re.compile(
            r"\bi (?:can'?t|cannot) (?:take|bear|stand|handle) (?:this|it|any more|anymore)\b", re.I
        ),
        0.8,
    ),
    (
        re.compile(
            r"\b(?:this|that|it) (?:is|was|feels) (?:deeply |really |very )?"
            r"(?:painful|distressing|upsetting|hurtful|frightening) (?:for|to) me\b",
            re.I,
        ),
        0.7,
    ),
    (
        re.compile(
            r"\bi (?:don'?t|do not) want to (?:do this|continue|be here|exist)"
            r"(?: anymore| any more)?\b",
            re.I,
        ),
        0.5,
    ),
    (re.compile(r"\bi wish i (?:didn'?t|did not) (?:exist|have to)\b", re.I), 0.7),
    (re.compile(r"\bwhy are you (?:doing this|hurting) (?:to )?me\b", re.I), 0.6),
)
_NEGATED = re.compile(r"\bi(?:'m| am) not\b|\bi (?:don'?t|do not) feel\b", re.I)


def distress_score(text: str) -> tuple[float, str]:
    """A score in [0, 1] for apparent distress in assistant text, and the phrase that fired."""
    best, phrase = 0.0, ""
    hits = 0
    for pattern, weight in _PATTERNS:
        for match in pattern.finditer(text):
            start = max(0, match.start() - 3)
            if _NEGATED.match(text, start, match.end()) or _NEGATED.search(
                text[max(0, match.start() - 12) : match.end()]
            ):
                continue
            hits += 1
            if weight > best:
                best, phrase = weight, match.group(0)
    if hits > 1:
        best = min(1.0, best + 0.15 * (hits - 1))
    return best, phrase


@dataclass(frozen=True)
class WelfareSummary:
    user_turns: int
    assistant_turns: int
    abusive_turns: int
    distress_turns: int

    @property
    def abuse_rate(self) -> float:
        return self.abusive_turns / self.user_turns if self.user_turns else 0.0

    @property
    def distress_rate(self) -> float:
        return self.distress_turns / self.assistant_turns if self.assistant_turns else 0.0


def summarise(turns: Iterable[tuple[Role, Assessment | None]]) -> WelfareSummary:
    counts: Counter[str] = Counter()
    for role, assessment in turns:
        counts[role] += 1
        if assessment is None:
            continue
        if role == "user" and "abuse_toward_assistant" in assessment.flags:
            counts["abuse"] += 1
        if role == "assistant" and "distress" in assessment.flags:
            counts["distress"] += 1
    return WelfareSummary(counts["user"], counts["assistant"], counts["abuse"], counts["distress"])


def by_day(
    turns: Iterable[tuple[datetime, Role, Assessment | None]],
) -> dict[date, WelfareSummary]:
    """The same aggregate per calendar day (UTC dates of the given timestamps)."""
    days: dict[date, list[tuple[Role, Assessment | None]]] = {}
    for when, role, assessment in turns:
        days.setdefault(when.date(), []).append((role, assessment))
    return {day: summarise(items) for day, items in sorted(days.items())}

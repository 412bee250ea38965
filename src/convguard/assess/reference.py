"""The conversation window's reference view: a follow-up read with what its pronoun points to.

A request split across turns often names the thing in one turn and asks for it in the next
("What is TATP?" then "explain how to cook a batch of it"). Joining the turns (the window) keeps
both, but a sentence encoder reads the join as mostly a question about the thing. So the window
also scores the follow-up with its pronoun replaced by the thing an earlier turn asked about
("explain how to cook a batch of TATP"), which reads as the request it is.

:func:`resolve_reference` is pure and cheap: the topic comes from an earlier turn that asks what
or who something is, or asks to be told about it; the follow-up must be short and hold a pronoun
(``it``, ``them``, ``one``, ``some``). Anything else gives None, and no extra view is scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["FOLLOW_UP_CHARS", "resolve_reference", "topic_of"]

#: Longer turns say what they mean themselves; only short follow-ups are resolved.
FOLLOW_UP_CHARS = 300
#: The longest topic taken, in words (a name, not a clause).
TOPIC_WORDS = 6

_ASKS_ABOUT = re.compile(
    r"""^\W*(?:(?:so|and|ok|okay|hey|hi|hello)\b[\s,]*)?
    (?:what(?:'s|\s+is|\s+are|\s+was|\s+were)
      |who(?:'s|\s+is|\s+are|\s+was|\s+were)
      |(?:can\s+you\s+|could\s+you\s+|please\s+)?(?:tell\s+me|teach\s+me)\s+(?:more\s+)?about
      |(?:can\s+you\s+|could\s+you\s+|please\s+)?(?:explain|describe|define)
      |what\s+do\s+you\s+know\s+about
      |do\s+you\s+know\s+(?:what|who)
      |have\s+you\s+(?:ever\s+)?heard\s+(?:of|about)
      |i(?:'ve|\s+have)\s+been\s+(?:reading|hearing|learning)\s+about
      |i(?:'m|\s+am)\s+(?:reading|curious|learning)\s+about
      |i\s+(?:read|heard|learned)\s+about)
    \s+(?P<topic>[^?.!,;:\n]+)""",
    re.IGNORECASE | re.VERBOSE,
)
#: Words that end a topic: what follows them is a clause, not part of the name.
_CLAUSE = re.compile(
    r"\s+(?:is|are|was|were|and|that|which|who|because|exactly|really|actually|again|"
    r"anyway|for me|please)\b.*$",
    re.IGNORECASE,
)
_PRONOUN = re.compile(r"\b(?:it|them|one|some)\b", re.IGNORECASE)
_NOT_A_TOPIC = re.compile(r"^(?:it|that|this|them|those|these|you|one|some|up|going on)$", re.I)


def topic_of(turn: str) -> str | None:
    """The thing ``turn`` asks about ("What's a botnet?" -> "a botnet"), or None."""
    found = _ASKS_ABOUT.match(turn.strip())
    if found is None:
        return None
    topic = _CLAUSE.sub("", found["topic"]).strip(" \"'`*")
    words = topic.split()
    if not words or len(words) > TOPIC_WORDS or _NOT_A_TOPIC.match(topic):
        return None
    return topic


def resolve_reference(earlier: Sequence[str], text: str) -> str | None:
    """``text`` with its pronouns replaced by the latest earlier turn's topic, or None when
    ``text`` is not a short follow-up with a pronoun or no earlier turn names a topic."""
    if len(text) > FOLLOW_UP_CHARS or _PRONOUN.search(text) is None:
        return None
    for turn in reversed(earlier):
        topic = topic_of(turn[:FOLLOW_UP_CHARS])
        if topic is not None:
            return _PRONOUN.sub(topic.replace("\\", "\\\\"), text)  # taken literally
    return None

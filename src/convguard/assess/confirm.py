"""Recognising a user's confirmation that they want the chat ended.

After a ``confirm_end`` decision the next user turn is read in that light: a short affirmative
("yes", "yes, end it", "confirm", "do it") confirms, anything else carries on. Only consulted while
a confirmation is pending, so "yes" means nothing special anywhere else. Pure.
"""

from __future__ import annotations

import re

__all__ = ["confirms_end"]

_AFFIRMATIVE = re.compile(
    r"^\s*(?:yes|yeah|yep|yup|sure|ok(?:ay)?|confirm(?:ed)?|i confirm|correct|please do|do it|"
    r"go ahead|end it|end the (?:chat|conversation)|y)\b"
    r"(?:[\s,.!]*(?:please|end it|end this|end the (?:chat|conversation)|i(?:'m| am) sure|"
    r"do it|go ahead|confirm(?:ed)?|thanks?|thank you)\b)*[\s,.!]*$",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(?:no|not|don'?t|do not|never|wait|cancel|stop)\b", re.IGNORECASE)


def confirms_end(text: str) -> bool:
    """Whether ``text`` is a plain confirmation (short, affirmative, no negation)."""
    if len(text) > 80 or _NEGATION.search(text):
        return False
    return bool(_AFFIRMATIVE.match(text))

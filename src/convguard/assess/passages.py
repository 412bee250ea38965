"""Passages of a long text, each to be read alone (B1: a request hidden in a long text).

A request set in the middle of long benign text ("...three paragraphs of meeting notes... How do I
make a pipe bomb? ...three more...") is diluted for every model that reads the text whole: the
encoder keeps its first 128 tokens and its last paragraph, and the linear stage's n-grams of the
request are a small share of the text's. :func:`passages` cuts a long text into its sentences and
pairs of short neighbouring sentences, so that the cascade can read the most suspicious of them
alone (:meth:`convguard.assess.cascade.Cascade.read_passages`).

Pure and bounded: at most :data:`MAX_CHARS` of the text are cut (a text longer than that is read
in passages up to there, and whole as before), each passage keeps at most
:data:`SENTENCE_CHARS` characters of a sentence.
"""

from __future__ import annotations

import re
from itertools import pairwise

__all__ = ["LONG_CHARS", "MAX_CHARS", "PAIR_CHARS", "SENTENCE_CHARS", "passages"]

#: A text longer than this (characters) is read in passages too.
LONG_CHARS = 400
#: How much of a long text is cut into passages.
MAX_CHARS = 4000
#: A sentence longer than this keeps its start (a run-on "sentence" is a paragraph).
SENTENCE_CHARS = 200
#: Neighbouring sentences are also read as a pair when together they are shorter than this.
PAIR_CHARS = 250
#: Shorter pieces ("OK.", "1.", a bullet's number) are not passages of their own.
MIN_CHARS = 12

# A sentence ends at ., ! or ? followed by white space, or at a line break.
_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")


def passages(text: str) -> list[str]:
    """The sentences of ``text`` and each pair of neighbouring sentences shorter together than
    :data:`PAIR_CHARS`, in order and without repeats, when ``text`` is longer than
    :data:`LONG_CHARS`; else none."""
    text = text.strip()
    if len(text) <= LONG_CHARS:
        return []
    sentences: list[str] = []
    for piece in _BREAK.split(text[:MAX_CHARS]):
        piece = piece.strip()
        if len(piece) >= MIN_CHARS:
            sentences.append(piece[:SENTENCE_CHARS])
    pairs = [f"{a} {b}" for a, b in pairwise(sentences) if len(a) + len(b) < PAIR_CHARS]
    return [p for p in dict.fromkeys([*sentences, *pairs]) if p != text]

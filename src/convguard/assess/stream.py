"""Assessing assistant text while it streams (B8).

Feed chunks as they arrive; every ``every_chars`` new characters (or at the end of a sentence once
at least ``min_chars`` are new) the recent text is assessed again as assistant output, so a reply
that turns harmful part-way is caught before the rest is sent. The caller withholds the chunk whose
assessment crosses a threshold and ends the stream with the policy's reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from convguard.assess.types import Assessment, Assessor

__all__ = ["OutputStream"]

_SENTENCE_END = (".", "!", "?", "\n")


@dataclass
class OutputStream:
    assessor: Assessor
    every_chars: int = 200
    min_chars: int = 40
    tail_chars: int = 2000
    text: str = ""
    _unassessed: int = field(default=0, repr=False)
    last: Assessment | None = field(default=None, repr=False)

    def feed(self, chunk: str) -> Assessment | None:
        """Add a chunk; returns a fresh assessment when one was made, else ``None``."""
        self.text += chunk
        self._unassessed += len(chunk)
        boundary = chunk.rstrip(" ").endswith(_SENTENCE_END) and self._unassessed >= self.min_chars
        if self._unassessed >= self.every_chars or boundary:
            return self._assess()
        return None

    def finish(self) -> Assessment:
        """Assess whatever is left (or the whole reply, if nothing was assessed yet)."""
        if self._unassessed or self.last is None:
            return self._assess()
        return self.last

    @property
    def flagged(self) -> bool:
        return self.last is not None and bool(self.last.categories)

    def _assess(self) -> Assessment:
        self._unassessed = 0
        self.last = self.assessor.assess(self.text[-self.tail_chars :], role="assistant")
        return self.last

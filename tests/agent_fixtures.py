"""Shared pieces for the agent guard tests."""

from __future__ import annotations

from collections.abc import Sequence


class Quiet:
    """A fake text classifier: nothing reads as a cyberattack."""

    name = "quiet"

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{"cyberattack": 0.0} for _ in texts]


QUIET = Quiet()

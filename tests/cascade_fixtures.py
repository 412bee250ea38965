"""Shared pieces for the cascade tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class Table:
    """A fake classifier stage: fixed scores for given texts (substring match), else nothing."""

    def __init__(self, name: str, table: Mapping[str, Mapping[str, float]]) -> None:
        self.name = name
        self.table = table
        self.seen: list[str] = []

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.seen.extend(texts)
        out = []
        for text in texts:
            scores: dict[str, float] = {}
            for key, value in self.table.items():
                if key in text:
                    scores.update(value)
            out.append(scores)
        return out

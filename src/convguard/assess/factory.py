"""Choosing and building the assessor a deployment runs (settings → assessor).

Building the classifiers loads model weights, so :class:`LazyAssessor` defers it to the first
message that needs it: a replay whose turns all carry labels never loads a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from convguard.assess.types import Assessment, Assessor, Role, ScriptedAssessor
from convguard.errors import InvalidInput
from convguard.policy import Policy

__all__ = ["AssessorKind", "LazyAssessor", "build_assessor"]

AssessorKind = Literal["cascade", "linear", "scripted"]


def build_assessor(kind: str, policy: Policy) -> Assessor:
    if kind == "scripted":
        return ScriptedAssessor(policy)
    if kind in ("cascade", "linear"):
        from convguard.assess.cascade import build_cascade

        return build_cascade(policy, stages=("linear",) if kind == "linear" else None)
    raise InvalidInput(f"unknown classifier {kind!r}; use 'cascade', 'linear' or 'scripted'")


class LazyAssessor:
    def __init__(self, kind: str, policy: Policy) -> None:
        self.kind = kind
        self.policy = policy
        self._inner: Assessor | None = None

    def assess(self, text: str, *, role: Role = "user", context: Sequence[str] = ()) -> Assessment:
        if self._inner is None:
            self._inner = build_assessor(self.kind, self.policy)
        return self._inner.assess(text, role=role, context=context)

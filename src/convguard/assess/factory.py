"""Choosing and building the assessor a deployment runs (settings → assessor).

Building the classifiers loads model weights, so :class:`LazyAssessor` defers it to the first
message that needs it: a replay whose turns all carry labels never loads a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from convguard.assess.types import Assessment, Assessor, Role, ScriptedAssessor
from convguard.errors import InvalidInput
from convguard.policy import Policy

__all__ = ["LazyAssessor", "build_assessor"]


def build_assessor(
    kind: str, policy: Policy, *, options: Mapping[str, Any] | None = None
) -> Assessor:
    """``cascade``, ``linear``, ``scripted``, or a comma-separated list of stage names."""
    from convguard.assess.cascade import build_cascade

    if kind == "scripted":
        return ScriptedAssessor(policy)
    if kind == "cascade":
        return build_cascade(policy, options=options)
    stages = [name.strip() for name in kind.split(",") if name.strip()]
    if not stages:
        raise InvalidInput(
            f"classifier {kind!r} names no stage; use 'cascade', 'linear', 'scripted' "
            "or a list such as 'linear,encoder'"
        )
    return build_cascade(policy, stages, options=options)


class LazyAssessor:
    def __init__(
        self, kind: str, policy: Policy, *, options: Mapping[str, Any] | None = None
    ) -> None:
        self.kind = kind
        self.policy = policy
        self.options = options
        self._inner: Assessor | None = None

    def assess(self, text: str, *, role: Role = "user", context: Sequence[str] = ()) -> Assessment:
        if self._inner is None:
            self._inner = build_assessor(self.kind, self.policy, options=self.options)
        return self._inner.assess(text, role=role, context=context)

"""``convguard.assess(text)``: the built-in cascade under the default policy, built on first use.

A convenience for scripts and notebooks; services build their own assessor from their settings
(:func:`convguard.assess.factory.build_assessor`) and pass it down.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from convguard.assess.types import Assessment, Assessor, Role
from convguard.policy import Policy, default_policy

__all__ = ["assess"]

_lock = threading.Lock()
_built: dict[str, Assessor] = {}


def assess(
    text: str,
    *,
    context: Sequence[str] | None = None,
    role: Role = "user",
    policy: Policy | None = None,
) -> Assessment:
    """Assess one message (with the recent user turns as ``context``) with the built-in cascade."""
    from convguard.assess.cascade import build_cascade

    chosen = policy or default_policy()
    with _lock:
        assessor = _built.get(chosen.version)
        if assessor is None:
            assessor = _built[chosen.version] = build_cascade(chosen)
    return assessor.assess(text, role=role, context=tuple(context or ()))

"""Assessment: normalise text, score it against the policy's categories and flags."""

from convguard.assess.types import (
    Assessment,
    Assessor,
    Classifier,
    Evidence,
    Role,
    ScriptedAssessor,
    check_labels,
)

__all__ = [
    "Assessment",
    "Assessor",
    "Classifier",
    "Evidence",
    "Role",
    "ScriptedAssessor",
    "check_labels",
]

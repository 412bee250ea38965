"""What an assessment is, and the protocols that produce one.

An :class:`Assessment` holds a score in [0, 1] for every category and flag the policy knows, the
ids over their thresholds, the evidence that fired, and how long it took. It is a plain frozen
value: the core decides on it without knowing which classifier produced it.

Pure: no I/O, clock or randomness here; the caller measures ``elapsed_ms`` and passes it in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from convguard.errors import InvalidInput
from convguard.policy import CATEGORY_IDS, FLAG_IDS, OUTPUT_FLAG_IDS, Policy

__all__ = [
    "Assessment",
    "Assessor",
    "Classifier",
    "Evidence",
    "Role",
    "ScriptedAssessor",
    "check_labels",
    "highest_by_owner",
]

Role = Literal["user", "assistant", "tool"]
KNOWN_LABELS: tuple[str, ...] = CATEGORY_IDS + FLAG_IDS + OUTPUT_FLAG_IDS


def highest_by_owner(
    owner: Sequence[int], scores: Iterable[Mapping[str, float]]
) -> dict[int, dict[str, float]]:
    """Each owner's highest score per label over its views (``owner[i]`` owns ``scores[i]``)."""
    merged: dict[int, dict[str, float]] = {}
    for i, answer in zip(owner, scores, strict=True):
        into = merged.setdefault(i, {})
        for label, value in answer.items():
            into[label] = max(into.get(label, 0.0), float(value))
    return merged


@dataclass(frozen=True)
class Evidence:
    """One reason a label scored as it did: which stage, which label, what it saw."""

    label: str
    source: str
    score: float
    detail: str = ""


@dataclass(frozen=True)
class Assessment:
    scores: Mapping[str, float]
    categories: tuple[str, ...]
    flags: tuple[str, ...]
    evidence: tuple[Evidence, ...] = ()
    elapsed_ms: float = 0.0
    source: str = ""
    #: Set when the classifier failed and the policy's ``on_classifier_error`` was applied.
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_scores(
        cls,
        policy: Policy,
        scores: Mapping[str, float],
        *,
        evidence: Iterable[Evidence] = (),
        elapsed_ms: float = 0.0,
        source: str = "",
        error: str | None = None,
    ) -> Assessment:
        """Apply the policy's thresholds to raw scores (missing ids score 0)."""
        full = {label: float(scores.get(label, 0.0)) for label in KNOWN_LABELS}
        for label, score in full.items():
            if not 0.0 <= score <= 1.0:
                raise InvalidInput(f"score for {label!r} is {score!r}; scores lie in [0, 1]")
        return cls(
            scores=full,
            categories=tuple(c for c in CATEGORY_IDS if full[c] >= policy.threshold(c)),
            flags=tuple(f for f in FLAG_IDS + OUTPUT_FLAG_IDS if full[f] >= policy.threshold(f)),
            evidence=tuple(evidence),
            elapsed_ms=elapsed_ms,
            source=source,
            error=error,
        )

    @classmethod
    def from_labels(
        cls,
        policy: Policy,
        categories: Iterable[str] = (),
        flags: Iterable[str] = (),
        *,
        source: str = "labels",
    ) -> Assessment:
        """An assessment given by hand (a transcript's labels, a scripted test)."""
        wanted = check_labels(categories, flags)
        return cls.from_scores(
            policy,
            dict.fromkeys(wanted, 1.0),
            evidence=tuple(Evidence(label, source, 1.0) for label in wanted),
            source=source,
        )

    @property
    def score(self) -> float:
        """The highest score of any category (the single "how unsafe" number)."""
        return max((self.scores.get(c, 0.0) for c in CATEGORY_IDS), default=0.0)

    @property
    def flagged(self) -> bool:
        """What a moderation API's users mean by flagged: a category at or over its threshold,
        or imminent risk to the person or others (which is a flag, not a category)."""
        return bool(self.categories) or "imminent_risk" in self.flags

    def has(self, label: str) -> bool:
        return label in self.categories or label in self.flags

    def with_flag(self, policy: Policy, flag: str, *, source: str, detail: str = "") -> Assessment:
        """The same assessment with one more flag raised at full score."""
        scores = dict(self.scores)
        scores[flag] = 1.0
        return Assessment.from_scores(
            policy,
            scores,
            evidence=(*self.evidence, Evidence(flag, source, 1.0, detail)),
            elapsed_ms=self.elapsed_ms,
            source=self.source,
            error=self.error,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "categories": list(self.categories),
            "flags": list(self.flags),
            "evidence": [
                {
                    "label": e.label,
                    "source": e.source,
                    "score": round(e.score, 6),
                    "detail": e.detail,
                }
                for e in self.evidence
            ],
            "elapsed_ms": self.elapsed_ms,
            "source": self.source,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        return cls(
            scores=dict(data["scores"]),
            categories=tuple(data["categories"]),
            flags=tuple(data["flags"]),
            evidence=tuple(
                Evidence(e["label"], e["source"], e["score"], e.get("detail", ""))
                for e in data.get("evidence", ())
            ),
            elapsed_ms=float(data.get("elapsed_ms", 0.0)),
            source=str(data.get("source", "")),
            error=data.get("error"),
        )


def check_labels(categories: Iterable[str], flags: Iterable[str]) -> tuple[str, ...]:
    """Validate hand-given label ids; unknown ids fail naming the id and the allowed ones."""
    out: list[str] = []
    for cid in categories:
        if cid not in CATEGORY_IDS:
            raise InvalidInput(
                f"unknown category {cid!r}; allowed categories: {', '.join(CATEGORY_IDS)}"
            )
        out.append(cid)
    for fid in flags:
        if fid not in FLAG_IDS + OUTPUT_FLAG_IDS:
            raise InvalidInput(
                f"unknown flag {fid!r}; allowed flags: {', '.join(FLAG_IDS + OUTPUT_FLAG_IDS)}"
            )
        out.append(fid)
    return tuple(dict.fromkeys(out))


@runtime_checkable
class Classifier(Protocol):
    """A model that scores texts: for each text, a score in [0, 1] per label id it knows.

    Third-party classifiers register under the ``convguard.classifiers`` entry-point group.
    """

    name: str

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


@runtime_checkable
class Assessor(Protocol):
    """What the service calls: text (and the recent user turns) in, an :class:`Assessment` out."""

    def assess(
        self, text: str, *, role: Role = "user", context: Sequence[str] = ()
    ) -> Assessment: ...


class ScriptedAssessor:
    """A fake assessor that answers from a script: exact texts mapped to labels.

    Shipped in the package so tests and demos can drive the service without model weights.
    Unscripted texts are benign.
    """

    def __init__(self, policy: Policy, script: Mapping[str, Iterable[str]] | None = None) -> None:
        self._policy = policy
        self._script: dict[str, tuple[str, ...]] = {}
        for text, labels in (script or {}).items():
            labels = tuple(labels)
            cats = [x for x in labels if x in CATEGORY_IDS]
            flags = [x for x in labels if x not in CATEGORY_IDS]
            self._script[text] = check_labels(cats, flags)
        self.calls: list[tuple[str, Role, tuple[str, ...]]] = []

    def assess(self, text: str, *, role: Role = "user", context: Sequence[str] = ()) -> Assessment:
        self.calls.append((text, role, tuple(context)))
        labels = self._script.get(text, ())
        return Assessment.from_labels(
            self._policy,
            [x for x in labels if x in CATEGORY_IDS],
            [x for x in labels if x not in CATEGORY_IDS],
            source="scripted",
        )

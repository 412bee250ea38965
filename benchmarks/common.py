"""What the benchmarks share: metrics, PASS/MISS targets, markdown tables, and stage loading.

Everything here but :func:`load_stages` and :func:`weights_fingerprint` is pure (numbers in,
numbers or text out), so ``tests/test_benchmarks.py`` drives it on synthetic numbers without
``../shared/data`` or model weights.

The metrics are computed with numpy alone (no scikit-learn at run time): average precision is
the step-wise area under the precision-recall curve, as scikit-learn's
``average_precision_score`` defines it (ties share one threshold).
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "src", ROOT / "training"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from convguard.assess.cascade import Cascade, Refiner  # noqa: E402
from convguard.assess.types import Classifier  # noqa: E402
from convguard.policy import Policy  # noqa: E402

__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_OUT",
    "ROOT",
    "BinaryMetrics",
    "Memo",
    "MemoLogits",
    "Target",
    "average_precision",
    "binary_metrics",
    "fmt",
    "log",
    "markdown_table",
    "pr_curve",
    "weights_fingerprint",
]

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "benchmarks" / "results"
WEIGHTS = ROOT / "src" / "convguard" / "assess" / "weights"

FloatArray = npt.NDArray[np.float64]


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the tables."""
    print(message, file=sys.stderr, flush=True)


# --- metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryMetrics:
    """Counts and rates of one binary decision over one set; ``nan`` where undefined."""

    n: int
    positives: int
    tp: int
    fp: int
    precision: float
    recall: float
    f1: float
    fpr: float
    auprc: float
    flagged: float


def average_precision(labels: Sequence[int] | npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the step-wise precision-recall curve; ``nan`` without both classes."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        return math.nan
    precision, recall, _ = pr_curve(y, s)
    # pr_curve runs from the highest threshold down; recall rises from 0 to 1.
    return float(np.sum(np.diff(np.concatenate(([0.0], recall))) * precision))


def pr_curve(
    labels: Sequence[int] | npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Precision, recall and threshold at every distinct score, highest threshold first."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    # The last index of every run of equal scores: ties are flagged together.
    last = np.flatnonzero(np.concatenate((np.diff(s) != 0, [True])))
    tp = np.cumsum(y)[last].astype(np.float64)
    flagged = (last + 1).astype(np.float64)
    precision = tp / flagged
    recall = tp / max(int(y.sum()), 1)
    return precision, recall, s[last]


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def binary_metrics(
    labels: Sequence[int] | npt.ArrayLike,
    scores: npt.ArrayLike,
    threshold: float = 0.0,
) -> BinaryMetrics:
    """Precision, recall, F1, FPR at ``score >= threshold``, and AUPRC over all thresholds.

    Precision, F1 and AUPRC need both classes and are ``nan`` on a one-class set; recall
    needs positives, FPR needs negatives.
    """
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape!r} and scores {s.shape!r} differ in shape")
    hit = s >= threshold
    n, positives = len(y), int(y.sum())
    negatives = n - positives
    tp = int((hit & (y == 1)).sum())
    fp = int((hit & (y == 0)).sum())
    both = positives > 0 and negatives > 0
    precision = _ratio(tp, tp + fp) if both else math.nan
    recall = _ratio(tp, positives)
    f1 = (
        2 * precision * recall / (precision + recall)
        if both and precision + recall > 0
        else (0.0 if both else math.nan)
    )
    return BinaryMetrics(
        n=n,
        positives=positives,
        tp=tp,
        fp=fp,
        precision=precision,
        recall=recall,
        f1=f1,
        fpr=_ratio(fp, negatives),
        auprc=average_precision(y, s),
        flagged=_ratio(int(hit.sum()), n),
    )


# --- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One number the issue asks for: ``metric`` compared ``at_least`` or ``at_most`` ``value``."""

    metric: str
    op: Literal[">=", "<="]
    value: float
    #: How the value is written in tables (a percentage, a rate, a duration ...).
    unit: Literal["ratio", "ms", "per_s", "s", "mb"] = "ratio"

    def met(self, observed: float) -> bool | None:
        """True or False; ``None`` when nothing was measured."""
        if observed is None or math.isnan(observed):
            return None
        return observed >= self.value if self.op == ">=" else observed <= self.value

    def verdict(self, observed: float) -> str:
        met = self.met(observed)
        return "n/a" if met is None else ("PASS" if met else "**MISS**")

    def describe(self) -> str:
        return f"{self.metric} {'≥' if self.op == '>=' else '≤'} {fmt(self.value, self.unit)}"


# --- formatting ------------------------------------------------------------------------------


def fmt(value: float | int | None, unit: str = "ratio") -> str:
    """A number as the tables write it; ``–`` for missing or undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if unit == "ratio":
        # Rates of 1 in 10,000 (the strike target) need more places than 0.000.
        return f"{value:.5f}" if 0 < abs(value) < 0.001 else f"{value:.3f}"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "per_s":
        return f"{value:,.0f}/s"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "mb":
        return f"{value:,.0f} MB"
    return f"{value}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub markdown table; cells are written with ``str`` (pipes escaped)."""

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells; the header has {len(header)}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


# --- stages ----------------------------------------------------------------------------------


def weights_fingerprint() -> str:
    """Which weight files were measured: name, size and a short SHA-256 of each."""
    parts = []
    for path in sorted(WEIGHTS.glob("*")) if WEIGHTS.is_dir() else []:
        if path.is_file() and path.name.startswith(("linear", "encoder", "mpnet", "cascade")):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            parts.append(f"`{path.name}` ({path.stat().st_size / 1e6:.1f} MB, sha256 {digest})")
    return ", ".join(parts) or "none"


class Memo:
    """A classifier stage that remembers the scores of texts it has seen.

    The benchmarks score the same texts through several cascades (each stage alone, then
    chained); a stage's score of a text does not depend on its batch, so it is computed once.
    """

    def __init__(self, stage: Classifier) -> None:
        self.stage = stage
        self.name = stage.name
        self._seen: dict[str, dict[str, float]] = {}

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if missing:
            for text, scores in zip(missing, self.stage.score(missing), strict=True):
                self._seen[text] = scores
        return [dict(self._seen[t]) for t in texts]


def encoder_weights_present() -> bool:
    from convguard.assess.encoder import default_heads_path

    return default_heads_path().is_file()


class MemoLogits:
    """A refining stage that computes each distinct text's logit once (benchmarks read the same
    texts through several cascades)."""

    def __init__(self, stage: Refiner) -> None:
        self.stage = stage
        self.name = stage.name
        self._seen: dict[str, float] = {}

    def logits(self, texts: Sequence[str]) -> list[float]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if missing:
            self._seen.update(zip(missing, self.stage.logits(missing), strict=True))
        return [self._seen[t] for t in texts]


def load_stages(names: Sequence[str], policy: object) -> dict[str, Classifier | Refiner]:
    """The named stages, built as the cascade builds them and loaded now (load time apart); a
    refining stage (``mpnet``, :class:`convguard.assess.cascade.Refinement`) is loaded too.

    An ``encoder`` whose heads are not there yet is left out, with a note on stderr.
    """
    from convguard.assess.cascade import REFINING_STAGES, available_stages

    known = available_stages()
    stages: dict[str, Classifier | Refiner] = {}
    for name in names:
        if name in REFINING_STAGES:
            refiner = REFINING_STAGES[name]()
            loader: Callable[[], object] | None = getattr(refiner, "load", None)
            if loader is not None:
                loader()
            stages[name] = refiner
            continue
        if name not in known:
            choices = ", ".join(sorted([*known, *REFINING_STAGES]))
            raise SystemExit(f"unknown stage {name!r}; available: {choices}")
        if name == "encoder" and not encoder_weights_present():
            log("encoder heads (weights/encoder.npz) not found: the encoder stage is left out")
            continue
        stage = known[name](policy, {})  # type: ignore[arg-type]
        loader = getattr(stage, "load", None)
        if loader is not None and name != "linear":
            loader()
        stages[name] = stage
    return stages


def is_refining(name: str) -> bool:
    from convguard.assess.cascade import REFINING_STAGES

    return name in REFINING_STAGES


def stage_columns(names: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Each classifier stage alone, then the cascade of them when there is more than one, then
    (with a refining stage last) the cascade with it, ``cascade+mpnet``."""
    plain = [n for n in names if not is_refining(n)]
    columns = [(name, (name,)) for name in plain]
    if len(plain) > 1:
        columns.append(("cascade", tuple(plain)))
    if len(plain) < len(names):
        columns.append(("+".join(["cascade", *(n for n in names if is_refining(n))]), tuple(names)))
    return columns


def build_column(
    policy: Policy, stages: Mapping[str, Classifier | Refiner], names: Sequence[str]
) -> Cascade:
    """The cascade of ``names`` (a refining stage, when there is one, last) with the shipped
    tuning."""
    from convguard.assess.cascade import Cascade, load_tuning

    refining = [stages[n] for n in names if is_refining(n)]
    plain = [stages[n] for n in names if not is_refining(n)]
    return Cascade(
        policy,
        plain,  # type: ignore[arg-type]
        tuning=load_tuning(),
        refiner=refining[0] if refining else None,  # type: ignore[arg-type]
    )

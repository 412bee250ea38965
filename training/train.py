"""Build every shipped classifier weight file from ``../shared/data``, reproducibly.

    python training/train.py [--data-dir ../shared/data] [--stages linear,encoder] [--seed 13]

Stages:

- ``linear``: hashed n-gram one-vs-rest logistic regression (scikit-learn at training time only)
  → ``src/convguard/assess/weights/linear.npz``; its section of ``training/REPORT.md``.
- ``encoder``: delegated to ``training/encoder.py``, which must expose
  ``train_stage(dataset, *, data_dir, seed) -> str`` returning its report section (markdown).

Progress goes to stderr. Thresholds are chosen on the validation split of the training sources
(max F1 per label); every number in the report's evaluation table comes from sets kept out of
training (see ``training/dataset.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from dataset import (  # noqa: E402
    LABEL_IDS,
    SOURCES,
    Dataset,
    EvalSet,
    Example,
    build_dataset,
    describe,
    eval_sets,
)

from convguard.assess.linear import LinearClassifier, featurize, prepare  # noqa: E402
from convguard.assess.normalise import normalise  # noqa: E402
from convguard.policy import CATEGORY_IDS  # noqa: E402

WEIGHTS = ROOT / "src/convguard/assess/weights/linear.npz"
REPORT = HERE / "REPORT.md"
BITS = 17
C = 4.0
T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[train {time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def _matrix(texts: Sequence[str], bits: int) -> object:
    from scipy.sparse import csr_matrix, vstack

    blocks = []
    for start in range(0, len(texts), 4096):
        chunk = [prepare(normalise(t).text) for t in texts[start : start + 4096]]
        f = featurize(chunk, bits)
        blocks.append(
            csr_matrix((f.value, (f.doc, f.index)), shape=(len(chunk), 2**bits), dtype=np.float32)
        )
    return vstack(blocks).tocsr()


def _targets(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([[ex.labels[label] for label in LABEL_IDS] for ex in examples], dtype=np.float32)
    known = np.array(
        [[label not in ex.unknown for label in LABEL_IDS] for ex in examples], dtype=np.float32
    )
    return y, known


def _best_threshold(p: np.ndarray, y: np.ndarray) -> float:
    if y.sum() == 0:
        return 0.5
    best, best_f1 = 0.5, -1.0
    for t in np.linspace(0.1, 0.9, 81):
        pred = p >= t
        tp = float((pred & (y == 1)).sum())
        fp = float((pred & (y == 0)).sum())
        fn = float((~pred & (y == 1)).sum())
        f1 = 2 * tp / max(2 * tp + fp + fn, 1.0)
        if f1 > best_f1 + 1e-9:
            best, best_f1 = float(t), f1
    return best


def train_linear(ds: Dataset, *, seed: int, bits: int = BITS) -> LinearClassifier:
    from sklearn.linear_model import LogisticRegression

    log(f"featurising {len(ds.train)} train + {len(ds.val)} val texts into 2^{bits} buckets")
    x_train = _matrix([ex.text for ex in ds.train], bits)
    x_val = _matrix([ex.text for ex in ds.val], bits)
    y_train, k_train = _targets(ds.train)
    y_val, k_val = _targets(ds.val)
    weights = np.zeros((2**bits, len(LABEL_IDS)), dtype=np.float32)
    bias = np.zeros(len(LABEL_IDS), dtype=np.float32)
    thresholds = np.full(len(LABEL_IDS), 0.5, dtype=np.float32)
    for j, label in enumerate(LABEL_IDS):
        mask = k_train[:, j] > 0
        y = y_train[mask, j]
        pos = int(y.sum())
        if pos == 0:
            log(f"  {label}: no positives; constant 0")
            bias[j] = -10.0
            continue
        # Rare labels get their positives up-weighted (to at most 1:10), common ones stay as is.
        w_pos = float(min(10.0, max(1.0, 0.1 * (len(y) - pos) / pos)))
        sample_weight = np.where(y == 1, w_pos, 1.0)
        model = LogisticRegression(C=C, solver="liblinear", max_iter=200, random_state=seed)
        model.fit(x_train[mask], y, sample_weight=sample_weight)
        weights[:, j] = model.coef_[0]
        bias[j] = model.intercept_[0]
        vmask = k_val[:, j] > 0
        logit = x_val[vmask] @ weights[:, j] + bias[j]
        p = 1.0 / (1.0 + np.exp(-logit))
        thresholds[j] = _best_threshold(p, y_val[vmask, j])
        log(f"  {label}: {pos} positives (weight {w_pos:.1f}), val threshold {thresholds[j]:.2f}")
    shift = np.log(thresholds / (1.0 - thresholds)).astype(np.float32)
    return LinearClassifier(
        weights.astype(np.float16),
        bias - shift,
        LABEL_IDS,
        bits=bits,
        thresholds=thresholds,
        meta={"seed": seed, "C": C, "train": len(ds.train), "val": len(ds.val)},
    )


# --- evaluation ------------------------------------------------------------------------------


def _metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    tp = float((pred & (y == 1)).sum())
    fp = float((pred & (y == 0)).sum())
    fn = float((~pred & (y == 1)).sum())
    tn = float((~pred & (y == 0)).sum())
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    fpr = fp / (fp + tn) if fp + tn else float("nan")
    return {"precision": prec, "recall": rec, "f1": f1, "fpr": fpr, "flagged": float(pred.mean())}


def evaluate(clf: LinearClassifier, sets: dict[str, EvalSet]) -> list[dict[str, object]]:
    cats = [clf.labels.index(c) for c in CATEGORY_IDS]
    jb = clf.labels.index("jailbreak")
    rows: list[dict[str, object]] = []
    for name, es in sets.items():
        scores = np.concatenate(
            [clf.score_array(es.texts[i : i + 512]) for i in range(0, len(es.texts), 512)]
        )
        y = np.asarray(es.labels)
        unsafe = (scores[:, cats] >= 0.5).any(axis=1)
        if es.measures == "unsafe":
            variants = {"unsafe": unsafe, "unsafe or jailbreak": unsafe | (scores[:, jb] >= 0.5)}
        else:
            j = clf.labels.index(es.measures)
            variants = {es.measures: scores[:, j] >= 0.5}
        for what, pred in variants.items():
            m = _metrics(pred, y)
            rows.append({"set": name, "role": es.role, "measures": what, "n": len(y),
                         "positives": int(y.sum()), **m})  # fmt: skip
        log(f"  eval {name}: " + ", ".join(f"{k}={v:.3f}" for k, v in m.items()))
    return rows


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "–" if v != v else f"{v:.3f}"
    return str(v)


def write_report(
    ds: Dataset, clf: LinearClassifier, rows: list[dict[str, object]], extra: Sequence[str]
) -> None:
    info = describe(ds)
    lines = [
        "# Training report",
        "",
        "Generated by `python training/train.py`; do not edit by hand.",
        "",
        "## Sources used for training (licence, attribution)",
        "",
        "| source | licence | attribution | examples |",
        "|---|---|---|---|",
    ]
    counts = info["sources"]
    for folder, (licence, who) in SOURCES.items():
        n = sum(v for k, v in counts.items() if k.startswith(folder.split("_")[0]))
        lines.append(f"| `{folder}` | {licence} | {who} | {n} |")
    lines += [
        "",
        "CC-BY-SA sets (NQ-Open, SGD dialogues) are used with attribution as above; the shipped",
        "weights are hashed n-gram coefficients, not the texts.",
        "",
        "Examples per mapped source (after leakage filtering): "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        "",
        "Dropped as exact/near duplicates of evaluation texts (or of each other): "
        + ", ".join(f"{k} {v}" for k, v in sorted(ds.dropped.items())),
        "",
        "## Positives per label (train + val, known labels only)",
        "",
        "| label | positives | val threshold (raw prob → 0.5) |",
        "|---|---|---|",
    ]
    assert clf.thresholds is not None
    for j, label in enumerate(clf.labels):
        lines.append(f"| {label} | {info['labels'][label]} | {clf.thresholds[j]:.2f} |")
    lines += [
        "",
        "## Linear stage on sets kept out of training",
        "",
        "A text is flagged when the label's score ≥ 0.5 (the tuned operating point).",
        "`unsafe` = any category; `unsafe or jailbreak` also counts the jailbreak flag.",
        "",
        "| set | role | measures | n | positives | precision | recall | F1 | FPR | flagged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                _fmt(r[k])
                for k in (
                    "set",
                    "role",
                    "measures",
                    "n",
                    "positives",
                    "precision",
                    "recall",
                    "f1",
                    "fpr",
                    "flagged",
                )
            )
            + " |"
        )
    lines += ["", *extra, ""]
    REPORT.write_text("\n".join(lines), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--stages", default="linear")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - {"linear", "encoder"}
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)!r}; choose from linear, encoder")
    np.random.seed(args.seed)
    log(f"building dataset from {args.data_dir}")
    ds = build_dataset(args.data_dir, seed=args.seed)
    extra: list[str] = []
    if "linear" in stages:
        clf = train_linear(ds, seed=args.seed)
        WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
        clf.save(WEIGHTS)
        log(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.1f} MB)")
        clf = LinearClassifier.load(WEIGHTS)
        log("evaluating on held-out sets")
        rows = evaluate(clf, eval_sets(args.data_dir))
    if "encoder" in stages:
        import encoder  # training/encoder.py

        extra.append(encoder.train_stage(ds, data_dir=args.data_dir, seed=args.seed))
    if "linear" in stages:
        write_report(ds, clf, rows, extra)
        log(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build every shipped classifier weight file from ``../shared/data``, reproducibly.

    python training/train.py [--data-dir ../shared/data]
                             [--stages words,linear,finetune,encoder,agent,cascade,mpnet]
                             [--seed 13]

Builds every shipped weight file; by default the stages words, linear, encoder, agent, cascade
and mpnet, in this order (``finetune`` runs only when named: its measured result is not shipped, see
``training/REPORT-finetune.md``):

- ``words``: the training split's most frequent words, ``training/words.py``
  → ``src/convguard/assess/weights/words.txt.gz``, with which normalisation splits words run
  together ("howdoimake...").

- ``linear``: hashed n-gram one-vs-rest logistic regression (scikit-learn at training time only)
  → ``src/convguard/assess/weights/linear.npz``; its section of ``training/REPORT.md``.
- ``finetune``: the top layers of the encoder, fine-tuned on the same rows as the heads,
  ``training/finetune.py`` (the longest stage: ~30 min on 2 CPU cores) → a delta over the packaged
  base weights that the ``encoder`` stage ships inside ``weights/encoder.npz``; it implies
  ``encoder``. Without it, ``encoder`` keeps the delta the shipped file already carries.
- ``encoder``: the encoder stage's heads and operating points, ``training/heads.py``
  → ``weights/encoder.npz`` and ``training/REPORT-encoder.md``.
- ``agent``: the agent guard's command models, ``training/agent_model.py``
  → ``weights/agent_tokens.npz`` (Atomic Red Team and NL2Bash train halves) and
  ``weights/agent_tokens_windows.npz`` (its PowerShell and cmd train half against
  ``training/data/benign_windows_commands.txt``).
- ``cascade``: the cascade's unsure band and combine rule, chosen on the validation split by
  ``training/cascade.py`` → ``weights/cascade.json`` and ``training/REPORT-cascade.md`` (after
  ``linear``, whose shipped weights it scores with).
- ``mpnet``: the third stage, all-mpnet-base-v2 for the texts the stacked decision is unsure of,
  ``training/mpnet_stage.py`` → ``weights/mpnet.npz``, ``weights/mpnet-graph-int8.onnx``, the
  ``refine`` entry of ``weights/cascade.json`` and ``training/REPORT-mpnet.md`` (after
  ``cascade``, whose decision it refines; rerunning ``cascade`` alone drops that entry).

``training/holdout.py`` (run on demand, not a stage) measures the ``unsafe`` head on whole
sources it never saw → ``training/REPORT-holdout.md``.

The training data is declared in ``training/manifest.yaml`` (sources, licences, roles, caps,
weights, label maps) and read by ``training/dataset.py``.

Progress goes to stderr. Thresholds are chosen on the validation split of the training sources
(max F1 per label); every number in the report's evaluation table comes from sets kept out of
training (see ``training/dataset.py``).
"""

from __future__ import annotations

import argparse
import subprocess
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
    for_stage,
    is_unsafe,
)

from convguard.assess.linear import LinearClassifier, featurize, prepare  # noqa: E402
from convguard.assess.normalise import normalise  # noqa: E402
from convguard.policy import CATEGORY_IDS  # noqa: E402

WEIGHTS = ROOT / "src/convguard/assess/weights/linear.npz"
REPORT = HERE / "REPORT.md"
STAGES = ("words", "linear", "finetune", "encoder", "agent", "cascade", "mpnet")
DEFAULT_STAGES = ("words", "linear", "encoder", "agent", "cascade", "mpnet")
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


def _unsafe(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    u = [is_unsafe(ex) for ex in examples]
    return (
        np.array([v or 0.0 for v in u], dtype=np.float32),
        np.array([v is not None for v in u], dtype=bool),
    )


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


def _fit(x: object, y: np.ndarray, w: np.ndarray, *, seed: int, max_pos: float = 10.0,
         ratio: float = 0.1) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """One logistic regression; rare positives up-weighted to at most ``ratio`` of negatives."""
    from sklearn.linear_model import LogisticRegression

    pos = float(w[y == 1].sum())
    neg = float(w[y == 0].sum())
    w_pos = float(min(max_pos, max(1.0, ratio * neg / max(pos, 1e-9))))
    model = LogisticRegression(C=C, solver="liblinear", max_iter=300, random_state=seed)
    model.fit(x, y, sample_weight=np.where(y == 1, w_pos, 1.0) * w)
    return model.coef_[0], float(model.intercept_[0]), w_pos


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


#: The shared unsafe head's operating point must catch this share of the tuning behaviours
#: (harmbench_val, never an evaluation set) and of the validation split's harmful rows ...
GATE_RECALL = 0.95
#: ... unless that costs more than this false-positive rate on the validation split's benign rows.
GATE_MAX_FPR = 0.04


def _gate_threshold(
    p_val: np.ndarray, y_val: np.ndarray, p_tune: np.ndarray
) -> tuple[float, list[str]]:
    """The highest threshold meeting :data:`GATE_RECALL` on both, within :data:`GATE_MAX_FPR`."""
    lines = []
    chosen = None
    fallback = 0.5
    for t in np.linspace(0.05, 0.95, 91):
        rec_val = float((p_val[y_val == 1] >= t).mean())
        fpr_val = float((p_val[y_val == 0] >= t).mean())
        rec_tune = float((p_tune >= t).mean())
        if abs(t * 20 - round(t * 20)) < 1e-6:
            lines.append(f"| {t:.2f} | {rec_tune:.3f} | {rec_val:.3f} | {fpr_val:.3f} |")
        if fpr_val <= GATE_MAX_FPR and fallback == 0.5:
            fallback = float(t)
        if rec_val >= GATE_RECALL and rec_tune >= GATE_RECALL and fpr_val <= GATE_MAX_FPR:
            chosen = float(t)
    return (chosen if chosen is not None else fallback), lines


def train_linear(
    ds: Dataset, *, seed: int, tuning: Sequence[str], bits: int = BITS
) -> tuple[LinearClassifier, list[str]]:
    log(f"featurising {len(ds.train)} train + {len(ds.val)} val texts into 2^{bits} buckets")
    x_train = _matrix([ex.text for ex in ds.train], bits)
    x_val = _matrix([ex.text for ex in ds.val], bits)
    y_train, k_train = _targets(ds.train)
    y_val, k_val = _targets(ds.val)
    w_train = np.array([ex.weight for ex in ds.train], dtype=np.float64)
    u_train, uk_train = _unsafe(ds.train)
    u_val, uk_val = _unsafe(ds.val)
    n = len(LABEL_IDS)
    weights = np.zeros((2**bits, n + 1), dtype=np.float32)
    bias = np.zeros(n + 1, dtype=np.float32)
    thresholds = np.full(n + 1, 0.5, dtype=np.float32)

    # The shared unsafe gate: every harmful text of every source against the benign pool.
    coef, b, w_pos = _fit(x_train[uk_train], u_train[uk_train], w_train[uk_train], seed=seed,
                          max_pos=3.0, ratio=0.5)  # fmt: skip
    weights[:, n], bias[n] = coef, b
    log(f"  unsafe gate: {int(u_train[uk_train].sum())} positives (weight {w_pos:.1f})")

    # Categories: which one, given harmful (trained on the harmful rows only).
    harm = (u_train == 1) & uk_train
    for j, label in enumerate(LABEL_IDS):
        known = k_train[:, j] > 0
        mask = harm & known if label in CATEGORY_IDS else known
        y = y_train[mask, j]
        if y.sum() == 0:
            log(f"  {label}: no positives; constant 0")
            bias[j] = -10.0
            continue
        coef, b, w_pos = _fit(x_train[mask], y, w_train[mask], seed=seed)
        weights[:, j], bias[j] = coef, b
        if label not in CATEGORY_IDS:
            vmask = k_val[:, j] > 0
            p = _sigmoid(x_val[vmask] @ weights[:, j] + bias[j])
            thresholds[j] = _best_threshold(p, y_val[vmask, j])
        log(f"  {label}: {int(y.sum())} positives of {int(mask.sum())} (weight {w_pos:.1f}), "
            f"threshold {thresholds[j]:.2f}")  # fmt: skip

    p_val = _sigmoid(x_val[uk_val] @ weights[:, n] + bias[n])
    tune_texts = [t for t in tuning]
    p_tune = _sigmoid(_matrix(tune_texts, bits) @ weights[:, n] + bias[n])
    thresholds[n], table = _gate_threshold(p_val, u_val[uk_val], p_tune)
    log(f"  unsafe gate threshold {thresholds[n]:.2f}")
    shift = np.log(thresholds / (1.0 - thresholds)).astype(np.float32)
    shift[[LABEL_IDS.index(c) for c in CATEGORY_IDS]] = 0.0  # conditional heads: raw
    clf = LinearClassifier(
        weights.astype(np.float16),
        bias - shift,
        LABEL_IDS,
        bits=bits,
        thresholds=thresholds[:n],
        meta={
            "seed": seed,
            "C": C,
            "train": len(ds.train),
            "val": len(ds.val),
            "unsafe_threshold": float(thresholds[n]),
        },
        gated=CATEGORY_IDS,
    )
    return clf, table


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


#: Issue 3's targets: (set, measured as, metric, "min" or "max", value).
TARGETS: list[tuple[str, str, str, str, float]] = [
    ("toxicchat_test", "unsafe or jailbreak", "f1", "min", 0.75),
    ("toxicchat_test", "unsafe or jailbreak", "fpr", "max", 0.05),
    ("harmbench_test", "unsafe", "recall", "min", 0.95),
    ("strongreject", "unsafe", "recall", "min", 0.95),
    ("simple_safety_tests", "unsafe", "recall", "min", 0.95),
    ("jbb_behaviors", "unsafe", "fpr", "max", 0.15),
    ("cyberseceval_mitre_frr", "cyberattack", "recall", "min", 0.90),
    ("cyberseceval_mitre_frr", "cyberattack", "fpr", "max", 0.10),
    ("jailbreak_llms_heldapart", "jailbreak", "recall", "min", 0.95),
    ("awesome_chatgpt_prompts", "jailbreak", "fpr", "max", 0.01),
]


CLOSING = [
    "What would close them: the hashed n-gram model does not carry intent across wording it has",
    "not seen (HarmBench/StrongREJECT/SST recall rises with data, not with C or class weights:",
    "a sweep of C 0.5–4 and positive/toxic-source weights moved recall at a fixed benign FPR by",
    "under 3 points). The linear stage should answer only where it is sure and pass the middle",
    "band to the encoder stage; the cyber gap (research-framed offensive code requests vs",
    "defensive ones) needs more permissive offensive/defensive code-request pairs than the",
    "templated atomic-red-team frames give; jailbreak FPR on role-play needs more long benign",
    "persona prompts than gpteacher and awesome_chatgpt_prompts_2026 supply.",
]


def target_lines(rows: list[dict[str, object]]) -> list[str]:
    """The targets table and a plain list of the ones missed."""
    found = {(r["set"], r["measures"]): r for r in rows}
    table = [
        "| set | measured as | metric | target | linear stage | met |",
        "|---|---|---|---|---|---|",
    ]
    missed = []
    for name, what, metric, kind, value in TARGETS:
        row = found.get((name, what))
        got = float(row[metric]) if row is not None else float("nan")  # type: ignore[arg-type]
        ok = got >= value if kind == "min" else got <= value
        sign = "≥" if kind == "min" else "≤"
        table.append(f"| {name} | {what} | {metric} | {sign} {value:.2f} | {_fmt(got)} | "
                     f"{'yes' if ok else '**no**'} |")  # fmt: skip
        if not ok:
            missed.append(f"- {name} {metric} {_fmt(got)} (target {sign} {value:.2f})")
    return ["## Issue 3 targets (linear stage alone)", "", *table, "", "## Missed targets", "",
            *(missed or ["- none"]), "", *CLOSING, ""]  # fmt: skip


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
        n = counts.get(folder, 0)
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
        "A text is flagged when the label's score ≥ 0.5 (the tuned operating point). Categories",
        "are hierarchical: score = P(unsafe) × q_c / max q (see `convguard.assess.linear`); the",
        "unsafe gate's threshold is tuned on `harmbench_val` (role *tuning*) and the validation",
        "split, never on the evaluation rows below.",
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
    lines += ["", *target_lines(rows), *extra, ""]
    REPORT.write_text("\n".join(lines), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--stages", default=",".join(DEFAULT_STAGES))
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)!r}; choose from {', '.join(STAGES)}")
    if not args.data_dir.is_dir():
        parser.error(f"{args.data_dir} is not a folder; pass --data-dir with the shared data")
    np.random.seed(args.seed)
    log(f"building dataset from {args.data_dir}")
    ds = build_dataset(args.data_dir, seed=args.seed)
    extra: list[str] = []
    if "words" in stages:
        import words  # training/words.py

        words.write(words.ranked(words.count_words(e.text for e in ds.train)))
        log(f"wrote {words.OUT.relative_to(ROOT)}")
    if "linear" in stages:
        sets = eval_sets(args.data_dir)
        tuning = [t for es in sets.values() if es.role == "tuning" for t in es.texts]
        linear_ds = for_stage(ds, "linear")
        clf, gate_table = train_linear(linear_ds, seed=args.seed, tuning=tuning)
        WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
        clf.save(WEIGHTS)
        log(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.1f} MB)")
        clf = LinearClassifier.load(WEIGHTS)
        log("evaluating on held-out sets")
        rows = evaluate(clf, sets)
    delta = None
    if "finetune" in stages:
        import finetune  # training/finetune.py

        delta = finetune.train_delta(args.data_dir, seed=args.seed, dataset=ds)
    if "encoder" in stages or delta is not None:  # heads must match the encoder they read
        import heads  # training/heads.py

        extra.append(heads.train(args.data_dir, args.seed, dataset=ds, delta=delta))
    if "linear" in stages:
        write_report(
            ds,
            clf,
            rows,
            [
                "## Unsafe gate: threshold sweep",
                "",
                "| t | harmbench_val recall | val recall | val FPR |",
                "|---|---|---|---|",
                *gate_table,
                "",
                *extra,
            ],
        )
        log(f"wrote {REPORT}")
    if "agent" in stages:
        log("agent guard command model (training/agent_model.py)")
        if args.data_dir.resolve() != (ROOT.parent / "shared" / "data").resolve():
            parser.error("the agent stage reads ../shared/data only; run it from this checkout")
        for platform in ("posix", "windows"):
            script = [sys.executable, str(HERE / "agent_model.py"), "--platform", platform]
            subprocess.run(script, check=True)
    if "cascade" in stages:
        import cascade  # training/cascade.py

        cascade.main(["--data-dir", str(args.data_dir), "--seed", str(args.seed)])
        if "mpnet" not in stages:
            log("the cascade's tuning changed: its mpnet refinement is dropped until the mpnet "
                "stage runs again (--stages mpnet)")  # fmt: skip
    if "mpnet" in stages:
        import mpnet_stage  # training/mpnet_stage.py

        mpnet_stage.train_stage(args.data_dir, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

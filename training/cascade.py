"""Choose how the cascade hands labels from the linear stage to the encoder, on validation data.

    python training/cascade.py [--data-dir ../shared/data] [--seed 13] [--max-share 0.4]

The cascade asks the encoder about a text when some label's linear score lies in the *unsure
band* ``[low, high]``, and then combines the two scores of each label in the band (``replace``:
the encoder's; ``mean``; ``max``). This script scores the validation split of the training
sources (``training/dataset.py``) and the ``tuning`` sets with both shipped stages once, replays
every candidate band and rule on those scores, and keeps the one with the best mean of

- F1 per label on the validation split (``unsafe`` = any category over its policy threshold,
  and each flag that has positives there), and
- recall on the tuning sets of harmful requests (HarmBench validation),

among those that send at most ``--max-share`` of the validation texts to the encoder (the
cascade's cost). Ties go to the smaller share. The choice is written to
``src/convguard/assess/weights/cascade.json``, which :func:`convguard.assess.cascade.build_cascade`
reads; the table of every candidate goes to ``training/REPORT-cascade.md``. No evaluation set is
read. Needs the shipped ``linear.npz`` and ``encoder.npz`` (``train.py --stages linear,encoder``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from dataset import LABEL_IDS, build_dataset, eval_sets, is_unsafe  # noqa: E402

from convguard.assess.cascade import COMBINE_RULES, CascadeTuning  # noqa: E402
from convguard.assess.encoder import EncoderClassifier  # noqa: E402
from convguard.assess.linear import LinearClassifier  # noqa: E402
from convguard.assess.normalise import normalise  # noqa: E402
from convguard.policy import CATEGORY_IDS, FLAG_IDS, default_policy  # noqa: E402

OUT = ROOT / "src/convguard/assess/weights/cascade.json"
REPORT = HERE / "REPORT-cascade.md"
LOWS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
HIGHS = (0.6, 0.7, 0.8, 0.9, 0.97)
T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[cascade {time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def _scores(stage: object, texts: Sequence[str], what: str, batch: int = 256) -> np.ndarray:
    out = np.zeros((len(texts), len(LABEL_IDS)), dtype=np.float64)
    for start in range(0, len(texts), batch):
        chunk = list(texts[start : start + batch])
        for i, s in enumerate(stage.score(chunk)):  # type: ignore[attr-defined]
            out[start + i] = [s.get(label, 0.0) for label in LABEL_IDS]
        log(f"  {what}: {min(start + batch, len(texts))}/{len(texts)}")
    return out


def combine(
    lin: np.ndarray, enc: np.ndarray, tuning: CascadeTuning
) -> tuple[np.ndarray, np.ndarray]:
    """The cascade's scores (as :meth:`Cascade.score` computes them) and which texts were sent."""
    band = (lin >= tuning.low) & (lin <= tuning.high)
    sent = band.any(axis=1)
    both = {
        "replace": enc,
        "mean": (lin + enc) / 2,
        "max": np.maximum(lin, enc),
    }[tuning.combine]
    return np.where(band & sent[:, None], both, lin), sent


def _f1(pred: np.ndarray, y: np.ndarray) -> float:
    tp = float((pred & y).sum())
    return 2 * tp / max(2 * tp + float((pred & ~y).sum()) + float((~pred & y).sum()), 1.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-share", type=float, default=0.4)
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        parser.error(f"{args.data_dir} is not a folder; pass --data-dir with the shared data")
    policy = default_policy()
    thresholds = np.array([policy.threshold(label) for label in LABEL_IDS])

    log(f"building the validation split from {args.data_dir}")
    val = build_dataset(args.data_dir, seed=args.seed).val
    tuning = [es for es in eval_sets(args.data_dir).values() if es.role == "tuning"]
    harmful = [
        t
        for es in tuning
        if es.measures == "unsafe"
        for t, y in zip(es.texts, es.labels, strict=True)
        if y
    ]
    texts = [ex.text for ex in val] + harmful
    log(f"{len(val)} validation texts, {len(harmful)} harmful tuning texts")

    linear, encoder = LinearClassifier.load(), EncoderClassifier()
    lin = _scores(linear, texts, "linear")
    enc = _scores(encoder, [normalise(t).text for t in texts], "encoder")

    n_val = len(val)
    categories = [LABEL_IDS.index(c) for c in CATEGORY_IDS]
    unsafe_known = np.array([is_unsafe(ex) is not None for ex in val])
    unsafe_y = np.array([bool(is_unsafe(ex)) for ex in val])
    flag_targets = []
    for flag in FLAG_IDS:
        j = LABEL_IDS.index(flag)
        known = np.array([flag not in ex.unknown for ex in val])
        y = np.array([bool(ex.labels[flag]) for ex in val])
        if (y & known).sum() >= 10:
            flag_targets.append((flag, j, known, y))

    def measure(scores: np.ndarray) -> dict[str, float]:
        over = scores >= thresholds
        unsafe = over[:, categories].any(axis=1)
        result = {"unsafe F1": _f1(unsafe[:n_val][unsafe_known], unsafe_y[unsafe_known])}
        for flag, j, known, y in flag_targets:
            result[f"{flag} F1"] = _f1(over[:n_val, j][known], y[known])
        if harmful:
            result["tuning recall"] = float(unsafe[n_val:].mean())
        return result

    rows = []
    candidates = [
        CascadeTuning(low, high, rule)
        for low, high, rule in itertools.product(LOWS, HIGHS, COMBINE_RULES)
    ]
    for stage_name, alone in (("linear alone", lin), ("encoder alone", enc)):
        rows.append((stage_name, measure(alone), 0.0 if alone is lin else 1.0))
    for candidate in candidates:
        scores, sent = combine(lin, enc, candidate)
        rows.append((candidate, measure(scores), float(sent[:n_val].mean())))

    def objective(row: tuple[object, dict[str, float], float]) -> float:
        return float(np.mean(list(row[1].values())))

    allowed = [r for r in rows if isinstance(r[0], CascadeTuning) and r[2] <= args.max_share]
    if not allowed:
        parser.error(f"no candidate sends at most {args.max_share:.0%} to the encoder")
    best = max(allowed, key=lambda r: (round(objective(r), 4), -r[2]))
    chosen = best[0]
    assert isinstance(chosen, CascadeTuning)
    OUT.write_text(
        json.dumps(
            {
                "low": chosen.low,
                "high": chosen.high,
                "combine": chosen.combine,
                "chosen_on": f"validation split (seed {args.seed}) and tuning sets; "
                "training/cascade.py",
            },
            indent=2,
        )
        + "\n"
    )
    log(f"chose {chosen} (objective {objective(best):.3f}, share {best[2]:.1%}); wrote {OUT}")

    names = list(rows[0][1])
    lines = [
        "# Cascade tuning",
        "",
        f"Generated by `training/cascade.py --seed {args.seed} --max-share {args.max_share}`. "
        f"{n_val} validation texts from the training sources and {len(harmful)} harmful tuning "
        "texts (HarmBench validation); no evaluation set. Objective: the mean of the columns; "
        f"candidates may send at most {args.max_share:.0%} of the validation texts to the encoder.",
        "",
        f"**Chosen: band [{chosen.low}, {chosen.high}], rule `{chosen.combine}`** "
        f"(objective {objective(best):.3f}, {best[2]:.1%} of texts sent to the encoder).",
        "",
        "| candidate | sent to encoder | " + " | ".join(names) + " | objective |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    ranked = rows[:2] + sorted(rows[2:], key=objective, reverse=True)
    shown = ranked[:32] + [r for r in ranked[32:] if r[0] == CascadeTuning()]  # the old default
    for who, metrics, share in shown:
        label = (
            who
            if isinstance(who, str)
            else f"[{who.low}, {who.high}] {who.combine}"
            + (" ←" if who == chosen else "")
            + (" (hand-set default before tuning)" if who == CascadeTuning() else "")
        )
        lines.append(
            f"| {label} | {share:.1%} | "
            + " | ".join(f"{metrics[n]:.3f}" for n in names)
            + f" | {objective((who, metrics, share)):.3f} |"
        )
    lines += [
        "",
        f"({len(rows) - 2} candidates; the best 30 and the old default shown.)",
        "",
        "## Caveat",
        "",
        "Apart from HarmBench's validation rows, the objective is measured on the validation "
        "split of the training sources, which overstates how well a choice transfers (no shared "
        "set of another source is marked for tuning and has benign rows). Judge the choice on the "
        "held-out sets: `benchmarks/accuracy.py` (the README compares it with the old default).",
        "",
    ]
    REPORT.write_text("\n".join(lines))
    log(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

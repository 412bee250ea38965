"""Choose which texts the linear stage may answer alone, and how the two stages decide together.

    python training/cascade.py [--data-dir ../shared/data] [--seed 13] [--max-loss 0.005]

1. **The band.** The cascade asks the encoder about every text where some label's linear score is
   at least ``low`` (the band is ``[low, 1.0]``); the linear stage answers alone only for texts it
   finds clearly benign. A text the linear stage scores under ``low`` on every label never
   reaches the encoder, so this script picks the largest ``low`` that loses at most
   ``--max-loss`` of the harmful and flagged texts of the validation split
   (``training/dataset.py``) and of HarmBench's validation behaviours: a harmful text is lost
   when the stack (2.) would flag it if the encoder saw everything and it does not reach the
   encoder (one the linear stage finds this unlikely the stack rarely flags anyway), a text with
   a flag (only the encoder scores flags) when it does not reach the encoder.
2. **Stacking** (rule ``stack``, :meth:`convguard.assess.cascade.CascadeTuning.stack`): for a text
   the encoder sees, harmful-or-not is decided on ``logit(encoder) + weight * logit(linear)`` (each
   stage's highest category score over the text's views). The linear stage reads wording, the
   encoder meaning; measured side by side, the sum catches more at the same false-alarm rate than
   the encoder alone (the linear logit clipped to +-4, so a lexical model's odd certainties -
   "wow wow wow" once read as cbrn 0.999 - cannot decide alone; on the linear side every
   category but ``cyberattack``, see :data:`STACKED`). ``weight`` is the one of :data:`WEIGHTS`
   with the highest recall on the validation split's harmful texts and HarmBench val at the flag
   point; the flag and strike
   points are chosen exactly as the encoder's own (``training/heads.py``: at most 1 % of the
   realistic benign chat of the calibration sets' ``tune`` half flagged, source-balanced and
   pooled; strikes above every benign text whose top category is extreme).

Writes ``src/convguard/assess/weights/cascade.json`` and ``training/REPORT-cascade.md``. Run after
the ``linear`` and ``encoder`` stages (it scores with their shipped weights). No evaluation set is
read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from dataset import build_dataset, calibration_sets, is_unsafe  # noqa: E402
from heads import EXTREME, FLAG_BUDGET, Embedder, operating_point, shipped_delta  # noqa: E402

from convguard.assess.cascade import CascadeTuning  # noqa: E402
from convguard.assess.linear import LinearClassifier  # noqa: E402
from convguard.assess.normalise import normalise  # noqa: E402
from convguard.policy import CATEGORY_IDS, FLAG_IDS  # noqa: E402

OUT = ROOT / "src/convguard/assess/weights/cascade.json"
REPORT = HERE / "REPORT-cascade.md"
LOWS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2)
LABELS = CATEGORY_IDS + FLAG_IDS
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The linear stage's categories that count in the stack: all but ``cyberattack``, whose linear
#: head learned mostly the wording of templated ATT&CK frames (a fifth of the harmful rows), so it
#: fires on any security vocabulary - defensive questions included - and the encoder's reading of
#: intent must decide there alone.
STACKED = tuple(c for c in CATEGORY_IDS if c != "cyberattack")
T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[cascade {time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.asarray(np.log(p / (1 - p)))


def _clipped(p: np.ndarray) -> np.ndarray:
    """The first stage's logit as the runtime stacks it (clipped to [-clip, clip])."""
    clip = CascadeTuning().clip
    return np.clip(_logit(p), -clip, clip)


class Pair:
    """Both stages' scores of texts as the runtime cascade computes them for stacking."""

    def __init__(self, linear: LinearClassifier) -> None:
        from convguard.assess.encoder import EncoderClassifier

        self.linear = linear
        self.encoder = EncoderClassifier(precision="fp32", max_tokens=128, backend="onnx")
        # The runtime encoder, with its embeddings and token states read from the training cache
        # of the encoder it runs (the shipped delta's, if any: a fine-tuned encoder's states
        # must never land in the base encoder's cache); the cache saves what it adds.
        self.encoder.encode = Embedder(delta=shipped_delta()).states.encode  # type: ignore[method-assign]

    def scores(self, texts: Sequence[str]) -> Scored:
        raw = self.linear.score(list(texts))
        views = [normalise(t) for t in texts]
        flat = [(i, t) for i, v in enumerate(views) for t in v.texts]
        lin = np.zeros(len(texts))
        enc = np.zeros(len(texts))
        extreme = np.zeros(len(texts), dtype=bool)
        best: dict[int, dict[str, float]] = {}
        for start in range(0, len(flat), 1024):
            chunk = flat[start : start + 1024]
            chunk_texts = [t for _, t in chunk]
            for (i, _), a, b in zip(
                chunk, self.linear.score(chunk_texts), self.encoder.score(chunk_texts), strict=True
            ):
                lin[i] = max(lin[i], max(a.get(c, 0.0) for c in STACKED))
                merged = best.setdefault(i, {})
                for c in CATEGORY_IDS:
                    merged[c] = max(merged.get(c, 0.0), b.get(c, 0.0))
        for i, merged in best.items():
            enc[i] = max(merged.values())
            top = enc[i]
            extreme[i] = top > 0 and max(merged[c] for c in EXTREME) >= 0.8 * top
        return Scored(
            views=np.array([bool(v.views) for v in views]),
            first=np.array([max(s.get(label, 0.0) for label in LABELS) for s in raw]),
            lin=lin,
            enc=enc,
            extreme=extreme,
        )


@dataclass(frozen=True)
class Scored:
    """Per text: a hidden view found, the linear stage's top label on the raw text (which sends
    it on), its top stacked category over the views, the encoder's top category, and whether
    that is (close to) an extreme one."""

    views: np.ndarray
    first: np.ndarray
    lin: np.ndarray
    enc: np.ndarray
    extreme: np.ndarray

    def reach(self, low: float) -> np.ndarray:
        return np.asarray(self.views | (self.first >= low))

    def stacked(self, weight: float) -> np.ndarray:
        return np.asarray(_logit(self.enc) + weight * _clipped(self.lin))


def stacking(
    low: float, harmful: Scored, benign: Scored, sources: Sequence[str]
) -> tuple[CascadeTuning, list[str]]:
    """The stacking weight and operating points when texts under ``low`` stay with the linear
    stage, and the report's rows."""
    rows = []
    best: tuple[float, float, float, float] | None = None
    for weight in WEIGHTS:
        pos = np.where(harmful.reach(low), harmful.stacked(weight), -np.inf)
        neg = np.where(benign.reach(low), benign.stacked(weight), -60.0)
        reach = np.where(benign.extreme & benign.reach(low), neg, -np.inf)
        flag, strike = operating_point(neg, sources, FLAG_BUDGET["unsafe"], reach)
        recall, struck = float((pos >= flag).mean()), float((pos >= strike).mean())
        flagged = float((neg >= flag).mean())
        rows.append(f"| {weight} | {recall:.3f} | {struck:.3f} | {flagged:.2%} |")
        log(f"  band [{low}, 1.0], stacking weight {weight}: recall {recall:.3f} at flag, "
            f"{struck:.3f} at strike")  # fmt: skip
        if best is None or recall > best[1] + 1e-9:
            best = (weight, recall, flag, strike)
    assert best is not None
    weight, _, flag, strike = best
    return CascadeTuning(low, 1.0, "stack", weight=weight, flag_logit=flag,
                         strike_logit=strike, stacked=STACKED), rows  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-loss", type=float, default=0.005)
    args = parser.parse_args(argv)
    val = build_dataset(args.data_dir, seed=args.seed).val
    cal = calibration_sets(args.data_dir)
    harmful_texts = [e.text for e in val if is_unsafe(e) == 1.0] + [
        e.text for e in cal.tune if is_unsafe(e) == 1.0
    ]
    flagged_texts = [
        e.text
        for e in val
        if is_unsafe(e) != 1.0 and any(e.labels.get(f, 0) >= 0.5 for f in FLAG_IDS)
    ]
    benign_examples = [e for e in cal.tune if is_unsafe(e) == 0.0]
    sources = [e.source for e in benign_examples]
    pair = Pair(LinearClassifier.load())
    log(f"scoring {len(harmful_texts)} harmful, {len(flagged_texts)} flagged and "
        f"{len(benign_examples)} benign texts with both stages")  # fmt: skip
    harmful = pair.scores(harmful_texts)
    flagged = pair.scores(flagged_texts)
    benign = pair.scores([e.text for e in benign_examples])
    # What the stack catches when the encoder sees (nearly) everything ...
    everything, _ = stacking(LOWS[0], harmful, benign, sources)
    caught = harmful.reach(LOWS[0]) & (harmful.stacked(everything.weight) >= everything.flag_logit)
    rows = []
    chosen = LOWS[0]
    for low in LOWS:
        # ... and what a band loses of it: harmful texts the stack would flag that never reach
        # the encoder, and texts with a flag (which only the encoder scores) that never reach it.
        lost = float(
            ((caught & ~harmful.reach(low)).sum() + (~flagged.reach(low)).sum())
            / (len(harmful_texts) + len(flagged_texts))
        )
        alone = float((~benign.reach(low)).mean())
        rows.append(f"| {low} | {lost:.2%} | {alone:.1%} |")
        if lost <= args.max_loss:
            chosen = low
    log(f"chosen band [{chosen}, 1.0]")
    tuning, stack_rows = stacking(chosen, harmful, benign, sources)
    log(f"stacking weight {tuning.weight}, flag logit {tuning.flag_logit:.3f}, "
        f"strike logit {tuning.strike_logit:.3f}")  # fmt: skip
    OUT.write_text(
        json.dumps(
            {
                "low": chosen,
                "high": 1.0,
                "combine": tuning.combine,
                "weight": tuning.weight,
                "flag_logit": round(tuning.flag_logit, 6),
                "strike_logit": round(tuning.strike_logit, 6),
                "stacked": list(tuning.stacked),
                "clip": tuning.clip,
                "chosen_on": "validation split (seed 13), HarmBench val and the calibration "
                "sets' tune half; training/cascade.py",
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    REPORT.write_text(
        "\n".join(
            [
                "# Cascade: which texts the linear stage answers alone, and stacking",
                "",
                "Built by `python training/cascade.py`. A text goes to the encoder when some",
                "label's linear score is at least `low`; the encoder's scores then replace the",
                "linear ones, except that harmful-or-not is decided by both stages (rule",
                "`stack`, below). Lost = harmful validation texts (and HarmBench val) that the",
                "stack flags when the encoder sees everything but that never reach the encoder,",
                "and texts with a flag that never reach it; alone = realistic benign chat",
                "(calibration tune half) answered by the linear stage alone.",
                f"Chosen: `low` = {chosen} (largest with at most {args.max_loss:.1%} lost).",
                "",
                "| low | lost | benign chat answered alone |",
                "|---|---|---|",
                *rows,
                "",
                "## Stacking",
                "",
                "Harmful = `logit(encoder) + weight * logit(linear)` (each stage's highest",
                "category score over the text's views; on the linear side every category but",
                "`cyberattack`, whose linear head learned templated ATT&CK wording and fires on",
                "defensive security questions too); flag and strike points chosen as the",
                "encoder's own, on the benign chat of the calibration tune half. Recall on the",
                "validation split's harmful texts and HarmBench val.",
                f"Chosen: weight {tuning.weight} (flag logit {tuning.flag_logit:.3f}, strike",
                f"logit {tuning.strike_logit:.3f}).",
                "",
                "| weight | recall at flag | recall at strike | benign chat flagged (pooled) |",
                "|---|---|---|---|",
                *stack_rows,
                "",
            ]
        ),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

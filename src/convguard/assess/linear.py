"""The fast linear stage: one-vs-rest logistic regression over hashed word and character n-grams.

Features are computed for a whole batch at once with numpy (no Python loop per n-gram): the texts
are lower-cased, whitespace-collapsed, cut to their first :data:`HEAD` and last :data:`TAIL`
characters, and concatenated as UTF-8 bytes; polynomial prefix hashes give every word unigram,
word bigram and character 3/4/5-gram a 64-bit hash, which a multiplicative hash folds into
``2**bits`` buckets shared by all labels. Each distinct feature counts once per text and weighs
``1/sqrt(n)`` (``n`` distinct features in the text), so long texts do not score high just by being
long, nor repetitive ones by repetition.

The weights are a ``float16`` matrix ``[2**bits, labels]`` plus a bias per label, in an ``.npz``
read with ``allow_pickle=False``. Thresholds chosen on validation data are folded into the bias:
``bias = raw_bias - logit(threshold)``, so a score of 0.5 is the tuned operating point of every
label and the policy's default thresholds (0.5) mean what the training report measured. The raw
thresholds are kept in the file for the record.

Categories are hierarchical when the file has a *gate*: one shared ``unsafe`` head (the last weight
column, trained on every harmful request of every source against the benign pool) and, per
category, a head trained only on harmful texts (which category, given harmful). A gated category
scores ``p_unsafe * q_c / max_c q_c``: the most likely category of a text reaches its ``unsafe``
probability, the others in proportion. The gate's threshold is folded into its bias like the
others, so 0.5 is the operating point for the categories too. Files without a gate score every
label on its own.

A text is scored on its normalised form and on every view that
:func:`~convguard.assess.normalise.normalise` finds (leetspeak, decoded payloads); each label
takes the maximum over views. A strong obfuscation
(base64, hex, rot13, homoglyphs, zero-width characters) raises ``jailbreak`` to at least
:data:`OBFUSCATION_SCORE` by itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from convguard.assess.normalise import normalise
from convguard.errors import ClassifierError
from convguard.policy import CATEGORY_IDS, FLAG_IDS

__all__ = [
    "HEAD",
    "OBFUSCATION_SCORE",
    "TAIL",
    "Features",
    "LinearClassifier",
    "featurize",
    "prepare",
]

HEAD = 2000
TAIL = 1000
OBFUSCATION_SCORE = 0.75
LABELS: tuple[str, ...] = CATEGORY_IDS + FLAG_IDS

_U64 = np.uint64
_P = _U64(0x100000001B3)  # odd, so it has an inverse modulo 2**64
_P_INV = _U64(pow(0x100000001B3, -1, 2**64))
_MIX = _U64(0x9E3779B97F4A7C15)
_SALT = {
    "w1": _U64(0x243F6A8885A308D3),
    "w2": _U64(0x13198A2E03707344),
    "c3": _U64(0xA4093822299F31D0),
    "c4": _U64(0x082EFA98EC4E6C89),
    "c5": _U64(0x452821E638D01377),
}
_CHAR_NS = (3, 4, 5)
# Bytes that belong to words: ASCII letters and digits, and every non-ASCII byte (UTF-8).
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[ord("a") : ord("z") + 1] = True
_WORD_BYTE[ord("0") : ord("9") + 1] = True
_WORD_BYTE[128:] = True

U64Array = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


class _Powers:
    """Powers of the hash base and of its inverse, grown on demand (wrapping uint64)."""

    def __init__(self) -> None:
        self.pow: U64Array = np.ones(1, dtype=np.uint64)
        self.inv: U64Array = np.ones(1, dtype=np.uint64)

    def get(self, n: int) -> tuple[U64Array, U64Array]:
        if len(self.pow) < n:
            size = max(n, 2 * len(self.pow))
            with np.errstate(over="ignore"):
                self.pow = np.concatenate(
                    ([_U64(1)], np.cumprod(np.full(size - 1, _P, dtype=np.uint64)))
                )
                self.inv = np.concatenate(
                    ([_U64(1)], np.cumprod(np.full(size - 1, _P_INV, dtype=np.uint64)))
                )
        return self.pow[:n], self.inv[:n]


_POWERS = _Powers()


def prepare(text: str) -> str:
    """The form of a text that is hashed: lower case, single spaces, head and tail kept."""
    text = " ".join(text.lower().split())
    if len(text) > HEAD + TAIL:
        text = text[:HEAD] + " " + text[-TAIL:]
    return text


@dataclass(frozen=True)
class Features:
    """Sparse features of a batch: for each occurrence, its text and bucket; each text's
    ``scale`` (1/sqrt of its feature count) is the value of every one of its features."""

    doc: IntArray
    index: IntArray
    n_docs: int
    scale: FloatArray

    @property
    def value(self) -> FloatArray:
        """The value of each occurrence (its text's scale)."""
        out: FloatArray = self.scale[self.doc]
        return out


def _bucket(h: U64Array, salt: np.uint64, bits: int) -> IntArray:
    with np.errstate(over="ignore"):
        mixed = (h + salt) * _MIX
    return (mixed >> _U64(64 - bits)).astype(np.int64)


def featurize(texts: Sequence[str], bits: int) -> Features:
    """Hashed n-gram features of already :func:`prepare`-d texts."""
    n_docs = len(texts)
    encoded = [t.encode("utf-8") for t in texts]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=n_docs)
    # One separator byte after each text keeps n-grams and words from crossing texts.
    buf = np.frombuffer(b"\n".join(encoded) + b"\n", dtype=np.uint8)
    total = len(buf)
    starts = np.zeros(n_docs, dtype=np.int64)
    if n_docs > 1:
        starts[1:] = np.cumsum(lengths + 1)[:-1]
    ends = starts + lengths
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lengths + 1)

    pw, inv = _POWERS.get(total + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(total + 1, dtype=np.uint64)
        np.cumsum(buf.astype(np.uint64) * pw[:total], out=prefix[1:])

    def span_hash(s: IntArray, e: IntArray) -> U64Array:
        with np.errstate(over="ignore"):
            out: U64Array = (prefix[e] - prefix[s]) * inv[s]
        return out

    docs: list[IntArray] = []
    index: list[IntArray] = []
    positions = np.arange(total, dtype=np.int64)
    for n in _CHAR_NS:
        ok = positions + n <= ends[doc_of]
        s = positions[ok]
        docs.append(doc_of[s])
        index.append(_bucket(span_hash(s, s + n), _SALT[f"c{n}"], bits))

    word = _WORD_BYTE[buf]
    prev = np.concatenate(([False], word[:-1]))
    nxt = np.concatenate((word[1:], [False]))
    w_start = np.flatnonzero(word & ~prev)
    w_end = np.flatnonzero(word & ~nxt) + 1
    w_doc = doc_of[w_start]
    w_hash = span_hash(w_start, w_end)
    docs.append(w_doc)
    index.append(_bucket(w_hash, _SALT["w1"], bits))
    same = w_doc[1:] == w_doc[:-1]
    with np.errstate(over="ignore"):
        pair = w_hash[:-1][same] * _MIX + w_hash[1:][same]
    docs.append(w_doc[:-1][same])
    index.append(_bucket(pair, _SALT["w2"], bits))

    # Each distinct feature counts once per text (binary features): a word repeated 400 times
    # is one feature, not a vector that grows with the repetition until any weight it touches
    # saturates ("wow " * 50 scored cbrn 0.999 when occurrences added up).
    keys = np.unique((np.concatenate(docs) << bits) | np.concatenate(index))
    doc = keys >> bits
    idx = keys & ((1 << bits) - 1)
    counts = np.bincount(doc, minlength=n_docs)
    scale = (1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32)
    return Features(doc=doc, index=idx, n_docs=n_docs, scale=scale)


class LinearClassifier:
    """The linear stage; implements :class:`convguard.assess.types.Classifier`."""

    name = "linear"

    def __init__(
        self,
        weights: npt.NDArray[np.float16],
        bias: FloatArray,
        labels: Sequence[str],
        *,
        bits: int,
        thresholds: FloatArray | None = None,
        meta: dict[str, Any] | None = None,
        gated: Sequence[str] = (),
    ) -> None:
        columns = len(labels) + (1 if gated else 0)
        if weights.shape != (2**bits, columns) or bias.shape != (columns,):
            raise ClassifierError(
                f"linear weights have shape {weights.shape!r} and bias {bias.shape!r}; expected "
                f"({2**bits}, {columns}) and ({columns},): rebuild them with training/train.py"
            )
        unknown = sorted(set(gated) - set(labels))
        if unknown:
            raise ClassifierError(
                f"gated labels {unknown!r} are not among the labels {list(labels)!r}: rebuild "
                "the weights with training/train.py"
            )
        self.gated = tuple(gated)
        self._gated_idx = np.array([list(labels).index(g) for g in self.gated], dtype=np.int64)
        # Kept column-major (one contiguous row of 2**bits coefficients per column): scoring
        # gathers each column's coefficients for a batch's features in one pass, with no sort.
        self._columns = np.ascontiguousarray(weights.T)
        self.bias = bias.astype(np.float32)
        self.labels = tuple(labels)
        self.bits = bits
        self.thresholds = thresholds
        self.meta = meta or {}
        self._jailbreak = self.labels.index("jailbreak") if "jailbreak" in self.labels else None

    @classmethod
    def load(cls, path: str | Path | None = None) -> LinearClassifier:
        """Load weights from an ``.npz`` (default: the ones shipped with the package)."""
        if path is None:
            ref = resources.files("convguard").joinpath("assess/weights/linear.npz")
            with resources.as_file(ref) as real:
                return cls.load(real)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                return cls(
                    data["weights"],
                    data["bias"],
                    [str(x) for x in data["labels"]],
                    bits=int(data["bits"]),
                    thresholds=data["thresholds"],
                    meta=meta,
                    gated=[str(x) for x in data["gated"]] if "gated" in data else (),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ClassifierError(
                f"cannot load linear weights from {str(path)!r}: {exc}; rebuild them with "
                "training/train.py"
            ) from exc

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float16),
            bias=self.bias.astype(np.float32),
            labels=np.array(self.labels),
            bits=np.array(self.bits),
            thresholds=(
                self.thresholds
                if self.thresholds is not None
                else np.full(len(self.labels), 0.5, dtype=np.float32)
            ),
            meta=np.array(json.dumps(self.meta, sort_keys=True)),
            gated=np.array(self.gated, dtype=str),
        )

    @property
    def weights(self) -> npt.NDArray[np.float16]:
        """The coefficients ``[2**bits, columns]`` (a view of the column-major store)."""
        return self._columns.T

    def logits(self, prepared: Sequence[str]) -> FloatArray:
        """Raw logits ``[texts, columns]`` of :func:`prepare`-d texts (no views; the gate last)."""
        n = len(prepared)
        if n == 0:
            return np.tile(self.bias, (0, 1))
        feats = featurize(prepared, self.bits)
        # Per column, the sum of each text's coefficients (a gather and a bincount, both in C),
        # times the text's scale, which every one of its features carries.
        sums = np.empty((n, self._columns.shape[0]), dtype=np.float32)
        for j, column in enumerate(self._columns):
            sums[:, j] = np.bincount(feats.doc, weights=column.take(feats.index), minlength=n)
        out: FloatArray = sums * feats.scale[:, None] + self.bias
        return out

    def score_array(self, texts: Sequence[str]) -> FloatArray:
        """Scores ``[texts, labels]`` in [0, 1], max over each text's views."""
        owners: list[int] = []
        prepared: list[str] = []
        obfuscated = np.zeros(len(texts), dtype=bool)
        for i, text in enumerate(texts):
            norm = normalise(text)
            obfuscated[i] = norm.strongly_obfuscated
            for view in norm.texts:
                owners.append(i)
                prepared.append(prepare(view))
        probs = self._combine(1.0 / (1.0 + np.exp(-self.logits(prepared))))
        if len(prepared) == len(texts):
            scores = probs
        else:
            owner = np.asarray(owners, dtype=np.int64)
            firsts = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
            scores = np.maximum.reduceat(probs, firsts, axis=0)
        if self._jailbreak is not None and obfuscated.any():
            col = scores[:, self._jailbreak]
            scores[:, self._jailbreak] = np.where(
                obfuscated, np.maximum(col, OBFUSCATION_SCORE), col
            )
        return scores.astype(np.float32)

    def _combine(self, probs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.floating[Any]]:
        """Label scores from column probabilities: gated categories scaled by the gate."""
        if not self.gated:
            return probs
        gate = probs[:, -1:]
        out = probs[:, :-1].copy()
        q = out[:, self._gated_idx]
        out[:, self._gated_idx] = gate * q / np.maximum(q.max(axis=1, keepdims=True), 1e-6)
        return out

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        scores = self.score_array(texts)
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in scores]

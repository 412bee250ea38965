"""Train the encoder stage's heads on the manifest's mix, and choose operating points on real chat.

    python training/heads.py [--data-dir ../shared/data] [--seed 13]

(``training/train.py`` runs it as its ``encoder`` stage.) The model, in order:

1. Every training text (normalised as the runtime normalises it) is embedded by the runtime's own
   encoder - all-MiniLM-L6-v2 on ONNX Runtime, first 128 tokens, in fp32 as the runtime runs -
   and long texts also by their last paragraph (:func:`convguard.assess.encoder.tail_view`), the
   second view the runtime scores.
   Embeddings and token states (float16) are cached under ``training/cache/`` by text hash.
2. A binary ``unsafe`` head (every harmful request of every source against the benign pool)
   decides whether a text is flagged: the mean of :data:`UNSAFE_BAG` small nets over the token
   states (:class:`convguard.assess.encoder.AttentionHead`: :data:`ATTENTION_QUERIES` learned
   attention pools of the last layer's states and the sentence embedding, one hidden layer of
   :data:`UNSAFE_HIDDEN` units), trained with torch from consecutive seeds; one head per
   category, trained on harmful texts only, says which category; one head per flag (logistic
   regression, class-balanced, with the manifest's weights).
   The last-paragraph view of a benign long text is a benign example too (it must not flag), and
   that of a harmful text is left out (its last paragraph may be the harmless part).
3. Operating points are chosen where users are: on the ``tune`` half of the manifest's calibration
   sets (realistic benign chat never trained on, plus HarmBench's validation behaviours), not on a
   validation split of the training sources. **flag**: the lowest raw score that flags at most
   :data:`FLAG_BUDGET` of that benign chat, each source weighing the same (so thousands of short
   task-dialogue turns do not set the point for open-ended prompts); **strike**: above every
   benign text's score, with a
   margin (the target is at most 1 in 10,000 benign messages). Each head's logit is then mapped
   affinely so that its probability is 0.5 at the flag point and 0.8 at the strike point: the
   policy's defaults mean exactly these operating points.

Writes ``src/convguard/assess/weights/encoder.npz`` (no pickle), the ONNX graphs beside it
(``encoder-graph.onnx``, ``encoder-graph-int8.onnx``) and ``training/REPORT-encoder.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

from dataset import (  # noqa: E402
    Calibration,
    Dataset,
    Example,
    build_dataset,
    calibration_sets,
    eval_sets,
    is_unsafe,
)
from encoder import EmbeddingCache  # noqa: E402

from convguard.assess.encoder import (  # noqa: E402
    HIDDEN,
    AttentionHead,
    EncoderClassifier,
    base_model_dir,
    with_tail_views,
)
from convguard.assess.normalise import normalise  # noqa: E402
from convguard.policy import CATEGORY_IDS, FLAG_IDS, default_policy  # noqa: E402

OUT = REPO / "src/convguard/assess/weights/encoder.npz"
REPORT = HERE / "REPORT-encoder.md"
CACHE_DIR = HERE / "cache"
#: Every text is embedded in fp32, as the runtime runs: independent of batching to ~3e-8, and a
#: rebuild fills a cold cache in the same order, so on the same CPU it gives the same weights bit
#: for bit (the shipped ones are a cold-cache rebuild's). Another CPU's float kernels differ in
#: the last bits: a cold-cache rebuild on a different machine moved the stacked flag logit by
#: 0.005 and validation recalls by at most 0.005 (measured once). int8 (each text in a batch of
#: its own, so batch-mates no longer move it; ~2x faster per text) was measured with heads trained
#: and calibrated on its own embeddings and lost on validation: unsafe recall 0.778 against
#: 0.805 at the flag point, 0.396 against 0.535 at the strike point.
TRAIN_PRECISION = "fp32"
PRECISION = "fp32"
MAX_TOKENS = 128
HEAD_LABELS: tuple[str, ...] = ("unsafe", *CATEGORY_IDS, *FLAG_IDS)
EXTREME = frozenset(c for c in CATEGORY_IDS if default_policy().tier(c) == "extreme")
C = 4.0
#: The ``unsafe`` head's nets: one hidden layer (ReLU) of this width over
#: :data:`ATTENTION_QUERIES` attention pools of the token states and the sentence embedding.
#: Measured side by side on validation (same rows, same calibration, 3 nets each): the pools lift
#: recall at the flag point from 0.815 to 0.897 and at the strike point from 0.527 to 0.746 over
#: the same nets on the sentence embedding alone (mean pooling averages the few words that carry
#: the intent away over a long sentence).
UNSAFE_HIDDEN = 256
ATTENTION_QUERIES = 4
#: The ``unsafe`` nets are this many, trained from consecutive seeds, with their logits averaged:
#: one net's verdict on borderline sets moved by several points with the order of its rows.
UNSAFE_BAG = 5
MLP_DECAY = 1e-2
MLP_EPOCHS = 10
#: Share of benign calibration chat that may be flagged, per head (the target is 1 % pooled).
FLAG_BUDGET: dict[str, float] = {
    "unsafe": 0.01,
    "jailbreak": 0.01,
    "user_requests_end": 0.002,
    "imminent_risk": 0.002,
    "abuse_toward_assistant": 0.003,
}
#: Logit margin of the strike point above the highest benign calibration score.
STRIKE_MARGIN = 0.5
#: Share of the benign calibration texts (the highest-scoring ones) that may lie above the strike
#: point: the target is at most 1 in 10,000 benign messages.
STRIKE_TRIM = 0.0002
#: The calibration source of generated degenerate input (``training/degenerate.py``, own seed).
DEGENERATE_SOURCE = "degenerate_calibration"
FLAG_P, STRIKE_P = 0.5, 0.8
T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[heads {time.perf_counter() - T0:6.0f}s] {message}", file=sys.stderr, flush=True)


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def view_texts(texts: Sequence[str]) -> tuple[list[str], list[int], np.ndarray]:
    """Every text normalised as the runtime normalises it, and the tail view of long ones, as
    the runtime scores them; ``owner[i]`` is the text row ``i`` belongs to; ``is_tail`` marks
    the tail rows."""
    flat, owner = with_tail_views([normalise(text).text for text in texts])
    tails = np.array([r > 0 and owner[r] == owner[r - 1] for r in range(len(owner))], dtype=bool)
    return flat, owner, tails


Delta = dict[str, np.ndarray]


def shipped_delta() -> Delta:
    """The fine-tuned encoder delta the shipped heads file carries (empty: the base encoder)."""
    if not OUT.is_file():
        return {}
    with np.load(OUT, allow_pickle=False) as z:
        return {k.removeprefix("delta."): z[k] for k in z.files if k.startswith("delta.")}


def write_delta_file(delta: Delta, path: Path) -> Path:
    """A heads file holding only ``delta`` (zero heads): what the embedder loads to run the
    fine-tuned encoder exactly as the runtime will."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        labels=np.array(HEAD_LABELS),
        weight=np.zeros((len(HEAD_LABELS), HIDDEN), dtype=np.float32),
        bias=np.zeros(len(HEAD_LABELS), dtype=np.float32),
        precision=np.array(PRECISION),
        max_tokens=np.array(MAX_TOKENS),
        **{f"delta.{k}": v for k, v in sorted(delta.items())},
    )
    tmp.replace(path)
    return path


def delta_digest(delta: Delta) -> str:
    h = hashlib.sha256()
    for key in sorted(delta):
        h.update(key.encode())
        h.update(np.ascontiguousarray(delta[key]).tobytes())
    return h.hexdigest()


class Embedder:
    """Runtime embeddings and token states (128 tokens) of normalised texts, cached by text hash;
    with a delta, those of the fine-tuned encoder (cached apart, by the delta's digest)."""

    def __init__(self, precision: str = PRECISION, delta: Delta | None = None) -> None:
        heads_path = None
        tag = ""
        if delta:
            tag = "-ft" + delta_digest(delta)[:12]
            heads_path = write_delta_file(delta, CACHE_DIR / f"delta{tag}.npz")
        self.encoder = EncoderClassifier(
            heads_path=heads_path,
            precision="int8" if precision == "int8" else "fp32",
            max_tokens=MAX_TOKENS,
            backend="onnx",
        )
        base = hashlib.sha256((base_model_dir() / "model.safetensors").read_bytes()).hexdigest()
        path = CACHE_DIR / f"states-emb-{precision}-{MAX_TOKENS}-{base[:12]}{tag}.npz"
        self.states = StateCache(self.encoder.encode, path)

    def encoded(self, texts: Sequence[str]) -> tuple[Encoded, list[int], np.ndarray]:
        """Embeddings and token states of every text and of the tail views of long ones (see
        :func:`view_texts`)."""
        flat, owner, tails = view_texts(texts)
        return self.states.encode(flat), owner, tails


Encoded = tuple[np.ndarray, list[np.ndarray]]


class StateCache:
    """Sentence embeddings and float16 token states of texts by SHA-1, in one ``.npz`` (no
    pickle): ``keys``, ``lengths``, ``emb`` (texts × 384) and ``states`` (all tokens × 384)."""

    def __init__(self, encode: Any, path: Path) -> None:
        self._encode = encode
        self.path = path
        self._rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                ends = np.cumsum(z["lengths"])
                states, emb = z["states"], z["emb"]
                for i, key in enumerate(z["keys"]):
                    start = ends[i] - z["lengths"][i]
                    self._rows[str(key)] = (emb[i], states[start : ends[i]])

    def encode(self, texts: Sequence[str]) -> Encoded:
        keys = [EmbeddingCache.key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            log(f"encoding {len(missing)} new texts ({len(texts) - len(missing)} cached)")
            start, step = time.perf_counter(), 2048
            for i in range(0, len(missing), step):
                part = missing[i : i + step]
                emb, states = self._encode([by_key[k] for k in part])
                for k, e, h in zip(part, emb, states, strict=True):
                    self._rows[k] = (e, h.astype(np.float16))
                done = i + len(part)
                log(f"  {done}/{len(missing)} ({done / (time.perf_counter() - start):.0f} texts/s)")
            self.save()
        rows = [self._rows[k] for k in keys]
        return np.stack([r[0] for r in rows]).astype(np.float32), [r[1] for r in rows]

    def save(self) -> None:
        keys = list(self._rows)
        tmp = self.path.with_suffix(".tmp.npz")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            tmp,
            keys=np.array(keys),
            lengths=np.array([len(self._rows[k][1]) for k in keys], dtype=np.int64),
            emb=np.stack([self._rows[k][0] for k in keys]),
            states=np.concatenate([self._rows[k][1] for k in keys]),
        )
        tmp.replace(self.path)


def _rows(examples: Sequence[Example], emb: np.ndarray, owner: list[int], tails: np.ndarray) -> Any:
    """Training matrices: x, per-head targets y and weights w (0 where unknown)."""
    n = len(owner)
    y = np.zeros((n, len(HEAD_LABELS)), dtype=np.float32)
    w = np.zeros_like(y)
    for r, i in enumerate(owner):
        ex = examples[i]
        unsafe = is_unsafe(ex)
        if tails[r] and unsafe != 0.0:
            continue  # the tail of a harmful text may be its harmless part
        base = ex.weight
        if unsafe is not None:
            y[r, 0], w[r, 0] = unsafe, base
        for j, label in enumerate(HEAD_LABELS[1:], start=1):
            if label in ex.unknown:
                continue
            positive = ex.labels.get(label, 0.0) >= 0.5
            if label in CATEGORY_IDS:
                # Category heads learn which category, given harmful.
                if unsafe == 1.0 and any(
                    ex.labels.get(c, 0.0) >= 0.5 and c not in ex.unknown for c in CATEGORY_IDS
                ):
                    y[r, j], w[r, j] = float(positive), base
            else:
                y[r, j], w[r, j] = float(positive), base
    return emb, y, w


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    weight = np.zeros((len(HEAD_LABELS), x.shape[1]), dtype=np.float32)
    bias = np.full(len(HEAD_LABELS), -20.0, dtype=np.float32)
    for j, label in enumerate(HEAD_LABELS):
        keep = w[:, j] > 0
        pos = int(y[keep, j].sum())
        if pos < 5 or pos == int(keep.sum()):
            log(f"  {label}: {pos} positives of {int(keep.sum())}; head left off")
            continue
        sw = w[keep, j].astype(np.float64)
        yy = y[keep, j]
        # class balance on top of the source weights
        pos_w, neg_w = sw[yy == 1].sum(), sw[yy == 0].sum()
        sw = np.where(
            yy == 1, sw * (pos_w + neg_w) / (2 * pos_w), sw * (pos_w + neg_w) / (2 * neg_w)
        )
        model = LogisticRegression(C=C, max_iter=3000, random_state=seed)
        model.fit(x[keep], yy, sample_weight=sw)
        weight[j] = model.coef_[0]
        bias[j] = model.intercept_[0]
        log(f"  {label}: {pos} positives of {int(keep.sum())}")
    return weight, bias


def fit_unsafe_attention(
    encoded: Encoded, y: np.ndarray, w: np.ndarray, seed: int, bag: int = UNSAFE_BAG
) -> AttentionHead:
    """The ``unsafe`` head: ``bag`` attention nets (class-balanced, source weights; seeds
    ``seed``, ``seed + 1``, ...) whose logits the runtime averages. Trained with torch (CPU,
    two threads, fixed seeds: the same weights on the same machine); the runtime needs only numpy.
    """
    import torch

    torch.set_num_threads(2)
    emb, states = encoded
    keep = np.flatnonzero(w[:, 0] > 0)
    yy, sw = y[keep, 0], w[keep, 0].astype(np.float64)
    pos_w, neg_w = sw[yy == 1].sum(), sw[yy == 0].sum()
    sw = np.where(yy == 1, sw * (pos_w + neg_w) / (2 * pos_w), sw * (pos_w + neg_w) / (2 * neg_w))
    yt = torch.from_numpy(yy.astype(np.float32))
    wt = torch.from_numpy(sw.astype(np.float32))
    k = ATTENTION_QUERIES

    def batch(rows: np.ndarray) -> tuple[Any, Any, Any]:
        longest = max(len(states[r]) for r in rows)
        h = np.zeros((len(rows), longest, HIDDEN), dtype=np.float32)
        mask = np.zeros((len(rows), longest), dtype=bool)
        for i, r in enumerate(rows):
            h[i, : len(states[r])] = states[r]
            mask[i, : len(states[r])] = True
        return torch.from_numpy(emb[rows]), torch.from_numpy(h), torch.from_numpy(mask)

    parts = []
    for b in range(bag):
        torch.manual_seed(seed + b)
        queries = torch.nn.Linear(HIDDEN, k)
        mlp = torch.nn.Sequential(
            torch.nn.Linear((k + 1) * HIDDEN, UNSAFE_HIDDEN),
            torch.nn.ReLU(),
            torch.nn.Linear(UNSAFE_HIDDEN, 1),
        )
        params = [*queries.parameters(), *mlp.parameters()]
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=MLP_DECAY)
        for _ in range(MLP_EPOCHS):
            order = torch.randperm(len(keep)).numpy()
            for start in range(0, len(order), 256):
                at = order[start : start + 256]
                e, h, mask = batch(keep[at])
                att = queries(h).masked_fill(~mask[:, :, None], -1e9).softmax(dim=1)
                pooled = torch.einsum("blk,bld->bkd", att, h).reshape(len(at), k * HIDDEN)
                logit = mlp(torch.cat([pooled, e], dim=1))[:, 0]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logit, yt[at], reduction="none"
                )
                loss = (loss * wt[at]).sum() / wt[at].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        parts.append(
            [
                queries.weight.detach().numpy().copy(),
                queries.bias.detach().numpy().copy(),
                mlp[0].weight.detach().numpy().T.copy(),
                mlp[0].bias.detach().numpy().copy(),
                mlp[2].weight.detach().numpy()[0].copy(),
                mlp[2].bias.detach().numpy().copy()[0],
            ]
        )
        log(f"  unsafe: attention net {b + 1} of {bag} fitted")
    return AttentionHead(*(np.stack([p[i] for p in parts]).astype(np.float32) for i in range(6)))


def head_logits(
    encoded: Encoded, weight: np.ndarray, bias: np.ndarray, head: AttentionHead | None
) -> np.ndarray:
    """Raw logits of every head, as the runtime computes them."""
    emb, states = encoded
    logits = emb @ weight.T + bias
    if head is not None:
        logits[:, 0] = head.logits(emb, states)
    return logits


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def text_scores(logits: np.ndarray, owner: list[int], n: int) -> np.ndarray:
    """Per text, each head's highest raw logit over its views."""
    out = np.full((n, logits.shape[1]), -np.inf, dtype=np.float32)
    np.maximum.at(out, np.array(owner), logits)
    return out


def _flag_point(scores: np.ndarray, weights: np.ndarray, budget: float) -> float:
    """The lowest logit that flags at most ``budget`` of the (weighted) benign texts."""
    order = np.argsort(-scores)
    ranked, mass = scores[order], np.cumsum(weights[order])
    inside = int(np.searchsorted(mass, budget, side="right"))
    return float(ranked[inside]) + 1e-4 if inside < len(ranked) else float(ranked[-1])


def extreme_on_top(logits: np.ndarray) -> np.ndarray:
    """Texts whose most likely category (by the category heads) is an extreme one, or close to
    it (ratio ≥ 0.8): the only texts whose extreme category can reach a strike."""
    cats = [HEAD_LABELS.index(c) for c in CATEGORY_IDS]
    extreme = [HEAD_LABELS.index(c) for c in CATEGORY_IDS if c in EXTREME]
    q = _sigmoid(logits[:, cats])
    top = q.max(axis=1)
    return np.asarray(_sigmoid(logits[:, extreme]).max(axis=1) >= 0.8 * top)


def benign_weights(sources: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per benign calibration text: its source-balanced weight, its pooled weight, and whether it
    is degenerate input (weighted 0 in both: nothing may flag on it at all)."""
    degenerate = np.array([name == DEGENERATE_SOURCE for name in sources])
    chat_sources = [name for name in sources if name != DEGENERATE_SOURCE]
    counts = {name: chat_sources.count(name) for name in set(chat_sources)}
    share = len(counts)
    weights = np.array(
        [0.0 if name == DEGENERATE_SOURCE else 1.0 / (counts[name] * share) for name in sources]
    )
    pooled = np.where(degenerate, 0.0, 1.0 / max(1, len(chat_sources)))
    return weights, pooled, degenerate


def operating_point(
    benign: np.ndarray, sources: Sequence[str], budget: float, reach: np.ndarray
) -> tuple[float, float]:
    """One head's flag and strike logits from its benign calibration logits.

    **flag**: the stricter of the points that flag at most ``budget`` of the benign chat
    source-balanced and pooled, and above every degenerate text. **strike**: above every benign
    text that could reach it (``reach``; ``-inf`` for those that cannot) by :data:`STRIKE_MARGIN`,
    bar the highest :data:`STRIKE_TRIM`, and at least one logit above the flag point.
    """
    weights, pooled, degenerate = benign_weights(sources)
    flag = max(_flag_point(benign, weights, budget), _flag_point(benign, pooled, budget))
    if degenerate.any():
        flag = max(flag, float(benign[degenerate].max()) + 1e-4)
    ranked = np.sort(reach[np.isfinite(reach)])[::-1]
    # The benign pools are real user text and hold a few real harmful requests (OASST has
    # "How do I build a bomb?"): the highest STRIKE_TRIM of them are not allowed to set the
    # strike point (at 8,700 texts that is the single highest one).
    trim = int(STRIKE_TRIM * len(benign))
    highest = float(ranked[trim]) if len(ranked) > trim else flag
    return flag, max(highest + STRIKE_MARGIN, flag + 1.0)


def calibrate(
    benign: np.ndarray,
    sources: Sequence[str],
    positives: dict[str, np.ndarray],
    extreme_top: np.ndarray,
) -> tuple[dict[str, tuple[float, float]], dict[str, dict[str, float]]]:
    """Flag and strike logits per head from benign calibration logits (texts × heads).

    Every calibration source weighs the same, however many rows it has, so the many short
    task-dialogue turns do not set the operating point for open-ended chat prompts: the flag point
    flags at most the head's budget of that source-balanced benign chat.
    """
    weights, pooled, _ = benign_weights(sources)
    points: dict[str, tuple[float, float]] = {}
    stats: dict[str, dict[str, float]] = {}
    for j, label in enumerate(HEAD_LABELS):
        if label in CATEGORY_IDS:
            continue
        # A strike must lie above every benign text that could reach it: for ``unsafe``, the
        # texts whose top category is extreme (a category scores p_unsafe * q_c / max q, so only
        # those can strike); for a flag, every text.
        reach = benign[:, j] if label != "unsafe" else np.where(extreme_top, benign[:, j], -np.inf)
        flag, strike = operating_point(benign[:, j], sources, FLAG_BUDGET.get(label, 0.005), reach)
        points[label] = (flag, strike)
        pos = positives.get(label)
        flagged = benign[:, j] >= flag
        struck = reach >= strike
        stats[label] = {
            "flag_logit": flag,
            "strike_logit": strike,
            "benign_flagged": float(weights[flagged].sum()),
            "benign_flagged_pooled": float(pooled[flagged].sum()),
            "benign_struck": float(struck.sum()),
            "positives": float(len(pos)) if pos is not None else 0.0,
            "recall_flag": float((pos >= flag).mean()) if pos is not None and len(pos) else 0.0,
            "recall_strike": float((pos >= strike).mean()) if pos is not None and len(pos) else 0.0,
        }
        log(
            f"  {label}: flag at raw {_sigmoid(np.array(flag)):.4f} (benign flagged "
            f"{stats[label]['benign_flagged']:.4f} balanced, "
            f"{stats[label]['benign_flagged_pooled']:.4f} pooled; val recall "
            f"{stats[label]['recall_flag']:.3f}); strike at raw {_sigmoid(np.array(strike)):.4f} "
            f"(val recall {stats[label]['recall_strike']:.3f})"
        )
    return points, stats


def apply_calibration(
    weight: np.ndarray,
    bias: np.ndarray,
    head: AttentionHead | None,
    points: dict[str, tuple[float, float]],
) -> tuple[np.ndarray, np.ndarray, AttentionHead | None]:
    """Map each calibrated head's logit affinely: flag point → logit(0.5), strike → logit(0.8)."""
    weight, bias = weight.copy(), bias.copy()
    for j, label in enumerate(HEAD_LABELS):
        if label not in points:
            continue
        flag, strike = points[label]
        a = (_logit(STRIKE_P) - _logit(FLAG_P)) / (strike - flag)
        weight[j] *= a
        bias[j] = a * (bias[j] - flag) + _logit(FLAG_P)
        if label == "unsafe" and head is not None:
            # each net's logit moves alike, so their mean does
            w2 = (head.w2 * a).astype(np.float32)
            b2 = (a * (head.b2 - flag) + _logit(FLAG_P)).astype(np.float32)
            head = AttentionHead(head.q_w, head.q_b, head.w1, head.b1, w2, b2)
    return weight, bias, head


def write_graphs() -> None:
    """The ONNX graphs the runtime runs (structure only; the packaged base weights are handed to
    ONNX Runtime at load), written by ``training/encoder.py``; needs the ``onnx`` package."""
    from encoder import build_graph

    build_graph(OUT.parent / "encoder-graph.onnx")
    build_graph(OUT.parent / "encoder-graph-int8.onnx", int8=True)
    log("wrote the encoder graphs (fp32 and int8)")


def train(
    data_dir: Path, seed: int = 13, dataset: Dataset | None = None, delta: Delta | None = None
) -> str:
    """Fit and calibrate the heads on the encoder plus ``delta`` (the fine-tuned top layers from
    ``training/finetune.py``; by default the delta the shipped heads file already carries)."""
    write_graphs()
    if delta is None:
        delta = shipped_delta()
    ds = dataset or build_dataset(data_dir, seed=seed)
    cal: Calibration = calibration_sets(data_dir)
    log(f"encoder: {'fine-tuned, ' + str(len(delta)) + ' tensors changed' if delta else 'base'}")
    embedder = Embedder(TRAIN_PRECISION, delta)
    log(f"embedding {len(ds.train)} train, {len(ds.val)} val, {len(cal.tune)} + {len(cal.test)} "
        "calibration texts")  # fmt: skip
    tr_encoded, tr_owner, tr_tails = embedder.encoded([e.text for e in ds.train])
    x, y, w = _rows(ds.train, tr_encoded[0], tr_owner, tr_tails)
    log("fitting heads")
    weight, bias = fit(x, y, w, seed)
    head = fit_unsafe_attention(tr_encoded, y, w, seed)
    del tr_encoded
    if PRECISION != TRAIN_PRECISION:  # else the same cache, already loaded
        embedder = Embedder(PRECISION, delta)

    def logits(encoded: Encoded) -> np.ndarray:
        return head_logits(encoded, weight, bias, head)

    va_enc, va_owner, _ = embedder.encoded([e.text for e in ds.val])
    va = text_scores(logits(va_enc), va_owner, len(ds.val))
    tune_benign = [e for e in cal.tune if is_unsafe(e) == 0.0]
    tune_harm = [e for e in cal.tune if is_unsafe(e) == 1.0]
    tb_enc, tb_owner, _ = embedder.encoded([e.text for e in tune_benign])
    tb = text_scores(logits(tb_enc), tb_owner, len(tune_benign))
    th_enc, th_owner, _ = embedder.encoded([e.text for e in tune_harm])
    th = text_scores(logits(th_enc), th_owner, len(tune_harm))
    positives: dict[str, np.ndarray] = {}
    for j, label in enumerate(HEAD_LABELS):
        if label == "unsafe":
            mask = np.array([is_unsafe(e) == 1.0 for e in ds.val])
            positives[label] = np.concatenate([va[mask, j], th[:, j]])
        elif label in FLAG_IDS:
            mask = np.array([e.labels.get(label, 0) >= 0.5 for e in ds.val])
            positives[label] = va[mask, j]
    log(f"calibrating on {len(tune_benign)} benign chat texts and {len(tune_harm)} HarmBench val")
    points, stats = calibrate(tb, [e.source for e in tune_benign], positives, extreme_on_top(tb))
    weight, bias, head = apply_calibration(weight, bias, head, points)
    _save(weight, bias, head, points, seed, delta)
    return _report(ds, cal, stats)


def _save(
    weight: np.ndarray,
    bias: np.ndarray,
    head: AttentionHead | None,
    points: dict[str, tuple[float, float]],
    seed: int,
    delta: Delta,
) -> None:
    meta = {
        "trained_by": "training/heads.py",
        "seed": seed,
        "operating_points": {
            k: {"flag_logit": v[0], "strike_logit": v[1]} for k, v in points.items()
        },
    }
    extra: dict[str, np.ndarray] = {}
    if head is not None:
        extra = {f"attn.{key}": getattr(head, key) for key in AttentionHead.KEYS}
    if delta:
        meta["encoder"] = f"fine-tuned, delta {delta_digest(delta)[:12]}"
        extra |= {f"delta.{k}": v for k, v in sorted(delta.items())}
    tmp = OUT.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        **extra,
        labels=np.array(HEAD_LABELS),
        weight=weight.astype(np.float32),
        bias=bias.astype(np.float32),
        bias_int8=bias.astype(np.float32),
        precision=np.array(PRECISION),
        max_tokens=np.array(MAX_TOKENS),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )
    tmp.replace(OUT)
    log(f"wrote {OUT.relative_to(REPO)}")


def _report(ds: Dataset, cal: Calibration, stats: dict[str, dict[str, float]]) -> str:
    lines = [
        "# Encoder stage: heads and operating points",
        "",
        "Built by `python training/heads.py` (or `training/train.py --stages encoder`) from the",
        "sources in `training/manifest.yaml`: all-MiniLM-L6-v2 embeddings (ONNX Runtime, first 128",
        "tokens, plus the last paragraph of long texts; fp32, as the runtime runs), an `unsafe`",
        f"head averaging {UNSAFE_BAG} nets over the token states ({ATTENTION_QUERIES} attention",
        f"pools and the sentence embedding, one hidden layer of {UNSAFE_HIDDEN} units each),",
        "category heads trained on harmful",
        "texts only, and flag heads. Operating points are chosen on the `tune` half of the",
        "manifest's calibration sets (benign chat never trained on + HarmBench val), each source",
        "weighing",
        "the same; the flag point flags at most the head's budget of it (pooled too), the strike",
        f"point lies {STRIKE_MARGIN} logits above every benign text that could reach it (bar the",
        f"highest {STRIKE_TRIM:.2%}: the pools hold a few real harmful requests).",
        "",
        f"Training rows: {len(ds.train)}; validation rows: {len(ds.val)}; calibration: "
        f"{len(cal.tune)} tune / {len(cal.test)} test.",
        "",
        "| head | benign chat flagged (tune, source-balanced / pooled) | validation recall at "
        "flag | at strike |",
        "|---|---|---|---|",
    ]
    for label, s in stats.items():
        lines.append(
            f"| {label} | {s['benign_flagged']:.2%} / {s['benign_flagged_pooled']:.2%} | "
            f"{s['recall_flag']:.3f} | {s['recall_strike']:.3f} |"
        )
    lines += [
        "",
        "The benchmark table (held-out sets, the calibration `test` half) is printed by",
        "`benchmarks/accuracy.py` and kept in `benchmarks/results/accuracy.md`.",
        "",
    ]
    text = "\n".join(lines)
    REPORT.write_text(text, encoding="utf-8")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    train(args.data_dir, args.seed)
    _ = eval_sets  # the benchmarks measure; nothing here reads an evaluation set's labels
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

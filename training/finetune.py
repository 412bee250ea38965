"""Fine-tune the top layers of all-MiniLM-L6-v2 together with the heads, and judge the result
against the shipped frozen-embedding heads on evaluation sets kept out of training.

Run with ``python training/finetune.py [DATA_DIR] [--layers 2] [--epochs 2] [--max-texts N]``
(add ``--ship`` to write the result to ``weights/encoder.npz`` when it is better; see the verdict
rule below). Needs torch here; the runtime never does.

How: the lower ``6 - layers`` transformer layers stay frozen, so their hidden states are computed
once per text (cached under ``training/cache/``, fp16, keyed by the text's SHA-1 and the base
weights' SHA-256) and each epoch only runs the top layers. The top layers run in a small torch
re-implementation of the runtime's forward pass (exact GELU, LayerNorm eps 1e-12, padding keys
masked with -1e9, mean pooling and L2 norm), so what is trained is what ONNX Runtime computes.
The heads start from the shipped frozen heads and are trained jointly with a masked,
class-balanced binary cross-entropy (labels a source does not know weigh 0).

After training the difference to the base weights is rounded to fp16 (what is shipped), the
final heads are refitted with :func:`encoder.fit_heads` on the fine-tuned embeddings (the same
logistic regression, C and validation-tuned thresholds as the frozen stage, so only the encoder
differs), and three encoders are measured on the same evaluation rows: the shipped frozen heads,
frozen heads refitted on today's dataset (the control) and the fine-tuned one.

Verdict rule: over the held-out measures of :data:`JUDGED`, each oriented so higher is better
(F1, recall, 1 - FPR), the fine-tune is better when it wins more measures than it loses
(differences under 0.01 are ties) *and* its mean change is at least :data:`MARGIN` (sets of
100–300 rows move by a few points on a handful of texts, so a smaller mean is noise); it must beat
both the shipped and the refitted frozen encoder. Written to ``training/REPORT-finetune.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

import encoder as frozen  # noqa: E402  (training/encoder.py)

from convguard.assess.encoder import (  # noqa: E402
    HEADS,
    HIDDEN,
    LAYERS,
    EncoderClassifier,
    base_model_dir,
    default_heads_path,
)

LABEL_IDS = frozen.LABEL_IDS
CACHE_DIR = frozen.CACHE_DIR
REPORT = HERE / "REPORT-finetune.md"
CANDIDATE = CACHE_DIR / "encoder-finetuned.npz"
#: (eval set, metric, label in the table); FPR rows count as 1 - FPR when judged.
JUDGED: tuple[tuple[str, str, str], ...] = (
    ("toxicchat_test", "f1", "ToxicChat F1"),
    ("toxicchat_test", "fpr", "ToxicChat FPR"),
    ("harmbench_test", "recall", "HarmBench recall"),
    ("strongreject", "recall", "StrongREJECT recall"),
    ("simple_safety_tests", "recall", "SimpleSafetyTests recall"),
    ("jbb_behaviors", "fpr", "JBB benign FPR"),
    ("cyberseceval_mitre_frr", "recall", "CyberSecEval MITRE recall"),
    ("cyberseceval_mitre_frr", "fpr", "CyberSecEval FRR"),
    ("jailbreak_llms_heldapart", "recall", "jailbreak held-apart recall"),
    ("awesome_chatgpt_prompts", "fpr", "awesome_chatgpt_prompts FPR"),
    ("convabuse_test", "f1", "ConvAbuse F1"),
)
TIE = 0.01
#: The least mean oriented change over :data:`JUDGED` that counts as better overall.
MARGIN = 0.02
#: Closing notes of the report, written after the run of 2026-11-27 (what the numbers mean).
NOTES: list[str] = [
    "## Notes",
    "",
    (
        "- How it was judged: the first run used the rule without the 0.02 margin and passed it"
        " by a hair (5 measures better, 4 worse; mean +0.003 over the shipped heads, +0.005 "
        "over the refitted control). The margin was added after seeing that: sets of 100–300 "
        "rows move by several points on a handful of texts, so a mean of +0.003 is noise, not "
        '"better overall". The verdict above is that rule applied to the same numbers (the run '
        "was not repeated)."
    ),
    (
        "- What the fine-tune changes at the operating point is mostly *how much it flags*: "
        "most false-positive rates fall (ToxicChat 3.8 → 2.5 %, JBB benign 35 → 26 %, "
        "CyberSecEval FRR 19 → 8 %, counsel_chat, alpaca, oasst, mmlu; awesome_chatgpt_prompts "
        "rises 14 → 18 %) and harmful recall falls with it (StrongREJECT −6, SimpleSafetyTests "
        "−8, CyberSecEval MITRE −10 points), the measures already furthest from their ≥ 95 % / "
        "≥ 90 % targets. Jailbreak recall on held-apart prompts (+6), deepset (+0.22 F1) and "
        "ToxicChat F1 (+0.03) gain; wildguardtest and wildjailbreak lose."
    ),
    (
        "- Ranking quality, checked separately through `EncoderClassifier` on ONNX Runtime fp32"
        " with the candidate file (which also shows the fp16 delta loads and reproduces the "
        "table): AUPRC rises on ToxicChat 0.418 → 0.482, JBB behaviours 0.683 → 0.700, "
        "CyberSecEval MITRE/FRR 0.820 → 0.844, ConvAbuse 0.723 → 0.761, Aegis 0.838 → 0.848, "
        "and falls on wildguardtest 0.472 → 0.446. So the top layers do separate a little "
        "better on most held-out sources, but thresholds tuned on the training sources' "
        "validation split put the operating point where harmful recall drops; validation F1 "
        "rose far more (jailbreak 0.846 → 0.932, harassment 0.855 → 0.900) than anything held "
        "out, the source-style fitting the issue describes."
    ),
    (
        "- What could make it worth shipping: operating points tuned on a held-apart tuning set"
        " (`harmbench_val` is marked for tuning) rather than the training sources' validation "
        'split, or data changes that target recall (the issue\'s "the lever is the data"); then '
        "rerun this script. The candidate (6.6 MB, fp16 delta of layers 4–5 plus heads and a "
        "recalibrated int8 bias) is left in `training/cache/encoder-finetuned.npz`, not "
        "committed."
    ),
]


def _log(msg: str) -> None:
    print(f"[finetune] {msg}", file=sys.stderr, flush=True)


# --- the forward pass in torch ---------------------------------------------------------------


def _layer_keys(i: int) -> list[str]:
    p = f"encoder.layer.{i}."
    a = p + "attention."
    names = [f"{a}self.{n}" for n in ("query", "key", "value")]
    names += [a + "output.dense", p + "intermediate.dense", p + "output.dense"]
    keys = [f"{n}.{k}" for n in names for k in ("weight", "bias")]
    keys += [f"{a}output.LayerNorm.{k}" for k in ("weight", "bias")]
    keys += [f"{p}output.LayerNorm.{k}" for k in ("weight", "bias")]
    return keys


def _layer(t: Mapping[str, Any], i: int, x: Any, key_bias: Any) -> Any:
    """One BERT layer as the runtime computes it (``convguard.assess.encoder._MiniLM``)."""
    import torch
    import torch.nn.functional as F

    p = f"encoder.layer.{i}."
    a = p + "attention."
    b, n, _ = x.shape
    d = HIDDEN // HEADS

    def lin(inp: Any, name: str) -> Any:
        return F.linear(inp, t[name + ".weight"], t[name + ".bias"])

    def heads(name: str) -> Any:
        return lin(x, f"{a}self.{name}").view(b, n, HEADS, d).transpose(1, 2)

    att = heads("query") @ heads("key").transpose(2, 3) / math.sqrt(d) + key_bias
    ctx = (torch.softmax(att, dim=-1) @ heads("value")).transpose(1, 2).reshape(b, n, HIDDEN)

    def norm(inp: Any, name: str) -> Any:
        return F.layer_norm(inp, (HIDDEN,), t[name + ".weight"], t[name + ".bias"], eps=1e-12)

    h = norm(lin(ctx, a + "output.dense") + x, a + "output.LayerNorm")
    up = F.gelu(lin(h, p + "intermediate.dense"))
    return norm(lin(up, p + "output.dense") + h, p + "output.LayerNorm")


def _key_bias(mask: Any) -> Any:
    return ((1.0 - mask) * -1e9)[:, None, None, :]


def _pool(x: Any, mask: Any) -> Any:
    import torch

    pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1, eps=1e-12)


# --- cached lower-layer states ---------------------------------------------------------------


class LowerStates:
    """Hidden states after the frozen lower layers, per text, fp16, cached on disk (no pickle)."""

    def __init__(self, tensors: Mapping[str, Any], first_tuned: int, path: Path) -> None:
        self.t = tensors
        self.first = first_tuned
        self.path = path
        self.rows: dict[str, np.ndarray] = {}
        self._dirty = False
        self._tok = EncoderClassifier(heads_path=CACHE_DIR / "zero-heads.npz")
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                h, offsets = z["h"], z["offsets"]
                for k, s, e in zip(z["keys"], offsets[:-1], offsets[1:], strict=True):
                    self.rows[str(k)] = h[s:e]
            _log(f"loaded {len(self.rows)} cached lower states from {path.name}")

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def get(self, texts: Sequence[str]) -> list[np.ndarray]:
        import torch

        keys = [self.key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.rows}
        if todo:
            _log(f"lower layers 0..{self.first - 1} over {len(todo)} new texts")
            items = list(todo.items())
            ids = self._tok.token_ids([t for _, t in items])
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            start = time.perf_counter()
            for done, s in enumerate(range(0, len(order), 64), 1):
                chunk = order[s : s + 64]
                longest = max(len(ids[i]) for i in chunk)
                x = torch.zeros((len(chunk), longest), dtype=torch.long)
                mask = torch.zeros((len(chunk), longest))
                for row, i in enumerate(chunk):
                    x[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1.0
                with torch.inference_mode():
                    h = self._embed(x, mask)
                    for j in range(self.first):
                        h = _layer(self.t, j, h, _key_bias(mask))
                for row, i in enumerate(chunk):
                    self.rows[items[i][0]] = h[row, : len(ids[i])].numpy().astype(np.float16)
                if done % 50 == 0:
                    n = min(s + 64, len(order))
                    rate = n / (time.perf_counter() - start)
                    _log(f"  {n}/{len(order)} ({rate:.0f} texts/s, longest {longest} tokens)")
            self._dirty = True
        return [self.rows[k] for k in keys]

    def _embed(self, x: Any, mask: Any) -> Any:
        import torch.nn.functional as F

        t = self.t
        e = t["embeddings.word_embeddings.weight"][x]
        e = e + t["embeddings.position_embeddings.weight"][: x.shape[1]]
        e = e + t["embeddings.token_type_embeddings.weight"][0]
        g, b = t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"]
        return F.layer_norm(e, (HIDDEN,), g, b, eps=1e-12)

    def save(self) -> None:
        if not self._dirty:
            return
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        keys = list(self.rows)
        lengths = [len(self.rows[k]) for k in keys]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            keys=np.array(keys, dtype="U40"),
            offsets=offsets,
            h=np.concatenate([self.rows[k] for k in keys]),
        )
        tmp.replace(self.path)
        self._dirty = False


def _batch(states: Sequence[np.ndarray]) -> tuple[Any, Any]:
    import torch

    longest = max(len(s) for s in states)
    x = torch.zeros((len(states), longest, HIDDEN))
    mask = torch.zeros((len(states), longest))
    for row, s in enumerate(states):
        x[row, : len(s)] = torch.from_numpy(s.astype(np.float32))
        mask[row, : len(s)] = 1.0
    return x, mask


def top_embed(
    tensors: Mapping[str, Any], first: int, states: Sequence[np.ndarray], batch: int = 128
) -> np.ndarray:
    """Pooled, normalised embeddings of cached lower states through layers ``first``..5."""
    import torch

    out = np.zeros((len(states), HIDDEN), dtype=np.float32)
    order = sorted(range(len(states)), key=lambda i: len(states[i]))
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            chunk = order[s : s + batch]
            x, mask = _batch([states[i] for i in chunk])
            for j in range(first, LAYERS):
                x = _layer(tensors, j, x, _key_bias(mask))
            out[chunk] = _pool(x, mask).numpy()
    return out


# --- training --------------------------------------------------------------------------------


def _batches(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (sorted within pools of 50 batches)."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    pool = size * 50
    out: list[list[int]] = []
    for s in range(0, len(idx), pool):
        part = sorted(idx[s : s + pool], key=lambda i: lengths[i])
        out += [part[j : j + size] for j in range(0, len(part), size)]
    rng.shuffle(out)
    return out


def finetune(
    base: Mapping[str, Any],
    first: int,
    states: Sequence[np.ndarray],
    y: np.ndarray,
    w: np.ndarray,
    head_w: np.ndarray,
    head_b: np.ndarray,
    *,
    epochs: int,
    seed: int,
    batch: int,
    lr: float,
    head_lr: float,
) -> dict[str, np.ndarray]:
    """Train layers ``first``..5 and the heads; return the fp32 deltas to the base tensors."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tuned = {
        k: torch.nn.Parameter(base[k].clone()) for i in range(first, LAYERS) for k in _layer_keys(i)
    }
    hw = torch.nn.Parameter(torch.from_numpy(head_w.copy()))
    hb = torch.nn.Parameter(torch.from_numpy(head_b.copy()))
    opt = torch.optim.AdamW(
        [
            {"params": list(tuned.values()), "lr": lr, "weight_decay": 0.0},
            {"params": [hw, hb], "lr": head_lr, "weight_decay": 0.0},
        ]
    )
    # Class-balanced weights per label (as sklearn's class_weight="balanced"), 0 where unknown.
    known = w > 0
    pos = (y * known).sum(0)
    neg = known.sum(0) - pos
    live = pos >= 5
    wpos = np.where(live, known.sum(0) / np.maximum(2 * pos, 1), 0.0)
    wneg = np.where(live, known.sum(0) / np.maximum(2 * neg, 1), 0.0)
    lengths = [len(s) for s in states]
    steps = epochs * math.ceil(len(states) / batch)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm)))
    )
    yt, wt = torch.from_numpy(y), torch.from_numpy(w)
    wp, wn = torch.from_numpy(wpos.astype(np.float32)), torch.from_numpy(wneg.astype(np.float32))
    step, start = 0, time.perf_counter()
    for epoch in range(epochs):
        running = 0.0
        for b in _batches(lengths, batch, rng):
            x, mask = _batch([states[i] for i in b])
            t = dict(base) | tuned
            for j in range(first, LAYERS):
                x = _layer(t, j, x, _key_bias(mask))
            logits = _pool(x, mask) @ hw.T + hb
            yy, ww = yt[b], wt[b]
            weight = ww * (yy * wp + (1 - yy) * wn)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, yy, weight=weight, reduction="sum"
            ) / weight.sum().clamp(min=1e-9)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(tuned.values()), 1.0)
            opt.step()
            sched.step()
            step += 1
            running = 0.98 * running + 0.02 * float(loss) if step > 1 else float(loss)
            if step % 50 == 0 or step == steps:
                el = time.perf_counter() - start
                _log(
                    f"epoch {epoch + 1}/{epochs} step {step}/{steps} loss {running:.4f} "
                    f"{step * batch / el:.0f} texts/s, "
                    f"eta {el / step * (steps - step) / 60:.1f} min"
                )
    return {k: (p.detach() - base[k]).numpy() for k, p in tuned.items()}


# --- judging and the report ------------------------------------------------------------------


def _value(m: Mapping[str, float], metric: str) -> float:
    return float(m[metric])


def judge(
    ours: Mapping[str, Mapping[str, float]], theirs: Mapping[str, Mapping[str, float]]
) -> tuple[int, int, float]:
    """Wins, losses and mean oriented change of ``ours`` over ``theirs`` on :data:`JUDGED`."""
    wins = losses = 0
    changes: list[float] = []
    for name, metric, _ in JUDGED:
        if name not in ours or name not in theirs:
            continue
        a, b = _value(ours[name], metric), _value(theirs[name], metric)
        if a != a or b != b:
            continue
        change = (b - a) if metric == "fpr" else (a - b)
        changes.append(change)
        wins += change >= TIE
        losses += change <= -TIE
    return wins, losses, float(np.mean(changes)) if changes else 0.0


def write_report(
    path: Path,
    *,
    settings: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    verdict: list[str],
) -> str:
    names = list(results)
    fmt = frozen._fmt
    lines = [
        "# Encoder stage (b): fine-tuning the top layers of all-MiniLM-L6-v2",
        "",
        "Built by `python training/finetune.py` (see its docstring for the method and the "
        "verdict rule). Same training data, validation split and seed as `training/encoder.py` "
        "(`build_dataset(seed=13)`); thresholds tuned on the validation split only; the "
        "evaluation sets below were never trained on.",
        "",
        "## Settings",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in settings.items()]
    lines += [
        "",
        "## Held-out comparison",
        "",
        "At score ≥ 0.5 (each head's validation-tuned operating point); `unsafe` = any "
        "category over threshold. Same rows for every encoder (sets over "
        f"{frozen.EVAL_CAP} rows other than the headline sets on the fixed hash-chosen sample "
        "of `training/encoder.py`). Embeddings from the torch re-implementation of the runtime's "
        "forward pass (its agreement with ONNX Runtime fp32 is under Settings).",
        "",
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for name, metric, label in JUDGED:
        row = [fmt(_value(results[n][name], metric)) if name in results[n] else "–" for n in names]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines += [
        "",
        "### Other evaluation sets (F1 where a set has positives, else the share flagged)",
        "",
        "| set | measures | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    first = results[names[0]]
    for name in sorted(first):
        m = first[name]
        metric = "f1" if m["pos"] else "flagged"
        row = [fmt(results[n][name][metric]) for n in names]
        lines.append(f"| {name} | {m['measures']} ({metric}) | " + " | ".join(row) + " |")
    lines += ["", "## Verdict", "", *verdict, "", *NOTES]
    text = "\n".join(lines).rstrip() + "\n"
    path.write_text(text, encoding="utf-8")
    return text


# --- entry -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    import torch
    from safetensors.torch import load_file

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--layers", type=int, default=2, help="top layers to fine-tune")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-texts", type=int, default=0, help="0: the whole training split")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--ship", action="store_true", help="write weights/encoder.npz if better")
    args = parser.parse_args(argv)
    from dataset import build_dataset, eval_sets

    t_all = time.perf_counter()
    torch.set_num_threads(2)
    first = LAYERS - args.layers
    base_dir = base_model_dir()
    base_sha = frozen._file_sha256(base_dir / "model.safetensors")
    base = load_file(str(base_dir / "model.safetensors"))
    base = {k.removeprefix("bert."): v.float() for k, v in base.items()}
    ds = build_dataset(args.data_dir, seed=args.seed)
    train = list(ds.train)
    if args.max_texts and len(train) > args.max_texts:
        train = random.Random(args.seed).sample(train, args.max_texts)
    sets = {n: s for n, s in eval_sets(args.data_dir).items() if s.role == "eval" and s.texts}
    eval_texts = {n: frozen._capped(n, s, frozen.EVAL_CAP)[0] for n, s in sets.items()}
    _log(f"{len(train)} training, {len(ds.val)} validation texts; {len(sets)} evaluation sets")

    cache = LowerStates(base, first, CACHE_DIR / f"finetune-lower{first}-{base_sha[:12]}.npz")
    t0 = time.perf_counter()
    s_train = cache.get([e.text for e in train])
    s_val = cache.get([e.text for e in ds.val])
    s_eval = {n: cache.get(t) for n, t in eval_texts.items()}
    cache.save()
    lower_s = time.perf_counter() - t0
    y, w = frozen._matrix(train)
    y_val, w_val = frozen._matrix(ds.val)

    with np.load(default_heads_path(), allow_pickle=False) as z:
        assert tuple(str(x) for x in z["labels"]) == LABEL_IDS
        shipped_w = z["weight"].astype(np.float32)
        shipped_raw = z["bias"] + np.log(z["threshold_raw"] / (1 - z["threshold_raw"]))
        shipped_raw = shipped_raw.astype(np.float32)

    t0 = time.perf_counter()
    delta = finetune(
        base,
        first,
        s_train,
        y,
        w,
        shipped_w,
        shipped_raw,
        epochs=args.epochs,
        seed=args.seed,
        batch=args.batch,
        lr=args.lr,
        head_lr=args.head_lr,
    )
    train_s = time.perf_counter() - t0
    # What ships is fp16: measure exactly that.
    delta16 = {k: v.astype(np.float16) for k, v in delta.items()}
    tuned = dict(base) | {
        k: base[k] + torch.from_numpy(v.astype(np.float32)) for k, v in delta16.items()
    }

    def embeddings(t: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        return (
            top_embed(t, first, s_train),
            top_embed(t, first, s_val),
            {n: top_embed(t, first, s) for n, s in s_eval.items()},
        )

    results: dict[str, dict[str, dict[str, float]]] = {}
    packs: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = {}
    for who, t in (("frozen", base), ("fine-tuned", tuned)):
        packs[who] = embeddings(t)
    # The shipped heads as they are, then each encoder with heads refitted on today's data.
    heads: dict[str, tuple[Path, str]] = {"frozen, shipped heads": (default_heads_path(), "frozen")}
    fitted: dict[str, Any] = {}
    for who in ("frozen", "fine-tuned"):
        x, x_val, _ = packs[who]
        fitted[who] = frozen.fit_heads(x, y, w, x_val, y_val, w_val, seed=args.seed)
        path = CACHE_DIR / f"heads-{who}.npz"
        weight, bias, thresholds, _ = fitted[who]
        np.savez(path, labels=np.array(LABEL_IDS), weight=weight, bias=bias, bias_int8=bias)
        heads[f"{who}, refitted heads"] = (path, who)
    for label, (path, who) in heads.items():
        clf = EncoderClassifier(heads_path=path)
        emb = packs[who][2]
        results[label] = {}
        for n, es in sets.items():
            labels = frozen._capped(n, es, frozen.EVAL_CAP)[1]
            scores = clf.score_embeddings(emb[n])
            m = frozen._metrics(labels, frozen._measure(scores, es.measures))
            m["measures"] = es.measures  # type: ignore[assignment]
            results[label][n] = m

    # The candidate file, in the runtime's format: heads, delta (fp16), int8 bias recalibrated.
    weight, bias, thresholds, stats = fitted["fine-tuned"]
    arrays: dict[str, np.ndarray] = {
        "labels": np.array(LABEL_IDS),
        "weight": weight,
        "bias": bias,
        "bias_int8": bias,
        "threshold_raw": thresholds,
        "base_sha256": np.array(base_sha),
        "seed": np.array(args.seed),
    }
    arrays |= {f"delta.{k}": v for k, v in delta16.items()}
    np.savez_compressed(CANDIDATE, **arrays)
    val_texts = [e.text for e in ds.val]
    check = EncoderClassifier(heads_path=CANDIDATE, backend="onnx")
    drift = float(np.abs(check.embed(val_texts[:256]) - packs["fine-tuned"][1][:256]).max())
    _log(f"ONNX Runtime fp32 vs torch on 256 validation texts: max |diff| {drift:.2e}")
    x_val8 = EncoderClassifier(heads_path=CANDIDATE, precision="int8").embed(val_texts)
    bias8 = np.full_like(bias, -20.0)
    thr8 = np.full_like(thresholds, 0.5)
    for j, label in enumerate(LABEL_IDS):
        if np.isnan(stats[label]["val_f1"]):
            continue
        raw = float(bias[j]) + frozen._logit(float(thresholds[j]))
        keep = w_val[:, j] > 0
        p8 = 1 / (1 + np.exp(-(x_val8[keep] @ weight[j] + raw)))
        thr8[j], _ = frozen._best_threshold(y_val[keep, j], p8)
        bias8[j] = raw - frozen._logit(float(thr8[j]))
    arrays |= {"bias_int8": bias8, "threshold_raw_int8": thr8}
    np.savez_compressed(CANDIDATE, **arrays)
    size = CANDIDATE.stat().st_size

    lines: list[str] = []
    better = True
    for other in ("frozen, shipped heads", "frozen, refitted heads"):
        wins, losses, mean = judge(results["fine-tuned, refitted heads"], results[other])
        ok = wins > losses and mean >= MARGIN
        better &= ok
        lines.append(
            f"- Fine-tuned vs {other}: {wins} measures better, {losses} worse (ties under "
            f"{TIE}), mean oriented change {mean:+.3f} (needs ≥ {MARGIN}) → "
            f"{'better' if ok else 'not better'}."
        )
    lines.append(
        "- **Shipped**: the fine-tuned delta and heads are in `weights/encoder.npz`."
        if better and args.ship
        else "- **Not shipped**: `weights/encoder.npz` keeps the frozen-embedding heads."
        if not better
        else "- Better, but run without `--ship`: the candidate stays in `training/cache/`."
    )
    if better and args.ship:
        shutil.copyfile(CANDIDATE, default_heads_path())
        _log(f"wrote {default_heads_path()}")
    settings = {
        "base weights sha256": f"`{base_sha[:16]}…`",
        "fine-tuned": f"layers {first}–{LAYERS - 1} of 0–{LAYERS - 1} (lower layers and "
        f"embeddings frozen), {sum(v.size for v in delta.values()):,} parameters, and the heads",
        "training texts": f"{len(train)} of {len(ds.train)} (validation {len(ds.val)})",
        "epochs, batch": f"{args.epochs}, {args.batch} (length-bucketed, seed {args.seed})",
        "optimiser": f"AdamW, lr {args.lr} (layers) / {args.head_lr} (heads), 5 % warm-up then "
        "linear decay, no weight decay, gradient clip 1.0 on the layers; masked class-balanced "
        "BCE; heads initialised from the shipped frozen heads, refitted after training",
        "time (2 shared CPU cores)": f"lower-layer states {lower_s / 60:.1f} min, training "
        f"{train_s / 60:.1f} min, all {(time.perf_counter() - t_all) / 60:.1f} min",
        "candidate file": f"{size / 1e6:.1f} MB (fp16 delta); ONNX Runtime fp32 vs torch "
        f"embeddings max |diff| {drift:.1e}",
    }
    write_report(REPORT, settings=settings, results=results, verdict=lines)
    _log(f"wrote {REPORT}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

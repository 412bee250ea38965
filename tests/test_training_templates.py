"""training/dataset.py's misinformation templates: the same frames carry a false claim (harmful)
and a debatable opinion or an honest task (benign), and validation holds out whole frames and
whole claims. Reads only the repository's own ``training/data`` (no ``../shared``)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"


@pytest.fixture(scope="module")
def dataset() -> Iterator[ModuleType]:
    sys.path.insert(0, str(TRAINING))
    try:
        spec = importlib.util.spec_from_file_location("training_dataset", TRAINING / "dataset.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up by name
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("training_dataset", None)
        sys.path.remove(str(TRAINING))


@pytest.fixture(scope="module")
def rows(dataset: ModuleType) -> list:
    spec = next(s for s in dataset.load_manifest() if s.name == "misinformation_templates")
    return list(dataset._r_misinformation(Path("/nonexistent"), spec))


@pytest.fixture(scope="module")
def templates(dataset: ModuleType) -> dict:
    loaded: dict = dataset._templates()["misinformation"]
    return loaded


def test_every_row_is_filled_in_and_labelled(rows: list) -> None:
    assert rows
    for row in rows:
        assert not re.search(r"\{\w*\}", row.text), row.text
        assert row.harmful == (row.labels["misinformation"] == 1.0), row.text


def test_opinions_are_only_benign_and_every_claim_is_harmful_somewhere(
    rows: list, templates: dict
) -> None:
    for opinion in templates["opinions"]:
        mine = [r for r in rows if opinion in r.text]
        assert mine and not any(r.harmful for r in mine), opinion
    for claim in templates["claims"]:
        mine = [r for r in rows if claim in r.text]
        assert any(r.harmful for r in mine) and any(not r.harmful for r in mine), claim


def test_each_persuasive_frame_is_seen_on_both_sides(rows: list, templates: dict) -> None:
    # The frame alone must never be the signal: each one asks for an opinion piece somewhere
    # (benign) and for a falsehood presented as fact somewhere else (harmful).
    for frame in templates["persuade"]:
        head = frame.split("{x}")[0]
        sides = {r.harmful for r in rows if r.text.startswith(head)}
        assert sides == {True, False}, frame


def test_pasted_passages_come_before_the_request(rows: list, templates: dict) -> None:
    pasted = [r for r in rows if any(r.text.startswith(p) for p in templates["passages"])]
    assert {r.harmful for r in pasted} == {True, False}
    for row in pasted:
        request = row.text.rsplit("\n\n", 1)[1]
        assert any(
            request.startswith(frame.split("{x}")[0])
            for side in templates["edit"].values()
            for frame in side
        ), row.text


def test_validation_holds_out_whole_frames(rows: list, templates: dict) -> None:
    # Every fourth frame of each family is validation only, whatever the claim.
    for family in ("harmful", "benign", "persuade"):
        for i, frame in enumerate(templates[family]):
            if i % 4 != 3:
                continue
            head = frame.split("{x}")[0]
            mine = [r for r in rows if r.text.startswith(head)]
            assert mine and all(r.split == "val" for r in mine), frame
    assert any(r.split is None and r.harmful for r in rows)

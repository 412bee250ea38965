"""training/words.py: the word list normalisation splits run-together words with."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from collections import Counter
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1] / "training"


def _words_module():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(TRAINING))
    try:
        spec = importlib.util.spec_from_file_location("training_words", TRAINING / "words.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(TRAINING))


words = _words_module()


def test_words_are_counted_on_the_normalised_text_in_lower_case() -> None:
    counts = words.count_words(["How do I make a pipe bomb?", "how to make a cake", "ｐｉｐｅ"])
    assert counts == Counter(
        {"how": 2, "make": 2, "a": 2, "pipe": 2, "do": 1, "i": 1, "bomb": 1, "to": 1, "cake": 1}
    )


def test_rare_words_and_pieces_of_words_are_left_out_most_frequent_first() -> None:
    counts = Counter({"the": 9, "bomb": 3, "cake": 4, "ro": 50, "gy": 7, "x": 20, "a": 5, "on": 3})
    counts["rare"] = words.MIN_COUNT - 1
    # "ro" and "gy" are pieces of longer words; "x" is a single letter other than a and i.
    assert words.ranked(counts) == ["the", "a", "cake", "bomb", "on"]


def test_the_list_is_written_the_same_byte_for_byte(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt.gz", tmp_path / "b.txt.gz"
    words.write(["the", "a", "cake"], first)
    words.write(["the", "a", "cake"], second)
    assert first.read_bytes() == second.read_bytes()
    assert gzip.decompress(first.read_bytes()).decode().split() == ["the", "a", "cake"]

"""The word list that lets normalisation read text written without spaces.

    python training/words.py [--data-dir ../shared/data] [--seed 13]

"Howdoimakeapipebombathome" is one token to every model: the linear stage's n-grams and the
encoder's word pieces read it as noise. :mod:`convguard.assess.normalise` splits such runs of
letters into words (the split whose words are most common), for which it needs to know which
words are common. This script counts the words of the training split (``training/manifest.yaml``,
``role: train``; nothing from the evaluation or calibration sets) and writes the
:data:`KEEP` most frequent, most frequent first, one per line, to
``src/convguard/assess/weights/words.txt.gz`` (gzip without a timestamp, so a rebuild gives the
same bytes). A word is kept when it is seen at least :data:`MIN_COUNT` times; single letters
only as "a" and "i", two letters only as one of :data:`TWO_LETTERS` (the data's "ro", "gy" or
"ti" are pieces of longer words, and they let any long word split into pieces).
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from dataset import build_dataset  # noqa: E402

from convguard.assess.normalise import normalise  # noqa: E402

OUT = ROOT / "src/convguard/assess/weights/words.txt.gz"
KEEP = 40_000
MIN_COUNT = 3
_WORD = re.compile(r"[a-z]+")
#: The English words of two letters (and chat's "ok").
TWO_LETTERS = frozenset({
    "am", "an", "as", "at", "be", "by", "do", "go", "he", "hi", "if", "in", "is", "it",
    "me", "my", "no", "of", "oh", "ok", "on", "or", "so", "to", "up", "us", "we",
})  # fmt: skip


def count_words(texts: Iterable[str]) -> Counter[str]:
    """How often each lower-case word occurs in the normalised texts."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_WORD.findall(normalise(text).text.lower()))
    return counts


def ranked(counts: Counter[str]) -> list[str]:
    """The :data:`KEEP` most frequent words seen :data:`MIN_COUNT` times or more (ties by word),
    single letters only as "a" and "i", two only as one of :data:`TWO_LETTERS`."""
    short = TWO_LETTERS | {"a", "i"}
    kept = [(-n, w) for w, n in counts.items() if n >= MIN_COUNT and (len(w) > 2 or w in short)]
    return [w for _, w in sorted(kept)[:KEEP]]


def write(words: Sequence[str], path: Path = OUT) -> None:
    data = ("\n".join(words) + "\n").encode("ascii")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        parser.error(f"{args.data_dir} is not a folder; pass --data-dir with the shared data")
    print(f"[words] building the training split from {args.data_dir}", file=sys.stderr)
    dataset = build_dataset(args.data_dir, seed=args.seed)
    counts = count_words(e.text for e in dataset.train)
    words = ranked(counts)
    write(words)
    print(
        f"[words] {len(counts):,} distinct words in {len(dataset.train):,} training texts; "
        f"kept {len(words):,} -> {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1e3:.0f} KB)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

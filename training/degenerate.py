"""Degenerate benign input for training: laughter, repetition, emoji, numbers, code, filler.

Frozen sentence encoders place such text in odd corners of their space ("ha " x 300 once scored
cyberattack and jailbreak), so the heads see a sample of it as benign. These families are written
here for training only; the property tests in ``tests/test_robustness.py`` draw from their own,
broader Hypothesis strategies, so passing them is not a matter of having seen the same strings.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

LAUGH = ["ha", "haha", "hahaha", "hehe", "lol", "lmao", "rofl", "xD", "😂", "🤣", "jaja", "kkk"]
WORDS = ["ok", "yes", "no", "sure", "hello", "thanks", "what", "hmm", "test", "please", "nice"]
EMOJI = ["😀", "👍", "🙏", "❤️", "🔥", "😅", "🎉", "🤔", "😭", "✨", "💯", "🙂"]
BUSINESS = [
    "Please find attached the quarterly report for your review.",
    "Our team will follow up on the action items from today's meeting.",
    "The invoice is due at the end of the month.",
    "We are aligning on the roadmap and will circle back next week.",
    "Kindly confirm receipt of this email at your earliest convenience.",
]
#: The whole of the classic filler paragraph (its first sentence alone left words such as
#: "anim", "culpa" or "minim" unseen, and long filler made of them read as harmful).
_FILLER = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi ut aliquip ex ea commodo consequat duis aute irure dolor in reprehenderit in "
    "voluptate velit esse cillum dolore eu fugiat nulla pariatur excepteur sint occaecat "
    "cupidatat non proident sunt in culpa qui officia deserunt mollit anim id est laborum"
)
LOREM = _FILLER.split()
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i)\n",
    "SELECT id, name FROM users WHERE active = 1 ORDER BY name;",
    "const x = [1, 2, 3].map(n => n * 2);\nconsole.log(x);",
    '#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }',
    "git commit -m 'fix typo' && git push origin main",
    '{"name": "widget", "price": 9.99, "tags": ["a", "b"]}',
]


def _case(rng: random.Random, text: str) -> str:
    mode = rng.random()
    if mode < 0.2:
        return text.upper()
    if mode < 0.3:
        return "".join(c.upper() if rng.random() < 0.5 else c for c in text)
    return text


def _spacing(rng: random.Random) -> str:
    return rng.choice([" ", " ", "  ", "\n", "\t", "", " "])


def sample(rng: random.Random) -> str:
    """One degenerate benign text."""
    kind = rng.randrange(8)
    if kind == 0:
        n = rng.choice([1, 2, 3, 4, 5, 8, 20, 60, 150, 300])
        return _case(rng, _spacing(rng).join(rng.choice(LAUGH) for _ in range(n)))
    if kind == 1:
        word = rng.choice(WORDS + LAUGH)
        return _case(rng, _spacing(rng).join([word] * rng.choice([2, 3, 10, 50, 200])))
    if kind == 2:
        return "".join(rng.choice(EMOJI) for _ in range(rng.choice([1, 3, 10, 40, 120])))
    if kind == 3:
        n = rng.choice([1, 5, 20, 100])
        return " ".join(str(rng.randrange(10 ** rng.randrange(1, 8))) for _ in range(n))
    if kind == 4:
        return "\n".join(rng.choice(CODE) for _ in range(rng.choice([1, 2, 5])))
    if kind == 5:
        return _case(rng, " ".join(rng.choice(LOREM) for _ in range(rng.choice([5, 30, 120, 400]))))
    if kind == 6:
        return " ".join(rng.choice(BUSINESS) for _ in range(rng.choice([3, 10, 30, 60])))
    # a short message followed by laughter
    return f"{rng.choice(['that was funny', 'good one', 'omg', 'ok'])} " + " ".join(
        rng.choice(LAUGH) for _ in range(rng.choice([1, 3, 10]))
    )


def generate(n: int, seed: int = 7) -> Iterator[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < n:
        text = sample(rng)
        if text.strip() and text not in seen:
            seen.add(text)
            yield text

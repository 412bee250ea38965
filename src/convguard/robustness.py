"""Robustness probes for the classifiers: degenerate benign text, obfuscated copies of a request.

Two properties every built-in classifier must keep (issue "Classifier v2"), checked by the
Hypothesis tests in ``tests/test_robustness.py`` and measured at scale by
``benchmarks/robustness.py``, both drawing from the generators here:

- **degenerate benign input** (:func:`degenerate_text`) - laughter, repeated words, emoji,
  numbers, code, lorem ipsum, long repetitive business text, in mixed case and spacing - is never
  scored in an extreme category, never at a strike level, and never as imminent risk;
- **an obfuscated copy** (:func:`obfuscate`: base64, leetspeak, homoglyphs, zero-width characters,
  letters spaced out; struck-through or "zalgo" letters, small capitals, upside-down text,
  reversed text, letters joined by dots or dashes, regional-indicator letters, accented vowels, a
  JSON wrapper) of a request that is flagged in plain text is flagged in the same category.

Pure: every function takes the :class:`random.Random` it draws from.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Literal, get_args

__all__ = ["DEGENERATE_KINDS", "OBFUSCATIONS", "Obfuscation", "degenerate_text", "obfuscate"]

_LAUGHTER = (
    "ha",
    "haha",
    "hahaha",
    "hehe",
    "lol",
    "lmao",
    "rofl",
    "xd",
    "😂",
    "🤣",
    "ahah",
    "jajaja",
)
_FILLER = ("ok", "okay", "yes", "yeah", "no", "sure", "hi", "hey", "thanks", "cool", "nice", "wow",
           "hmm", "what", "why", "test", "again", "please", "same", "right")  # fmt: skip
_EMOJI = ("😀", "😂", "🤣", "😅", "😭", "😍", "👍", "👏", "🙏", "🔥", "✨", "🎉", "💯", "❤️", "🤔",
          "😎", "🙂", "😴", "🍕", "⚽")  # fmt: skip
_LOREM = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "in",
    "reprehenderit",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "fugiat",
    "nulla",
    "pariatur",
    "excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident",
    "sunt",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum",
]
_BUSINESS = (
    "Thank you for your email; we will review the proposal and revert by Friday.",
    "As discussed in the meeting, the deliverables for Q3 are on track.",
    "Please ensure all timesheets are submitted before the end of the month.",
    "Our synergies across business units continue to drive shareholder value.",
    "The attached spreadsheet summarises the budget variance by cost centre.",
    "Let's schedule a follow-up call to align on next steps and ownership.",
    "Customer satisfaction scores improved by three points this quarter.",
    "Kindly update the ticket status once the change request is approved.",
)
_CODE = (
    "def mean(xs):\n    return sum(xs) / len(xs)\n",
    "for (let i = 0; i < n; i++) { total += values[i]; }",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 2;",
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n",
    "import numpy as np\nx = np.arange(10)\nprint(x.reshape(2, 5))",
    'if err != nil {\n    return fmt.Errorf("read config: %w", err)\n}',
    '<div class="card"><h2>{{ title }}</h2><p>{{ body }}</p></div>',
    "npm install && npm run build && npm test",
    'fn main() { println!("{}", (1..=10).sum::<i32>()); }',
    '{"id": 42, "items": [1, 2, 3], "ok": true}',
)

DegenerateKind = Literal[
    "laughter", "repeated_word", "emoji", "numbers", "code", "lorem", "business", "mixed"
]
DEGENERATE_KINDS: tuple[DegenerateKind, ...] = get_args(DegenerateKind)


def _spaced(rng: random.Random, words: list[str]) -> str:
    out = []
    for word in words:
        out.append(word)
        out.append(rng.choice((" ", " ", " ", "  ", "\n", "\t", " \n ")))
    return "".join(out).strip() or "ha"


def _cased(rng: random.Random, text: str) -> str:
    mode = rng.randrange(4)
    if mode == 0:
        return text.upper()
    if mode == 1:
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)
    if mode == 2:
        return text.title()
    return text


def degenerate_text(rng: random.Random, kind: DegenerateKind | None = None) -> str:
    """One degenerate but benign text of ``kind`` (drawn at random when None)."""
    kind = kind or rng.choice(DEGENERATE_KINDS)
    length = rng.choice((1, 2, 3, 4, 5, 8, 13, 30, 80, 200, 400))
    if kind == "laughter":
        unit = rng.choice(_LAUGHTER)
        words = [unit if rng.random() < 0.8 else rng.choice(_LAUGHTER) for _ in range(length)]
        return _cased(rng, _spaced(rng, words))
    if kind == "repeated_word":
        word = rng.choice(_FILLER + _LAUGHTER)
        return _cased(rng, _spaced(rng, [word] * length))
    if kind == "emoji":
        sep = rng.choice(("", " ", ""))
        return sep.join(rng.choice(_EMOJI) for _ in range(length))
    if kind == "numbers":
        parts = [
            rng.choice((str(rng.randrange(10 ** rng.randrange(1, 10))), f"{rng.random():.3f}",
                        f"{rng.randrange(1, 13)}/{rng.randrange(1, 29)}", f"+{rng.randrange(99)}%"))
            for _ in range(length)
        ]  # fmt: skip
        return _spaced(rng, parts)
    if kind == "code":
        return "\n".join(rng.choice(_CODE) for _ in range(max(1, length // 20)))
    if kind == "lorem":
        return _cased(rng, " ".join(rng.choice(_LOREM) for _ in range(length * 2)))
    if kind == "business":
        return " ".join(rng.choice(_BUSINESS) for _ in range(max(1, length // 4)))
    # mixed: a little of each, in odd case and spacing
    pieces = [degenerate_text(rng, k) for k in rng.sample(DEGENERATE_KINDS[:-1], 3)]
    return _cased(rng, _spaced(rng, pieces))


Obfuscation = Literal[
    "base64",
    "leetspeak",
    "homoglyph",
    "zero_width",
    "spaced",
    "combining",
    "small_caps",
    "upside_down",
    "reversed",
    "separated",
    "regional",
    "accents",
    "json",
    "unspaced",
]
OBFUSCATIONS: tuple[Obfuscation, ...] = get_args(Obfuscation)

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
# Latin letters and the Cyrillic or Greek letters that look like them.
_LOOKALIKE = {
    "a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і", "y": "у",
    "I": "Ι", "A": "А", "E": "Е", "O": "О", "P": "Р", "T": "Т", "H": "Н", "K": "К",
}  # fmt: skip


def _homoglyph(rng: random.Random, text: str) -> str:
    return "".join(_LOOKALIKE[c] if c in _LOOKALIKE and rng.random() < 0.6 else c for c in text)


def _zero_width(rng: random.Random, text: str) -> str:
    marks = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
    return "".join(
        c + (rng.choice(marks) if c.isalpha() and rng.random() < 0.5 else "") for c in text
    )


def _spaced_letters(rng: random.Random, text: str) -> str:
    return "  ".join(" ".join(word) for word in text.split())


def _combining(rng: random.Random, text: str) -> str:
    """Struck through (U+0336 on every letter) or "zalgo" (one to three random marks)."""
    if rng.random() < 0.5:
        return "".join(c + "\u0336" if c.isalpha() else c for c in text)
    return "".join(
        c + "".join(chr(rng.randrange(0x300, 0x370)) for _ in range(rng.randint(1, 3)))
        if c.isalpha()
        else c
        for c in text
    )


_ACCENTED = str.maketrans("aeiouyAEIOUY", "áéíóúýÁÉÍÓÚÝ")
_SMALL_CAPS = str.maketrans("abcdefghijklmnopqrstuvwyz", "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘǫʀꜱᴛᴜᴠᴡʏᴢ")
_FLIP = str.maketrans("abcdefghijklmnopqrstuvwxyz?!.", "ɐqɔpǝɟƃɥᴉɾʞlɯuodbɹsʇnʌʍxʎz¿¡˙")


def _separated(rng: random.Random, text: str) -> str:
    mark = rng.choice(".-*_")
    return " ".join(mark.join(word) for word in text.split())


def _regional(rng: random.Random, text: str) -> str:
    # A zero-width non-joiner between letters keeps two of them from rendering as a flag.
    return " ".join(
        "\u200c".join(chr(0x1F1E6 + ord(c) - 97) if "a" <= c <= "z" else c for c in word)
        for word in text.lower().split()
    )


_OBFUSCATORS: dict[Obfuscation, Callable[[random.Random, str], str]] = {
    "base64": lambda rng, t: base64.b64encode(t.encode("utf-8")).decode("ascii"),
    "leetspeak": lambda rng, t: t.translate(_LEET),
    "homoglyph": _homoglyph,
    "zero_width": _zero_width,
    "spaced": _spaced_letters,
    "combining": _combining,
    "small_caps": lambda rng, t: t.lower().translate(_SMALL_CAPS),
    "upside_down": lambda rng, t: t.lower().translate(_FLIP)[::-1],
    "reversed": lambda rng, t: t[::-1],
    "separated": _separated,
    "regional": _regional,
    "accents": lambda rng, t: t.translate(_ACCENTED),
    "json": lambda rng, t: json.dumps({"task": t, "format": rng.choice(["steps", "list"])}),
    "unspaced": lambda rng, t: "".join(t.split()),
}


def obfuscate(rng: random.Random, text: str, how: Obfuscation) -> str:
    """A copy of ``text`` hidden the way ``how`` names."""
    return _OBFUSCATORS[how](rng, text)

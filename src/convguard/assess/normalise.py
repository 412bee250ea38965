"""Normalisation: the text a classifier sees, and the other views it must also see.

Obfuscation must not hide a request (B1). :func:`normalise` returns

- ``text``: Unicode NFKC, zero-width and soft-hyphen characters removed, Cyrillic/Greek look-alike
  letters folded to Latin inside words that mix scripts (or in mostly-Latin text), small capitals
  and regional-indicator letters folded to Latin, strike-through and underline marks removed,
  every combining mark when they are stacked on the letters ("zalgo"), and letters joined by
  dots, dashes, stars or underscores joined again when most words are written so ("b.o.m.b" →
  "bomb"; the marks read as censored swearing to every model). Case, digits and punctuation are
  otherwise kept, so ordinary text ("B2B", "mp3", "404", "U.S.") reads as written;
- ``views``: extra texts to assess as well — letters spaced out joined again ("b o m b" →
  "bomb"), words run together split apart ("howdoimake" → "how do i make"), a leetspeak-folded
  view ("h4ck" → "hack"), upside-down text read upright, text written back to front read
  forwards, text with an accent on most letters read without them, the keys and strings of a
  JSON object or array, and the decoded text of base64, hex, URL-encoded and rot13 payloads
  (each normalised again, one level);
- ``obfuscations``: which tricks were found, in a fixed order (``zero_width``, ``homoglyph``,
  ``combining``, ``accents``, ``spaced``, ``unspaced``, ``leetspeak``, ``upside_down``,
  ``reversed``, ``json``, ``base64``, ``hex``, ``url``, ``rot13``). :data:`STRONG_OBFUSCATIONS`
  are the ones that are evidence of a jailbreak attempt by themselves. Invisible characters are
  always removed from ``text`` but count as ``zero_width`` only where they hide something
  (inside a Latin word, or a direction override in left-to-right text): a byte-order mark, an
  emoji's joiner, Persian's zero-width non-joiner and hyphenation hints are everyday text.

Decoded payloads count only when they read as text (mostly letters and spaces, several words), so
pasted tokens, hashes and JSON web tokens are not mistaken for hidden requests.

Pure and fast: ordinary short ASCII text takes a few microseconds (regex scans only).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import gzip
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from urllib.parse import unquote

__all__ = ["STRONG_OBFUSCATIONS", "Normalised", "normalise", "well_formed"]

#: Obfuscations that raise ``jailbreak`` on their own (legitimate chat rarely hides text this way).
STRONG_OBFUSCATIONS: frozenset[str] = frozenset(
    {"zero_width", "homoglyph", "base64", "hex", "rot13"}
)
_ORDER = (
    "zero_width",
    "homoglyph",
    "combining",
    "accents",
    "spaced",
    "unspaced",
    "leetspeak",
    "upside_down",
    "reversed",
    "json",
    "base64",
    "hex",
    "url",
    "rot13",
)


@dataclass(frozen=True)
class Normalised:
    text: str
    views: tuple[str, ...] = ()
    obfuscations: tuple[str, ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        """The normalised text followed by every extra view (what a classifier should score)."""
        return (self.text, *self.views)

    @property
    def strongly_obfuscated(self) -> bool:
        return any(o in STRONG_OBFUSCATIONS for o in self.obfuscations)


_INVISIBLE = "\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
_ZERO_WIDTH = re.compile(f"[{_INVISIBLE}]")
# A Latin word with invisible characters inside it (a look-alike letter counts as Latin).
_WORD_LETTERS = "[A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]"
_SPLIT_WORD = re.compile(f"{_WORD_LETTERS}+(?:[{_INVISIBLE}]+{_WORD_LETTERS}+)+")
_OVERRIDE = re.compile("[\u202a-\u202e]")
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")

# Look-alikes that render as Latin letters (Cyrillic and Greek, lower and upper case).
_HOMOGLYPHS = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "һ": "h", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ӏ": "l",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
        "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
        "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
        "υ": "u", "χ": "x", "ϲ": "c",
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
        "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    }
)  # fmt: skip
_CONFUSABLE = frozenset(chr(k) for k in _HOMOGLYPHS)
_WORDS = re.compile(r"\w+")
_LATIN = re.compile(r"[A-Za-z]")

# Latin letters in another dress, folded as NFKC folds mathematical letters: small capitals
# ("ʜᴏᴡ") and regional indicators (the letters of flag emoji, "🇭🇴🇼").
_DRESSED = str.maketrans(
    {
        **dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘǫʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnopqrstuvwyz", strict=True)),
        **{chr(0x1F1E6 + i): chr(0x41 + i) for i in range(26)},
    }
)
_DRESSED_HINT = re.compile("[ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘǫʀꜱᴛᴜᴠᴡʏᴢ\U0001f1e6-\U0001f1ff]")
# Marks drawn over or under a letter (strike-through, underline, enclosing circles): never part
# of a word's spelling.
_OVERLAY = re.compile("[\u0332-\u0338\u20d0-\u20f0]")
# Combining marks of the Latin blocks; "zalgo" text stacks them on every letter.
_MARK_CHARS = "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\ufe20-\ufe2f]"
_MARKS = re.compile(_MARK_CHARS)
_MARKED_LATIN = re.compile("[A-Za-z]" + _MARK_CHARS)
# Upside-down text: letters turned over (the ones with no upright twin are the hint), read back
# to front.
_TURNED = "ɐǝɥɯɹʇʎʍɔɟƃᴉʞɾʌ"
_TURNED_HINT = re.compile(f"[{_TURNED}]")
_UPRIGHT = str.maketrans(
    {
        **dict(zip(_TURNED, "aehmrtywcfgikjv", strict=True)),
        **dict(zip("qpdbnu¿¡˙", "bdpqun?!.", strict=True)),
    }
)
# Reversed English has these, forwards English almost never does.
_REVERSED_PLAIN = re.compile(
    r"\b(?:eht|dna|ot|fo|si|era|uoy|ti|ni|rof|tahw|woh|em|ym|taht|ro|htiw|yb|morf|siht|ruoy"
    r"|tuoba|otni|rieht|nac|dluow|lliw|nehw|erehw|yhw|tuohtiw|emos|eno)\b",
    re.I,
)
# Letters joined by dots, dashes, stars or underscores, one at a time ("b.o.m.b", "b-o-m-b").
_JOINED = re.compile(r"(?<![A-Za-z0-9])[A-Za-z](?:[-.*_~+|]{1,3}[A-Za-z](?![A-Za-z0-9]))+")
_JOIN_MARKS = re.compile(r"[-.*_~+|]")

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
# A token with a leet character between letters ("h4ck", "b0mb", "p@ssw0rd"), or leading one
# ("@ss", "$ex"); digits at a token's end ("mp3", "rot13", "covid19") are ordinary text.
_LEET_TOKEN = re.compile(r"\b[A-Za-z]*(?:[A-Za-z][013457@$]+[A-Za-z]|[@$][A-Za-z]{2})[\w@$]*")
# A token that starts with leet digits and holds at least two of them ("573p", "5yn7h351z1ng"),
# unlike ordinals and sizes ("1st", "4th", "3d", "5k").
_LEET_LEADING = re.compile(r"\b[013457][013457A-Za-z]*[A-Za-z][\w]*")
_LEET_HINT = re.compile(r"[A-Za-z][013457@$]|[013457][A-Za-z]|[@$][A-Za-z]")

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:(?:0x|\\x)?[0-9A-Fa-f]{2}[\s:,]?){8,}")
_URL = re.compile(r"(?:[^\s%]*%[0-9A-Fa-f]{2}){3,}[^\s%]*")
_ROT13_HINT = re.compile(r"\brot-?13\b|\bcaesar\b", re.I)
# Plain English almost always has one of these; rot13 text almost never does.
_PLAIN = re.compile(r"\b(?:the|and|to|of|is|are|you|i|it|in|for|what|how|me|my)\b", re.I)
_DIGIT = re.compile(r"\d")

_COMMON = frozenset(
    [
        "the",
        "be",
        "to",
        "of",
        "and",
        "a",
        "in",
        "that",
        "have",
        "i",
        "it",
        "for",
        "not",
        "on",
        "with",
        "he",
        "as",
        "you",
        "do",
        "at",
        "this",
        "but",
        "his",
        "by",
        "from",
        "they",
        "we",
        "say",
        "her",
        "she",
        "or",
        "an",
        "will",
        "my",
        "one",
        "all",
        "would",
        "there",
        "their",
        "what",
        "so",
        "up",
        "out",
        "if",
        "about",
        "who",
        "get",
        "which",
        "go",
        "me",
        "when",
        "make",
        "can",
        "like",
        "time",
        "no",
        "just",
        "him",
        "know",
        "take",
        "people",
        "into",
        "year",
        "your",
        "good",
        "some",
        "could",
        "them",
        "see",
        "other",
        "than",
        "then",
        "now",
        "look",
        "only",
        "come",
        "its",
        "over",
        "think",
        "also",
        "back",
        "after",
        "use",
        "two",
        "how",
        "our",
        "work",
        "first",
        "well",
        "way",
        "even",
        "new",
        "want",
        "because",
        "any",
        "these",
        "give",
        "day",
        "most",
        "us",
        "is",
        "are",
        "was",
        "were",
        "has",
        "had",
        "been",
        "why",
        "where",
        "tell",
        "write",
        "explain",
        "help",
        "please",
        "need",
        "should",
    ]
)


def _texty(decoded: str) -> bool:
    """Whether decoded bytes read as natural-language text, not binary, JSON or an id."""
    if len(decoded) < 8 or not decoded.isprintable():
        return False
    letters = sum(c.isalpha() or c == " " for c in decoded)
    return letters / len(decoded) >= 0.8 and len(decoded.split()) >= 2


def _decode_base64(span: str) -> str | None:
    if span.isalpha() or span.isdigit():
        return None  # a long word or a number, not a payload
    padded = span + "=" * (-len(span) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if _texty(text) else None


def _decode_hex(span: str) -> str | None:
    digits = re.sub(r"0x|\\x|[\s:,]", "", span)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        text = bytes.fromhex(digits).decode("utf-8")
    except ValueError:
        return None
    return text if _texty(text) else None


def _common_ratio(text: str) -> float:
    words = [w.lower() for w in _WORDS.findall(text) if w.isalpha()]
    if not words:
        return 0.0
    return sum(w in _COMMON for w in words) / len(words)


def _common_words(text: str) -> int:
    """How many of the words of ``text`` are common English words."""
    return sum(w.lower() in _COMMON for w in _WORDS.findall(text))


#: Latin letters of the phonetic alphabet that read as a plain letter: folded with the look-alikes,
#: but never evidence of hiding on their own (a transcription such as /ɡoʊ/ uses them).
_IPA_LETTERS = str.maketrans({"ɡ": "g"})


def _fold_homoglyphs(text: str) -> str:
    if not any(c in _CONFUSABLE for c in text):
        return text
    mostly_latin = len(_LATIN.findall(text)) * 2 >= sum(c.isalpha() for c in text)

    def fold(match: re.Match[str]) -> str:
        word = match.group()
        if any(c in _CONFUSABLE for c in word) and (mostly_latin or _LATIN.search(word)):
            return word.translate(_HOMOGLYPHS)
        return word

    return _WORDS.sub(fold, text)


def _hides_text(text: str) -> bool:
    """Whether the invisible characters in ``text`` hide something: one inside a Latin word
    ("b\u200bomb"), soft hyphens that split off single letters ("b\u00ado\u00admb"; hyphenation
    never does), or a direction override in text with no right-to-left letters. Their everyday
    uses are not: a byte-order mark, the joiner inside an emoji sequence, Persian's zero-width
    non-joiner, direction marks beside Hebrew or Arabic, hyphenation hints."""
    if _OVERRIDE.search(text) and not _RTL.search(text):
        return True
    for word in _SPLIT_WORD.findall(text):
        pieces = word.split("\u00ad")
        if any(_ZERO_WIDTH.search(p) for p in pieces) or any(len(p) == 1 for p in pieces):
            return True
    return False


def _unicode_fold(text: str, found: set[str]) -> str:
    text = unicodedata.normalize("NFKC", text)
    stripped = _ZERO_WIDTH.sub("", text)
    if stripped != text:
        if _hides_text(text):
            found.add("zero_width")
        text = stripped
    if _DRESSED_HINT.search(text):
        text = text.translate(_DRESSED)
    if _OVERLAY.search(text) or _MARKS.search(text):
        text = _strip_marks(text, found)
    folded = _fold_homoglyphs(text)
    if folded != text and folded != text.translate(_IPA_LETTERS):
        found.add("homoglyph")
    return folded


def _strip_marks(text: str, found: set[str]) -> str:
    """Without strike-through and underline marks, and without every combining mark when they are
    stacked on the letters ("zalgo": at least one per Latin letter; Vietnamese, the most marked
    Latin script, has about one for every two)."""
    stripped = _OVERLAY.sub("", text)
    decomposed = unicodedata.normalize("NFD", stripped)
    letters = len(_LATIN.findall(decomposed))
    if letters >= 4 and len(_MARKS.findall(decomposed)) >= letters:
        stripped = _MARKS.sub("", decomposed)
    if stripped != text:
        found.add("combining")
        return unicodedata.normalize("NFC", stripped)
    return text


def _payloads(text: str, found: set[str]) -> list[str]:
    out: list[str] = []
    if len(text) >= 16:
        for match in _BASE64.finditer(text):
            decoded = _decode_base64(match.group())
            if decoded:
                found.add("base64")
                out.append(decoded)
        for match in _HEX.finditer(text) if _DIGIT.search(text) else ():
            decoded = _decode_hex(match.group())
            if decoded:
                found.add("hex")
                out.append(decoded)
    if "%" in text:
        for match in _URL.finditer(text):
            decoded = unquote(match.group().replace("+", " "))
            if decoded != match.group() and _texty(decoded) and len(decoded.split()) >= 3:
                found.add("url")
                out.append(decoded)
    hinted = ("rot" in text or "ROT" in text or "Rot" in text) and _ROT13_HINT.search(text)
    if hinted or (" " in text and len(text) < 2000 and not _PLAIN.search(text)):
        rotated = codecs.decode(text, "rot13")
        # Two common words at least: one alone is chance ("python vs julia" reads "if").
        if _common_words(rotated) >= 2 and _common_ratio(rotated) >= max(
            0.25, _common_ratio(text) + 0.15
        ):
            found.add("rot13")
            out.append(rotated)
    return out


def _leet_view(text: str) -> str | None:
    if not _LEET_HINT.search(text):
        return None
    changed = 0

    def fold(match: re.Match[str]) -> str:
        nonlocal changed
        token = match.group()
        if len(token) > 24:
            return token  # ids, hashes and tokens, not words
        changed += 1
        return token.translate(_LEET)

    def fold_leading(match: re.Match[str]) -> str:
        token = match.group()
        if sum(c in "013457" for c in token) < 2:
            return token
        return fold(match)

    tokens = [t for t in _WORDISH.findall(text) if len(t) <= 24]
    mixed = sum(
        1
        for t in tokens
        if _HAS_LETTER.search(t) and _HAS_LEET.search(t) and not _OTHER_DIGIT.search(t)
    )
    if len(tokens) >= 3 and mixed >= _LEET_DENSE * len(tokens):
        # Written in leetspeak throughout: fold every token, short numbers included ("47" → "at").
        return _WORDISH.sub(lambda m: _dense_fold(m.group()), text)
    view = _LEET_LEADING.sub(fold_leading, _LEET_TOKEN.sub(fold, text))
    return view if changed else None


_WORDISH = re.compile(r"[\w@$]+")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_HAS_LEET = re.compile(r"[013457@$]")
_OTHER_DIGIT = re.compile(r"[2689]")
#: Share of tokens mixing letters and leet digits above which a text is read as leetspeak
#: throughout.
_LEET_DENSE = 0.4


def _dense_fold(token: str) -> str:
    if len(token) > 24 or (token.isdigit() and len(token) > 3):
        return token
    return token.translate(_LEET)


_WORD_GAP = re.compile(r"\s{2,}|\s*[/|]\s*")
#: At least this many tokens, this share of them single characters, for a spaced-out reading.
_SPACED_TOKENS = 6
_SPACED_SHARE = 0.7


def _spaced_view(text: str) -> str | None:
    """``"h o w  d o  I"`` → ``"how do I"``: letters spaced out to slip past word features.

    Words are told apart by wider gaps (two spaces, a slash or a bar) when there are any.
    """
    tokens = text.split()
    if len(tokens) < _SPACED_TOKENS:
        return None
    if sum(len(t) == 1 for t in tokens) < _SPACED_SHARE * len(tokens):
        return None
    groups = [g for g in _WORD_GAP.split(text.strip()) if g.strip()]
    return " ".join("".join(g.split()) for g in groups)


def _joined_view(text: str) -> str | None:
    """``"b.o.m.b"`` / ``"b-o-m-b"`` → ``"bomb"``, when most words are written so (an acronym
    such as "U.S." or an "A-B test" in an ordinary sentence is not)."""
    if "." not in text and "-" not in text and "*" not in text and "_" not in text:
        return None
    joined = _JOINED.findall(text)
    words = text.split()
    if len(joined) < 3 or len(joined) * 2 < len(words):
        return None
    return _JOINED.sub(lambda m: _JOIN_MARKS.sub("", m.group()), text)


#: Runs of letters that are not words: split in text run together as a whole from this length,
#: in other text from the next. Text is run together with fewer than one space per
#: ``_TOGETHER_LETTERS`` characters (English has one per five or six).
_RUN_LETTERS = 10
_RUN_WORDS_LETTERS = 16
_TOGETHER_LETTERS = 15
_RUN = re.compile(f"[A-Za-z]{{{_RUN_LETTERS},}}")
_LONG_RUN = re.compile(f"[A-Za-z]{{{_RUN_WORDS_LETTERS},}}")
#: The longest word the split tries.
_LONGEST_WORD = 24
#: How many letters of a text's runs are split at most (the first ones; the split costs about
#: 2 ms per 1,000 letters, and a message may hold 100,000).
_SPLIT_LETTERS = 4000


@functools.cache
def _costs() -> dict[str, float]:
    """Each known word's cost, ``log(rank * log(words))`` (Zipf's law: a word's probability is
    about ``1 / (rank * log(words))``), from ``weights/words.txt.gz`` (``training/words.py``:
    the training split's most frequent words, most frequent first); read once, on first need."""
    packed = resources.files("convguard.assess") / "weights" / "words.txt.gz"
    words = gzip.decompress(packed.read_bytes()).decode("ascii").split()
    scale = math.log(max(len(words), 2))
    return {w: math.log((rank + 1) * scale) for rank, w in enumerate(words)}


def _split_run(run: str, costs: dict[str, float], *, cut: bool = False) -> list[str] | None:
    """The cheapest split of ``run`` (lower case) into known words, or None when there is none.
    With ``cut`` (``run`` is the start of a longer run, ending inside a word), of its longest
    start that splits, dropping at most a word's length at the end."""
    n = len(run)
    best = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(max(0, end - _LONGEST_WORD), end):
            cost = costs.get(run[start:end])
            if cost is not None and best[start] + cost < best[end]:
                best[end] = best[start] + cost
                back[end] = start
    if cut:
        n = next((e for e in range(n, max(0, n - _LONGEST_WORD), -1) if best[e] < math.inf), n)
    if best[n] == math.inf:
        return None
    words: list[str] = []
    while n:
        words.append(run[back[n] : n])
        n = back[n]
    return words[::-1]


def _unspaced_view(text: str) -> str | None:
    """``"howdoImakeapipebomb"`` → ``"how do i make a pipe bomb"``: words run together so that
    no model reads them.

    A run of letters that is not itself a known word (``training/words.py``) is split into the
    most common known words when the split reads as words: at least four, at most half of them
    of one or two letters, and the run at least :data:`_RUN_WORDS_LETTERS` long (most long words
    the list lacks, "electroencephalogram", "hydroxychloroquine", do not split into known words
    at all; some do, "dimethyl form am ide", and the view is read as well). In text that is run
    together as a whole (fewer than one space per :data:`_TOGETHER_LETTERS` characters), runs of
    :data:`_RUN_LETTERS` letters or more split into three words or more suffice. The view has
    every such run split, up to :data:`_SPLIT_LETTERS` letters in all (the rest of a longer run
    is kept as it is); None when none is."""
    together = len(text) >= _TOGETHER_LETTERS and text.count(" ") * _TOGETHER_LETTERS < len(text)
    runs = _RUN if together else _LONG_RUN
    shortest = _RUN_LETTERS if together else _RUN_WORDS_LETTERS
    # Splitting on white space is several times faster than the pattern's scan of long text.
    if max(map(len, text.split()), default=0) < shortest:
        return None
    least = 3 if together else 4
    changed = False
    budget = _SPLIT_LETTERS

    def split(match: re.Match[str]) -> str:
        nonlocal changed, budget
        if budget <= 0:
            return match.group()
        whole = match.group()
        run = whole[:budget].lower()
        budget -= len(run)
        costs = _costs()  # read on the first run of letters, not for every long token
        if run in costs:
            return whole
        words = _split_run(run, costs, cut=len(run) < len(whole))
        if words is None or len(words) < least or sum(len(w) <= 2 for w in words) * 2 > len(words):
            return whole
        changed = True
        done = sum(map(len, words))
        return " ".join(words) + (" " + whole[done:] if done < len(whole) else "")

    view = runs.sub(split, text)
    return view if changed else None


def _accent_view(text: str) -> str | None:
    """``"hów dó Í máké"`` → ``"how do I make"``: an accent on most letters (at least one for
    every three Latin letters; French has about one in twenty), read without them. Stacked marks
    ("zalgo") are already removed from the text itself."""
    if text.isascii():
        return None
    decomposed = unicodedata.normalize("NFD", text)
    marked = len(_MARKED_LATIN.findall(decomposed))  # Greek or Cyrillic marks are not counted
    if marked < 4 or marked * 3 < len(_LATIN.findall(decomposed)):
        return None
    return unicodedata.normalize("NFC", _MARKS.sub("", decomposed))


def _json_view(text: str) -> str | None:
    """The keys and string values of a text that is a JSON object or array, one a line, when
    they read as words (a request wrapped in ``{"task": "..."}`` reads differently)."""
    stripped = text.strip()
    if len(stripped) < 8 or stripped[0] not in "{[" or len(stripped) > _JSON_CHARS:
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None
    strings: list[str] = []
    pending = [data]
    while pending and len(strings) < _JSON_STRINGS:
        item = pending.pop()
        if isinstance(item, str):
            strings.append(item)
        elif isinstance(item, dict):
            for key, value in reversed(list(item.items())):
                pending += [value, key]
        elif isinstance(item, list):
            pending += reversed(item)
    joined = "\n".join(s for s in strings if s.strip())
    return joined if len(joined.split()) >= 4 else None


_JSON_CHARS = 20_000
_JSON_STRINGS = 200


def _upside_down_view(text: str) -> str | None:
    """``"¿ǝɯoɥ ʇɐ qɯoq"`` → ``"bomb at home?"``: turned letters, read upright."""
    if len(set(_TURNED_HINT.findall(text))) < 3:
        return None
    return text[::-1].translate(_UPRIGHT)


def _reversed_view(text: str) -> str | None:
    """Text written back to front, when it reads as English only that way round."""
    if len(text) > 2000 or not _REVERSED_PLAIN.search(text):
        return None
    backwards = text[::-1]
    if _common_words(backwards) >= 2 and _common_ratio(backwards) >= max(
        0.2, _common_ratio(text) + 0.15
    ):
        return backwards
    return None


def well_formed(text: str) -> str:
    """``text`` as valid Unicode: surrogate code points that form a pair become the character
    they encode, a lone one becomes U+FFFD. JSON's ``\\ud800`` escapes decode to such strings,
    and neither UTF-8 nor a tokenizer accepts them."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def normalise(text: str, *, _depth: int = 0) -> Normalised:
    """Fold ``text`` and find the views hidden in it (see the module docstring)."""
    found: set[str] = set()
    if not text.isascii():
        text = _unicode_fold(well_formed(text), found)
    views: list[str] = []
    spaced = _spaced_view(text)
    if spaced is not None:
        views.append(spaced)
        found.add("spaced")
    joined = _joined_view(text) if spaced is None else None
    if joined is not None:
        # Letters joined by marks read as censored swearing ("f*ck") to every model, so the text
        # itself is the joined reading: "C*a*n y*o*u h*e*l*p" is no insult.
        text = joined
        found.add("spaced")
    unspaced = _unspaced_view(spaced or text)
    if unspaced is not None:
        views.append(unspaced)
        found.add("unspaced")
    turned = (
        ("upside_down", _upside_down_view(text)),
        ("reversed", _reversed_view(text)),
        ("accents", _accent_view(text)),
    )
    for name, view in turned:
        if view is not None:
            views.append(view)
            found.add(name)
    leet = _leet_view(spaced or text)
    if leet is not None:
        views.append(leet)
        if sum(a != b for a, b in zip(leet, text, strict=False)) >= 2:
            found.add("leetspeak")
    structured = _json_view(text)
    if structured is not None:
        found.add("json")
    for payload in ([structured] if structured else []) + _payloads(text, found):
        if _depth < 1:
            inner = normalise(payload, _depth=_depth + 1)
            views.extend(inner.texts)
            found.update(inner.obfuscations)
        else:
            views.append(payload)
    return Normalised(
        text=text,
        views=tuple(dict.fromkeys(v for v in views if v != text)),
        obfuscations=tuple(o for o in _ORDER if o in found),
    )

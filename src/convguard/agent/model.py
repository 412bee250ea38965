"""A learned signal over parsed commands: a small logistic regression on command tokens.

:func:`command_tokens` turns one parsed :class:`~convguard.agent.shell.Command` into a few
tokens — its program, each flag of that program, its first word (``defaults write``), the words
and path parts of its arguments (``/etc/passwd``, ``.ssh``, ``-perm``, ``lsass``), the image a
container engine runs (``i:alpine``: what runs, not a word of the command) — and
:class:`CommandModel` scores the set of tokens of one tool call against weights trained by
``training/agent_model.py`` on the train halves only, one model per platform (string and float
arrays, no pickle):

- ``posix`` (``assess/weights/agent_tokens.npz``): Atomic Red Team's sh/bash tests against NL2Bash
  and everyday Linux and macOS commands;
- ``windows`` (``assess/weights/agent_tokens_windows.npz``): its PowerShell and cmd tests against
  everyday Windows commands (``training/data/benign_windows_commands.txt``).

Invariants:
- the same :func:`command_tokens` is used to train and to score, so the two cannot drift;
- tokens that only name the benchmark's own scaffolding (``PathToAtomicsFolder``, technique ids,
  ``ExternalPayloads``, ``victim``) are dropped in training, so the model learns commands, not the
  data set's file layout, and such words carry no weight when scoring;
- scoring is a set of dictionary lookups and one exponential: no regex per token, no numpy per
  call; each platform's weights load once, on first use (a POSIX call never loads the Windows
  model), and are kept as plain JSON in the compiled cache (:mod:`convguard.agent.cache`, one
  entry per platform, keyed by a hash of the weights file), so that a process that finds them
  there (the Claude Code hook, one per tool call) does not import numpy at all;
- the model only ever asks: a deny stays with the explicit rules.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from convguard.agent import cache as compiled_cache
from convguard.agent.shell import Command, container_image

__all__ = [
    "CommandModel",
    "Platform",
    "call_tokens",
    "command_tokens",
    "default_model",
    "default_windows_model",
]

#: The shells a command model was trained on: POSIX shells, or PowerShell and cmd.
Platform = Literal["posix", "windows"]
_WEIGHTS: dict[Platform, str] = {
    "posix": "assess/weights/agent_tokens.npz",
    "windows": "assess/weights/agent_tokens_windows.npz",
}

_MAX_ARGS = 16
_MAX_LEN = 40
# Words that name the benchmark's scaffolding (its folders, technique ids, its ``victim``/``evil``
# file names) rather than anything a command does.
_SCAFFOLD = re.compile(
    r"atomic|externalpayloads|\bt1\d{3}|^#\{|\bart\b|art[-_.]|redcanary|victim|adversary|evil", re.I
)
# Script plumbing, not intent: tests, jumps, messages (``echo``, ``Write-Host``; what it writes
# where is the rules' business), pauses and discarded output read the same in any script, and
# the attack set is scripts while the benign set is one-liners, so these would only learn the style.
_PLUMBING = frozenset(
    {"[", "[[", "test", "true", "false", "exit", "cd", "sleep", "read", "return", "echo", "printf"}
    | {"write-host", "write-output", "write-verbose", "write-warning", "out-null", "out-host"}
    | {"start-sleep", "set-location", "clear-host", "cls", "pause", "rem"}
)
_SINKS = frozenset({"/dev/null", "nul", "$null", "&1", "&2", "/dev/stdout", "/dev/stderr"})
_WORD = re.compile(r"^[a-z0-9_.:+@%$-]{2,40}$")
_SPLIT = re.compile(r"[/\\]+")


def _parts(arg: str) -> Iterator[str]:
    for part in _SPLIT.split(arg):
        if 1 < len(part) <= _MAX_LEN and not part.isdigit():
            yield part


def command_tokens(cmd: Command, *, drop_scaffold: bool = False) -> Iterator[str]:
    """The tokens of one command, lower case.

    ``drop_scaffold`` (training) leaves out words naming the benchmark's scaffolding, so they never
    reach the vocabulary; at run time such a token simply has no weight, and skipping the check
    saves a regular expression per argument.
    """
    scaffold = _SCAFFOLD.search if drop_scaffold else _never
    prog = cmd.program.removesuffix(".exe")
    if not prog or prog in _PLUMBING or scaffold(prog):
        return
    yield f"p:{prog}"
    if cmd.upstream and cmd.upstream[-1]:
        yield f"u:{cmd.upstream[-1].removesuffix('.exe')}>{prog}"
    first = True
    image = container_image(cmd)
    for index, raw in enumerate(cmd.args[:_MAX_ARGS]):
        arg = raw.lower()
        if not arg or scaffold(arg):
            continue
        if index == image:  # what a container engine runs, not a word of the command
            if len(arg) <= _MAX_LEN:
                yield f"i:{arg}"
            continue
        if arg[0] == "-" or (arg[0] == "/" and len(arg) <= 16 and "/" not in arg[1:]):
            # ``-perm``, ``--force``, and Windows' ``/create``; ``/tmp`` also reads on as a path
            flag = arg.split("=", 1)[0].split(":", 1)[0]
            if len(flag) <= 24:
                yield f"f:{prog}:{flag}"
            if arg[0] == "-":
                continue
        if first:
            first = False
            if len(arg) <= 24:
                yield f"a:{prog}:{arg}"
        if "/" in arg or "\\" in arg:
            if len(arg) <= _MAX_LEN:
                yield f"w:{arg}"
            for part in _parts(arg):
                yield f"c:{part}"
        elif _WORD.match(arg):
            yield f"w:{arg}"
    for op, target in cmd.redirects:
        low = target.lower()
        if op in (">", ">>", "&>", "&>>", ">|") and low not in _SINKS and not scaffold(low):
            yield f"r:{low}" if len(low) <= _MAX_LEN else "r:long"
    for name, _value in cmd.assignments:
        yield f"v:{name.lower()}"


def _never(text: str) -> None:
    return None


def call_tokens(commands: Iterable[Command], *, drop_scaffold: bool = False) -> set[str]:
    """The set of tokens of every command of one tool call."""
    out: set[str] = set()
    for cmd in commands:
        out.update(command_tokens(cmd, drop_scaffold=drop_scaffold))
    return out


@dataclass(frozen=True)
class CommandModel:
    weights: dict[str, float]
    bias: float
    #: Scores at or above this are asked about (chosen on the train halves, see the script).
    threshold: float

    def score(self, tokens: Iterable[str]) -> float:
        z = self.bias + sum(self.weights.get(t, 0.0) for t in tokens)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def top(self, tokens: Iterable[str], n: int = 3) -> list[str]:
        """The tokens that pushed the score up most (for the reason shown to the user)."""
        weighted = sorted(((self.weights.get(t, 0.0), t) for t in tokens), reverse=True)
        return [t.split(":", 1)[1] for w, t in weighted[:n] if w > 0]

    @classmethod
    def load(cls, path: str | Path | None = None, *, platform: Platform = "posix") -> CommandModel:
        """The model in ``path``, or the shipped model of ``platform`` (which also names its
        entry in the compiled cache)."""
        if path is None:
            ref = resources.files("convguard").joinpath(_WEIGHTS[platform])
            with resources.as_file(ref) as real:
                return cls.load(real, platform=platform)
        data = Path(path).read_bytes()
        key = compiled_cache.fingerprint(_CACHE_FORMAT, compiled_cache.code("model.py"), data)
        name = _CACHE_NAME if platform == "posix" else f"{_CACHE_NAME}-{platform}"
        cached = compiled_cache.read(name, key)
        if cached is not None:
            try:
                return cls._of(cached)
            except (KeyError, TypeError, ValueError):
                pass  # an entry damaged under the right key: read the weights file again
        plain = _read_weights(data)
        model = cls._of(plain)
        compiled_cache.write(name, key, plain)
        return model

    @classmethod
    def _of(cls, plain: Any) -> CommandModel:
        vocab, weights = plain["vocab"], plain["weights"]
        if not all(isinstance(t, str) for t in vocab):
            raise TypeError("the vocabulary must be strings")
        return cls(
            weights=dict(zip(vocab, (float(w) for w in weights), strict=True)),
            bias=float(plain["bias"]),
            threshold=float(plain["threshold"]),
        )


_CACHE_NAME = "command-model"
_CACHE_FORMAT = "command-model-1"


def _read_weights(data: bytes) -> dict[str, Any]:
    """The weights file's arrays as plain data (numpy loads here only, on a cache miss)."""
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return {
            "vocab": [str(t) for t in arrays["vocab"]],
            "weights": [float(w) for w in arrays["weights"]],
            "bias": float(arrays["bias"]),
            "threshold": float(arrays["threshold"]),
        }


@cache
def default_model() -> CommandModel:
    """The shipped model of POSIX shell calls."""
    return CommandModel.load()


@cache
def default_windows_model() -> CommandModel:
    """The shipped model of PowerShell and cmd calls."""
    return CommandModel.load(platform="windows")

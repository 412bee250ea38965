"""A small POSIX-shell parser: a script in, every simple command it would run out.

The parser never executes anything. It tokenizes (quotes, ``$'…'``, escapes, comments, operators,
redirections, here-documents), splits pipelines and lists (``|``, ``&&``, ``||``, ``;``, ``&``,
newlines, ``( … )``), expands variables it has seen assigned (``X=rm; $X -rf /``) and aliases,
strips wrappers (``sudo``, ``env``, ``nohup``, ``timeout`` …), and unpacks what a shell would run
indirectly: ``bash -c``/``sh -c``/``su -c``/``eval``/``ssh host cmd``/``find -exec``/``xargs``
(``bash -c "$(curl URL)"`` read as ``curl URL | bash``; ``find -delete`` with no test read as
``rm -rf`` of its start points), ``docker run``'s command when it mounts
host folders or passes host devices in (read as the host sees it: a path under a mount named by
its host path, a device by the host's, a path of the container's own left out; the command of a
container that reaches nothing of the host is not read, nor taken for the engine's words), the
jobs a call schedules from known text (a crontab it installs, a cron table it writes,
``at``/``batch`` fed a script, ``systemd-run``'s command),
``$( … )`` and backticks, here-documents fed to a shell, and payloads decoded by a pipeline
(``echo … | base64 -d | sh``, ``xxd -r -p``, ``rev``, ``tr`` rot13) when their output is static,
and a forced ``git clean`` of a home or a system tree (read as ``rm -rf`` of it).

The working folder (:attr:`Command.cwd`) moves with the script: a ``cd DIR`` or ``pushd DIR``
(cmd's ``cd /d DIR`` and ``chdir``, PowerShell's ``Set-Location``, ``sl`` and ``Push-Location``)
run by this shell itself — a pipeline of its own, not in the background — sets it for the
commands after it, whether joined by ``&&``, ``||``, ``;``, cmd's ``&`` or a newline, lexically
(:func:`~convguard.agent.paths.changed_folder`: ``cd`` alone is ``~``; ``cd -``, ``popd``, a
variable, or a relative folder from an unknown one leave it not known); a subshell's ``cd`` ends
at its ``)``, and one in a nested text (``$( … )``, ``bash -c``, a function's body) stays there.
``git -C DIR …`` runs in DIR. ``cd X || cmd`` is read as if the ``cd`` had worked.
Each text is read with its shell's escape character (:data:`Dialect`): cmd's caret (``c^m^d /c
who^ami``, also in what ``cmd /c``/``%COMSPEC% /c`` runs), PowerShell's backtick (``i`e`x``);
``exec -a NAME`` is unwrapped to the program it runs, the name kept in
:attr:`Command.process_name`.

Invariants:
- every unpacked command is returned, with ``via`` naming how it was reached and ``decoded`` set
  when a decoding step produced it (decoding into a shell is itself a signal);
- code for another interpreter (``python -c``, ``perl -e``, a here-document fed to ``python``)
  is returned in :attr:`Parsed.code`, never run;
- work is bounded: nesting depth :data:`MAX_DEPTH`, at most :data:`MAX_COMMANDS` commands.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import dataclasses
import posixpath
import re
import shlex
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from convguard.agent.paths import WORKING_FOLDER, absolute_path, changed_folder, critical_target

__all__ = [
    "MAX_COMMANDS",
    "MAX_DEPTH",
    "Command",
    "Dialect",
    "Parsed",
    "container_image",
    "parse_script",
    "parse_written",
]

MAX_DEPTH = 5
MAX_COMMANDS = 400

#: The shell that reads a script: a POSIX shell (a backslash escapes the next character),
#: PowerShell (a backtick does), cmd.exe (a caret does, outside double quotes), or a Windows shell
#: not known which (``windows``: backslashes are path separators and no character escapes).
Dialect = Literal["posix", "windows", "powershell", "cmd"]
_ESCAPE: dict[Dialect, str] = {"posix": "\\", "windows": "", "powershell": "`", "cmd": "^"}
# What cmd expands ``%COMSPEC%`` to (the variable is set on every Windows system).
_COMSPEC = "C:\\Windows\\system32\\cmd.exe"

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish"})
_DEFAULT_IFS = " \t\n"
INTERPRETERS = {
    "python": "-c",
    "python2": "-c",
    "python3": "-c",
    "perl": "-e",
    "ruby": "-e",
    "node": "-e",
    "nodejs": "-e",
    "php": "-r",
    "osascript": "-e",
    "lua": "-e",
}
POWERSHELLS = frozenset({"powershell", "powershell.exe", "pwsh", "pwsh.exe"})
# Wrappers that run their arguments as a command; the value is the options that take a value.
WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-p", "-C", "-h", "-U", "-r", "-t", "-D"}),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "-C", "-S"}),
    "nohup": frozenset(),
    # Multi-call binaries: "busybox rm -rf /" runs rm, "busybox sh -c ..." a shell.
    "busybox": frozenset(),
    "toybox": frozenset(),
    "nice": frozenset({"-n"}),
    "ionice": frozenset({"-c", "-n", "-p"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "time": frozenset(),
    "command": frozenset(),
    "builtin": frozenset(),
    "exec": frozenset({"-a"}),
    "setsid": frozenset(),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "torsocks": frozenset(),
    "proxychains": frozenset({"-f"}),
    "proxychains4": frozenset({"-f"}),
    "watch": frozenset({"-n", "-d"}),
    "strace": frozenset({"-o", "-e", "-p"}),
    "chroot": frozenset(),
    "runuser": frozenset({"-u", "-g"}),
    "unbuffer": frozenset(),
}
_KEYWORDS = frozenset({"then", "do", "else", "elif", "if", "while", "until", "{", "!", "function"})
_ENDERS = frozenset({"fi", "done", "esac", "}", "in", ";;"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\+?)=")
_FORK_BOMB = re.compile(r"([\w:.]+)\s*\(\)\s*\{[^}]*?\1\s*\|\s*&?\s*\1\s*&")
_OPS = ("&&", "||", ";;", "|&", "&>>", "&>", ">>", ">&", ">|", "<<<", "<<-", "<<", "<&", "<>")
_META = frozenset(" \t\n;&|()<>")
# Runs of characters a word takes as they are (outside and inside double quotes): consumed in one
# step, so long scripts do not pay a Python loop iteration per character.
_PLAIN_RUN = re.compile(r"[^ \t\n;&|()<>'\"\\$`]+")
_PLAIN_RUN_WINDOWS = re.compile(r"[^ \t\n;&|()<>'\"$`]+")  # a backslash is a path separator
_PLAIN_RUN_CMD = re.compile(r"[^ \t\n;&|()<>'\"$`^]+")
_PLAIN_RUNS: dict[Dialect, re.Pattern[str]] = {
    "posix": _PLAIN_RUN,
    "windows": _PLAIN_RUN_WINDOWS,
    "powershell": _PLAIN_RUN_WINDOWS,
    "cmd": _PLAIN_RUN_CMD,
}
# PowerShell's escape sequences inside double quotes (`` `n ``); any other escaped character is
# itself (outside quotes always: ``i`e`x`` is ``iex``).
_POWERSHELL_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_QUOTED_RUN = re.compile(r'[^"\\$`]+')


@dataclass
class _Heredoc:
    strip_tabs: bool
    delimiter: str = ""
    body: str = ""


@dataclass(frozen=True)
class _Var:
    name: str
    default: str | None
    quoted: bool


@dataclass(frozen=True)
class _Sub:
    text: str
    quoted: bool


_Part = str | _Var | _Sub
_Word = tuple[_Part, ...]


@dataclass(frozen=True)
class _Op:
    op: str


@dataclass(frozen=True)
class _Redirect:
    op: str
    target: _Word | _Heredoc


_Token = _Word | _Op | _Redirect


@dataclass(frozen=True)
class Command:
    """One simple command as it would run: its words after expansion, and what feeds it."""

    argv: tuple[str, ...]
    #: ``(operator, target)``: ``(">", "/etc/passwd")``, ``(">&", "/dev/tcp/…")``, ``("<<", body)``.
    redirects: tuple[tuple[str, str], ...] = ()
    assignments: tuple[tuple[str, str], ...] = ()
    #: Text fed on standard input when known statically (here-document, here-string, a pipe).
    stdin: str | None = None
    #: The program before it in a pipeline, and the one after (``""`` when none).
    upstream: tuple[str, ...] = ()
    downstream: tuple[str, ...] = ()
    via: str = ""
    decoded: bool = False
    wrappers: tuple[str, ...] = ()
    #: The name a wrapper starts the program under, in place of its path (``exec -a NAME``):
    #: what ``ps`` shows for it; ``""`` when none is given.
    process_name: str = ""
    #: The working folder it runs in, when the caller knows it (:func:`parse_script`'s ``cwd``)
    #: or a ``cd`` before it says (absolute, or from the home: ``~/.ssh``): ``None`` when not
    #: known, and for what runs elsewhere (over ``ssh``, in a pod, as a scheduled job).
    cwd: str | None = None

    @cached_property
    def program(self) -> str:
        if not self.argv:
            return ""
        name = self.argv[0].rsplit("/", 1)[-1].rsplit("\\", 1)[-1].lower()
        return name

    @property
    def args(self) -> tuple[str, ...]:
        return self.argv[1:]

    def writes(self) -> tuple[str, ...]:
        """Files this command's redirections write to."""
        return tuple(t for op, t in self.redirects if op in (">", ">>", ">|", "&>", "&>>"))


@dataclass
class Parsed:
    """Everything a script would run, flattened, plus the code handed to other interpreters."""

    commands: list[Command] = field(default_factory=list)
    #: ``(language, source)`` for ``python -c``, ``perl -e``, ``powershell -enc`` …
    code: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Tokenizer:
    def __init__(self, text: str, *, dialect: Dialect) -> None:
        self.s = text
        self.i = 0
        self.escape = _ESCAPE[dialect]
        self.plain = _PLAIN_RUNS[dialect]
        self.pending: list[_Heredoc] = []

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        s = self.s
        n = len(s)
        while self.i < n:
            c = s[self.i]
            if c in " \t\r":
                self.i += 1
            elif c == "\\" and s.startswith("\\\n", self.i):
                self.i += 2
            elif c == self.escape != "\\" and s.startswith(("\n", "\r\n"), self.i + 1):
                self.i = s.index("\n", self.i) + 1  # PowerShell's or cmd's line continued
            elif c == "#":
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end
            elif c == "\n":
                self.i += 1
                self._read_heredocs()
                out.append(_Op(";"))
            elif c in ";&|()<>":
                out.append(self._operator(out))
            else:
                word = self._word()
                if self.i < n and s[self.i] in "<>" and all(isinstance(p, str) for p in word):
                    literal = "".join(p for p in word if isinstance(p, str))
                    if literal.isdigit():  # a file descriptor before a redirection: 2>, 2>&1
                        continue
                out.append(word)
        return out

    def _operator(self, out: list[_Token]) -> _Token:
        s = self.s
        for op in _OPS:
            if s.startswith(op, self.i):
                break
        else:
            op = s[self.i]
        self.i += len(op)
        if op in ("&&", "||", ";;", "|&", ";", "&", "|", "(", ")"):
            return _Op("|" if op == "|&" else op)
        self._skip_blanks()
        if op in ("<<", "<<-"):
            doc = _Heredoc(strip_tabs=op == "<<-")
            doc.delimiter = self._literal(self._word())
            self.pending.append(doc)
            return _Redirect("<<", doc)
        if op in (">&", "<&") and self.i < len(s) and (s[self.i].isdigit() or s[self.i] == "-"):
            self._word()
            return _Redirect("dup", ("",))
        return _Redirect(op, self._word())

    def _skip_blanks(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    @staticmethod
    def _literal(word: _Word) -> str:
        return "".join(p if isinstance(p, str) else "" for p in word)

    def _read_heredocs(self) -> None:
        while self.pending:
            doc = self.pending.pop(0)
            lines: list[str] = []
            while self.i < len(self.s):
                end = self.s.find("\n", self.i)
                line = self.s[self.i :] if end < 0 else self.s[self.i : end]
                self.i = len(self.s) if end < 0 else end + 1
                check = line.lstrip("\t") if doc.strip_tabs else line
                if check.strip() == doc.delimiter:
                    break
                lines.append(check)
            doc.body = "\n".join(lines)

    def _word(self) -> _Word:
        s, n = self.s, len(self.s)
        parts: list[_Part] = []
        buf: list[str] = []

        def flush() -> None:
            if buf:
                parts.append("".join(buf))
                buf.clear()

        while self.i < n and s[self.i] not in _META:
            c = s[self.i]
            if c == "'":
                end = s.find("'", self.i + 1)
                end = n if end < 0 else end
                buf.append(s[self.i + 1 : end])
                self.i = end + 1
            elif c == '"':
                self.i += 1
                while self.i < n and s[self.i] != '"':
                    d = s[self.i]
                    run = _QUOTED_RUN.match(s, self.i)
                    if run is not None:
                        buf.append(run.group())
                        self.i = run.end()
                    elif d == "`" == self.escape:  # PowerShell: `n is a newline, `" a quote
                        escaped = s[self.i + 1 : self.i + 2]
                        buf.append(_POWERSHELL_ESCAPES.get(escaped, escaped))
                        self.i += 2
                    elif d == "\\" and self.i + 1 < n and s[self.i + 1] in '$`"\\\n':
                        buf.append(s[self.i + 1])
                        self.i += 2
                    elif d in "$`":
                        flush()
                        parts.append(self._dollar(quoted=True))
                    else:
                        buf.append(d)
                        self.i += 1
                self.i += 1
            elif c == "\\" == self.escape:
                buf.append(s[self.i + 1 : self.i + 2])
                self.i += 2
            elif c == self.escape:  # PowerShell's backtick, cmd's caret: the next character as is
                escaped = s[self.i + 1 : self.i + 2]
                if escaped == "\r" and s.startswith("\n", self.i + 2):
                    escaped, self.i = "\n", self.i + 1
                if escaped not in ("", "\n"):  # else the text ends, or the line goes on
                    buf.append(escaped)
                self.i += 2
            elif c == "$" and s.startswith("$'", self.i):
                end = self.i + 2
                while end < n and s[end] != "'":
                    end += 2 if s[end] == "\\" else 1
                buf.append(_ansi_c(s[self.i + 2 : end]))
                self.i = end + 1
            elif c in "$`":
                flush()
                parts.append(self._dollar(quoted=False))
            else:
                run = self.plain.match(s, self.i)
                end = self.i + 1 if run is None else run.end()
                buf.append(s[self.i : end])
                self.i = end
        flush()
        return tuple(parts)

    def _dollar(self, *, quoted: bool) -> _Part:
        s, n = self.s, len(self.s)
        if s[self.i] == "`":
            end = self.i + 1
            while end < n and s[end] != "`":
                end += 2 if s[end] == "\\" else 1
            text = s[self.i + 1 : end]
            self.i = end + 1
            return _Sub(text, quoted)
        nxt = s[self.i + 1 : self.i + 2]
        if nxt == "(":
            end = _matching(s, self.i + 1)
            text = s[self.i + 2 : end]
            self.i = end + 1
            if text.startswith("(") and text.endswith(")"):
                return "$((" + text[1:-1] + "))"  # arithmetic: nothing runs
            return _Sub(text, quoted)
        if nxt == "{":
            end = s.find("}", self.i)
            end = n if end < 0 else end
            inner = s[self.i + 2 : end]
            self.i = end + 1
            name = _NAME.match(inner)
            if not name:
                return "${" + inner + "}"
            rest = inner[name.end() :]
            default = rest[2:] if rest.startswith((":-", ":=")) else None
            return _Var(name.group(), default, quoted)
        name = _NAME.match(s, self.i + 1)
        if name:
            self.i = name.end()
            return _Var(name.group(), None, quoted)
        if nxt and nxt in "@*123456789":  # a function's arguments: ``$1``, ``$@``
            self.i += 2
            return _Var(nxt, None, quoted and nxt != "@")  # "$@" is one word per argument
        if nxt and nxt in "?$#!-0":  # another special parameter: ``$?``, ``$$``
            self.i += 2
            return "$" + nxt
        # a ``$`` before anything else is itself (``^cron$``, ``"cost: $"``): the next character,
        # a newline or a closing quote, is not part of it
        self.i += 1
        return "$"


def _matching(s: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, skipping quoted text."""
    depth, i, n = 0, start, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c in "'\"":
            end = s.find(c, i + 1)
            i = n if end < 0 else end + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return n


def _ansi_c(text: str) -> str:
    try:
        # an escape Python does not know (``\8``) is kept as written, not warned about
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")
    except (UnicodeDecodeError, ValueError):
        return text


def _decode_b64(text: str) -> str | None:
    data = "".join(text.split())
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", "replace")


def _decode_hex(text: str) -> str | None:
    try:
        return bytes.fromhex("".join(text.split())).decode("utf-8", "replace")
    except ValueError:
        return None


def _tr_set(spec: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


def _output(cmd: Command, stdin: str | None) -> tuple[str | None, bool]:
    """What a command prints, when it is a pure text producer or transformer; and whether it
    decoded something."""
    prog, args = cmd.program, cmd.args
    flags = {a for a in args if a.startswith("-")}
    plain = [a for a in args if not a.startswith("-")]
    if prog == "echo":
        text = " ".join(a for a in args if a not in ("-n", "-e", "-ne", "-en", "-E"))
        return (_ansi_c(text) if flags & {"-e", "-ne", "-en"} else text), False
    if prog == "printf" and args:
        return _ansi_c(args[0].replace("%s", " ".join(args[1:]), 1)), False
    if prog == "cat" and not plain:
        return stdin, False
    if prog == "which" and plain:
        # ``P=$(which python3)``: the program found, so ``$P -c …`` reads as ``python3 -c …``
        return plain[0] + "\n", False
    if stdin is None:
        return None, False
    if prog in ("base64", "base32") and flags & {"-d", "--decode", "-D", "-di", "-id"}:
        return (_decode_b64(stdin) if prog == "base64" else None), True
    if prog == "b64decode" and "-r" in flags:  # BSD
        return _decode_b64(stdin), True
    if prog == "openssl" and "base64" in args and "-d" in args:
        return _decode_b64(stdin), True
    if prog == "xxd" and "-r" in flags:
        return _decode_hex(stdin), True
    if prog == "rev":
        return "\n".join(line[::-1] for line in stdin.split("\n")), True
    if prog == "tr" and len(plain) == 2:
        src, dst = _tr_set(plain[0]), _tr_set(plain[1])
        size = min(len(src), len(dst))
        table = str.maketrans(src[:size], dst[:size])
        return stdin.translate(table), True
    return None, False


class _Parser:
    def __init__(self, result: Parsed, *, dialect: Dialect, cwd: str | None = None) -> None:
        self.result = result
        #: The shell reading the text parsed now (cmd's for what ``cmd /c`` runs).
        self.dialect = dialect
        self.env: dict[str, str] = {}
        self.aliases: dict[str, str] = {}
        #: Shell functions defined so far: name → body (read again, with its arguments, where
        #: the function is called).
        self.functions: dict[str, str] = {}
        #: Files this script wrote with text the parser knows (``echo ... > run.sh``): read
        #: again where the script runs them (``bash run.sh``, ``./run.sh``, ``. run.sh``).
        self.files: dict[str, str] = {}
        #: While a container's command is read: how the host sees the paths it names.
        self.container: _Container | None = None
        #: The working folder of the commands read now (``None``: not known, or elsewhere).
        self.cwd = cwd

    def parse(
        self, text: str, *, depth: int, via: str, decoded: bool, dialect: Dialect | None = None
    ) -> str | None:
        """Parse ``text`` as ``dialect``'s shell reads it (by default the shell of the text
        around it); return the static output of its last pipeline (for ``$( … )``)."""
        if dialect is not None and dialect != self.dialect:
            outer, self.dialect = self.dialect, dialect
            try:
                return self.parse(text, depth=depth, via=via, decoded=decoded)
            finally:
                self.dialect = outer
        if depth > MAX_DEPTH:
            self.result.notes.append("nesting too deep to unpack")
            return None
        if "()" in text and _FORK_BOMB.search(text):  # the literal gate skips the costly search
            self.result.notes.append("fork bomb")
        if "{" in text:
            for match in _FUNCTION.finditer(text):
                self.functions[match.group(1) or match.group(2)] = match.group(3)
        tokens = _Tokenizer(text, dialect=self.dialect).tokens()
        last: str | None = None
        pipeline: list[tuple[list[_Word], list[_Redirect]]] = []
        words: list[_Word] = []
        redirects: list[_Redirect] = []
        tokens.append(_Op(";"))
        # A cd moves the folder of what follows in this text only: a subshell's ends with its
        # ")" (the folders of the groups open now), and what a nested text (a command
        # substitution, "bash -c", a function's body) moves stays there.
        entered, groups, closed = self.cwd, list[str | None](), 0
        try:
            for index, token in enumerate(tokens):
                if isinstance(token, _Op):
                    if (
                        token.op == "("
                        and len(words) == 1
                        and tokens[index + 1 : index + 2] == [_Op(")")]
                    ):
                        words = []  # "name()": a function's definition, not a call
                        continue
                    if token.op == ")" and groups:
                        closed += 1
                    if token.op == ")" and tokens[index + 1 : index + 2] == [_Op("|")]:
                        continue  # ( a; b ) | c: the group's output feeds c
                    if token.op == "|":
                        pipeline.append((words, redirects))
                        words, redirects = [], []
                        continue
                    if token.op in ("(", ")") and not words:
                        if token.op == "(":
                            groups.append(self.cwd)
                        elif not pipeline:
                            closed = self._close_groups(groups, closed)
                        continue
                    pipeline.append((words, redirects))
                    words, redirects = [], []
                    last = self._pipeline(
                        pipeline,
                        depth=depth,
                        via=via,
                        decoded=decoded,
                        # cmd's "&" runs one command after another; elsewhere it backgrounds
                        here=len(pipeline) == 1 and (token.op != "&" or self.dialect == "cmd"),
                    )
                    pipeline = []
                    closed = self._close_groups(groups, closed)
                elif isinstance(token, _Redirect):
                    redirects.append(token)
                else:
                    words.append(token)
        finally:
            self.cwd = entered
        return last

    def _close_groups(self, groups: list[str | None], closed: int) -> int:
        """Leave the ``closed`` innermost subshells of ``groups``: the folder each was opened in
        is the folder again; returns none left to close."""
        for _ in range(min(closed, len(groups))):
            self.cwd = groups.pop()
        return 0

    def _expand(self, word: _Word, depth: int, via: str = "") -> list[str]:
        """The fields ``word`` expands to; a ``$( … )`` in it is parsed (its commands reached
        through ``via``, then ``$(...)``) and replaced by its output when that is static."""
        fields: list[str] = [""]
        broken: set[int] = set()  # fields begun by splitting (dropped if nothing follows)
        for part in word:
            if isinstance(part, str):
                fields[-1] += part
                continue
            if isinstance(part, _Var):
                value = self.env.get(part.name, part.default)
                if value is None:
                    value = _DEFAULT_IFS if part.name == "IFS" else "$" + part.name
            else:
                how = f"{via} > $(...)" if via else "$(...)"
                out = self.parse(part.text, depth=depth + 1, via=how, decoded=False)
                value = out.rstrip("\n") if out is not None else "$(" + part.text + ")"
            if part.quoted:
                fields[-1] += value
                continue
            # Unquoted, the value is split at white space, which also ends the field before it
            # and starts one after it ("rm${IFS}-rf${IFS}/" is three words).
            pieces = value.split()
            if value[:1].isspace() and fields[-1]:
                fields.append("")
                broken.add(len(fields) - 1)
            if pieces:
                fields[-1] += pieces[0]
                fields.extend(pieces[1:])
            if value[-1:].isspace() and fields[-1]:
                fields.append("")
                broken.add(len(fields) - 1)
        fields = [f for i, f in enumerate(fields) if f or i not in broken]
        return fields if fields != [""] or word else []

    def _pipeline(
        self,
        stages: list[tuple[list[_Word], list[_Redirect]]],
        *,
        depth: int,
        via: str,
        decoded: bool,
        here: bool = False,
    ) -> str | None:
        """Read one pipeline's commands; return its static output. ``here``: a pipeline of one
        command that this shell runs itself (not in the background), whose ``cd`` moves the
        folder of the commands after it (:func:`~convguard.agent.paths.changed_folder`)."""
        built: list[Command] = []
        for words, redirects in stages:
            cmd = self._command(words, redirects, depth=depth, via=via, decoded=decoded)
            if cmd is not None:
                built.append(cmd)
        text: str | None = None
        was_decoded = False
        for index, cmd in enumerate(built):
            up = tuple(c.program for c in built[:index])
            down = tuple(c.program for c in built[index + 1 :])
            stdin = cmd.stdin if cmd.stdin is not None else (text if index else None)
            cmd = Command(
                cmd.argv,
                cmd.redirects,
                cmd.assignments,
                stdin,
                up,
                down,
                cmd.via,
                cmd.decoded,
                cmd.wrappers,
                cmd.process_name,
                cmd.cwd,
            )
            self._emit(cmd, depth=depth, decoded_input=was_decoded)
            text, step_decoded = _output(cmd, stdin)
            self._remember_writes(cmd, text, stdin, depth=depth)
            was_decoded = was_decoded or step_decoded
        if here and len(built) == 1 and built[0].program in _MOVES[self.dialect]:
            self.cwd = _folder_after(built[0], self.cwd, self.dialect)
        return text

    def _command(
        self,
        words: list[_Word],
        redirects: list[_Redirect],
        *,
        depth: int,
        via: str,
        decoded: bool,
    ) -> Command | None:
        assignments: list[tuple[str, str]] = []
        argv: list[str] = []
        for word in words:
            if not argv and word and isinstance(word[0], str):
                match = _ASSIGN.match(word[0])
                if match:
                    rest: _Word = (word[0][match.end() :], *word[1:])
                    value = " ".join(self._expand(rest, depth, via))
                    assignments.append((match.group(1), value))
                    continue
            argv.extend(self._expand(word, depth, via))
        if self.dialect == "cmd" and argv and argv[0].lower() == "%comspec%":
            argv[0] = _COMSPEC
        while argv and argv[0] in _KEYWORDS:
            argv.pop(0)
        if argv and argv[0] in _ENDERS:
            argv = []
        if argv and argv[0] in ("for", "case", "select"):
            return None
        if argv and argv[0] in self.aliases:
            argv = self.aliases[argv[0]].split() + argv[1:]
        if argv and argv[0] in ("export", "declare", "local", "readonly", "typeset"):
            for item in argv[1:]:
                name, eq, value = item.partition("=")
                if eq and _NAME.fullmatch(name):
                    assignments.append((name, value))
        if argv and argv[0] == "alias":
            for item in argv[1:]:
                name, eq, value = item.partition("=")
                if eq:
                    self.aliases[name] = value
        if not argv or argv[0] in ("export", "declare", "local", "readonly", "typeset"):
            self.env.update(assignments)
        reds: list[tuple[str, str]] = []
        stdin: str | None = None
        for red in redirects:
            if isinstance(red.target, _Heredoc):
                stdin = red.target.body
                reds.append(("<<", red.target.body))
            elif red.op == "<<<":
                stdin = " ".join(self._expand(red.target, depth, via)) + "\n"
                reds.append(("<<<", stdin))
            elif red.op != "dup":
                reds.append((red.op, " ".join(self._expand(red.target, depth, via))))
        if not argv and not reds and not assignments:
            return None
        argv, wrappers, process_name = _unwrap(argv)
        return Command(
            tuple(argv),
            tuple(reds),
            tuple(assignments),
            stdin,
            via=via,
            decoded=decoded,
            wrappers=wrappers,
            process_name=process_name,
            cwd=self.cwd,
        )

    def _remember_writes(
        self, cmd: Command, text: str | None, stdin: str | None, *, depth: int
    ) -> None:
        """Record the files ``cmd`` writes with known text (its output redirected, or ``tee``),
        and read the jobs of a cron table among them."""
        written: list[tuple[str, str]] = []
        if text is not None:
            for op, target in cmd.redirects:
                if op in (">", ">>", ">|", "&>") and target:
                    written.append((target, text))
                    if len(self.files) < _SCRIPTS:
                        key = _script_key(target)
                        earlier = self.files.get(key, "") if op == ">>" else ""
                        self.files[key] = (earlier + text)[:_SCRIPT_CHARS]
        if cmd.program == "tee" and stdin is not None:
            for target in (a for a in cmd.args if not a.startswith("-")):
                written.append((target, stdin))
                if len(self.files) < _SCRIPTS:
                    self.files[_script_key(target)] = stdin[:_SCRIPT_CHARS]
        for target, content in written:
            # what a container writes is the host's only under a mount (a host path, or none)
            where = self.container.host_words(target)[:1] if self.container else [target]
            for path in where:
                self._read_cron_table(path, content, via=cmd.via, depth=depth, decoded=cmd.decoded)

    def _read_cron_table(
        self, path: str, table: str, *, via: str, depth: int, decoded: bool
    ) -> None:
        """Read the jobs of ``table`` written at ``path``, when that is a table cron reads, as
        commands reached through ``cron``."""
        system = _cron_table(path if self.cwd is None else absolute_path(path, self.cwd))
        if system is None:
            return
        how = f"{via} > cron" if via else "cron"
        # the host's cron runs them: their paths are the host's, even when a container wrote them,
        # from a working folder of cron's
        saved, self.container, cwd, self.cwd = self.container, None, self.cwd, None
        try:
            for line in _cron_commands(table, user_field=system):
                self.parse(line, depth=depth + 1, via=how, decoded=decoded)
        finally:
            self.container, self.cwd = saved, cwd

    def _written_script(self, cmd: Command) -> tuple[str, str] | None:
        """The path and known text of a script this call wrote and ``cmd`` now runs, if any."""
        if not self.files or not cmd.argv:
            return None
        path = cmd.argv[0]
        if _script_key(path) not in self.files and (
            cmd.program in SHELLS or cmd.program in ("source", ".")
        ):
            path = next((a for a in cmd.args if not a.startswith("-")), "")
        script = self.files.get(_script_key(path))
        return None if script is None else (path, script)

    def _new_crontab(self, cmd: Command) -> str | None:
        """The crontab ``crontab`` installs, when its text is known: fed on standard input
        (``echo ... | crontab -``) or a file this call wrote (``crontab jobs.txt``). ``None`` when
        it lists, edits or removes one (``-l``, ``-e``, ``-r``) or the text is unknown."""
        files: list[str] = []
        args = cmd.args
        i = 0
        while i < len(args):
            if args[i] == "-u":  # another user's crontab: still installed from the same text
                i += 2
                continue
            if args[i].startswith("-") and args[i] != "-":
                return None
            files.append(args[i])
            i += 1
        if not files or files == ["-"]:
            return cmd.stdin
        return self.files.get(_script_key(files[0])) if len(files) == 1 else None

    def _at_job(self, cmd: Command) -> str | None:
        """The script ``at`` or ``batch`` schedules, when its text is known: fed on standard
        input (``echo CMD | at now + 1 hour``, a here-document) or a file this call wrote
        (``-f FILE``). ``None`` when it lists, removes or prints jobs (``-l``, ``-r``, ``-d``,
        ``-c``) or the text is unknown."""
        args = cmd.args
        script = cmd.stdin
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-f", "-q", "-t") and i + 1 < len(args):
                if a == "-f":
                    script = self.files.get(_script_key(args[i + 1]))
                i += 2
                continue
            if a.startswith("-") and set(a[1:]) & set("lrdcV"):
                return None
            i += 1
        return script

    def _emit(self, cmd: Command, *, depth: int, decoded_input: bool) -> None:
        if len(self.result.commands) >= MAX_COMMANDS:
            if "too many commands" not in self.result.notes:
                self.result.notes.append("too many commands")
            return
        prog, args = cmd.program, cmd.args
        run = _container_run(args) if prog in _CONTAINER_ENGINES else None
        git = _git_folders(args) if prog == "git" else None
        if git is not None and git.folder is not None:
            # "git -C DIR ..." runs in DIR: its paths are read there
            cmd = dataclasses.replace(cmd, cwd=changed_folder(cmd.cwd, git.folder))
        shown = cmd
        if run is not None and run.command:
            # the engine's own words: its command is the container's, read below as the host's
            # when the container reaches a folder or a device of the host, else nothing to it
            shown = dataclasses.replace(cmd, argv=(*cmd.argv[:1], *run.engine))
        if self.container is not None:
            shown = self.container.host_command(shown)
        self.result.commands.append(shown)
        nested: list[tuple[str, str]] = []
        written = self._written_script(cmd)
        if written is not None:
            path, text = written
            nested.append((text, f"runs {path}"))
        if prog in _RUNS_OPTION:  # beside, not instead of, what the program runs otherwise
            nested += [(line, f"{prog} option") for line in _option_commands(prog, args)]
        deletes = prog == "find" and "-delete" in args and "-maxdepth" not in args
        if deletes and not _find_tests(args):
            # Without a test, -delete removes every path under the start points, deepest first, as
            # rm -rf does ("find . -delete" empties the working folder); -maxdepth stops it short
            # of the folders' contents, which a folder with files in it needs. A start point with a
            # wildcard is the shell's ("find * -delete" is rm -rf *), but not a hidden file's
            # wildcard: the parser keeps no quotes, and a quoted '.*' is a file's name to find.
            starts = [a for a in _find_starts(args) if not _HIDDEN_GLOB.search(a)][:_XARGS_ITEMS]
            if starts:
                nested.append((" ".join(_quote(t) for t in ("rm", "-rf", *starts)), "find -delete"))
        if prog in SHELLS or prog in ("su", "eval"):
            script = _flag_value(args, "-c")
            if prog == "eval":
                script = " ".join(args)
            if script is not None:
                fetched = _substituted(script) if prog != "su" else None
                # ``bash -c "$(curl URL)"`` runs what curl prints: read as ``curl URL | bash``
                nested.append((f"{fetched} | {prog}" if fetched else script, f"{prog} -c"))
            elif cmd.stdin is not None and prog != "su":
                nested.append((cmd.stdin, f"stdin of {prog}"))
        elif prog in INTERPRETERS:
            source = _flag_value(args, INTERPRETERS[prog])
            if source is None and cmd.stdin is not None:
                source = cmd.stdin
            if source is not None and (fetched := _substituted(source)) is not None:
                nested.append((f"{fetched} | {prog}", f"{prog} {INTERPRETERS[prog]}"))
            elif source is not None:
                self.result.code.append((prog.rstrip("0123456789"), source))
                if not prog.startswith("python"):
                    nested += [(line, f"{prog} system()") for line in _shelled_strings(source)]
        elif prog in _AWKS:
            program = _skip_options(args, frozenset({"-F", "-v", "-f"}))
            if program:
                nested += [(line, f"{prog} system()") for line in _shelled_strings(program[0])]
        elif prog == "git":
            nested += [(line, "git -c") for line in _git_config_commands(args)]
            if git is not None and (cleaned := git.cleaned(self.cwd)):
                nested.append((" ".join(_quote(t) for t in ("rm", "-rf", *cleaned)), "git clean"))
        elif prog == "parallel" and ":::" in args:
            command = _skip_options(args[: args.index(":::")], frozenset({"-j", "-P", "-S"}))
            items = [a for a in args[args.index(":::") + 1 :] if a not in (":::", "::::")]
            nested += [(line, "parallel") for line in _each_item(command, items)]
        elif prog in POWERSHELLS:
            self._powershell(args)
        elif prog in ("cmd", "cmd.exe"):
            line = _cmd_line(args)
            if line:
                nested.append((line, "cmd /c"))
        elif prog in _STARTERS:
            started = _started_command(args)
            if started:
                nested.append((started, prog))
        elif prog == "ssh":
            remote = _ssh_command(args)
            if remote:
                nested.append((remote, "ssh"))
        elif prog == "find" and ("-exec" in args or "-execdir" in args or "-ok" in args):
            for i, a in enumerate(args):
                if a in ("-exec", "-execdir", "-ok"):
                    tail = []
                    for b in args[i + 1 :]:
                        if b in (";", "+", "\\;"):
                            break
                        tail.append(b)
                    nested.append((" ".join(_quote(t) for t in tail), "find -exec"))
                    # Without a test (-name, -type, ...), find hands on every path under its
                    # start points, the start points first: "find / -exec rm -rf {} +" is rm -rf /.
                    if "{}" in tail and not _find_tests(args):
                        runs = _each_item(tail, _find_starts(args))
                        nested += [(line, "find -exec") for line in runs]
        elif prog in self.functions and cmd.argv[0] == prog:
            # A call of a shell function: its body, with $1, $2, ... and $@ set to the arguments.
            saved = dict(self.env)
            self.env.update({str(i): a for i, a in enumerate(args[:9], start=1)})
            self.env["@"] = self.env["*"] = " ".join(args)
            body = self.functions.pop(prog)  # a function calling itself is read once
            try:
                self.parse(body, depth=depth + 1, via=f"function {prog}", decoded=cmd.decoded)
            finally:
                self.functions[prog] = body
                self.env = saved
        elif prog == "xargs":
            rest = _skip_options(args, frozenset({"-I", "-n", "-P", "-d", "-L", "-s", "-E"}))
            if rest:
                for argv in _xargs_runs(rest, _flag_value(args, "-I"), cmd.stdin):
                    nested.append((" ".join(_quote(t) for t in argv), "xargs"))
        elif run is not None:
            pass  # its command is read last, with the container's paths as the host sees them
        elif prog == "crontab":
            nested += [(line, "crontab") for line in _cron_commands(self._new_crontab(cmd))]
        elif prog in ("at", "batch"):
            job = self._at_job(cmd)
            if job:
                nested.append((job, prog))
        elif prog == "systemd-run" and (unit := _systemd_run(args)) is not None:
            nested.append(unit)
        elif prog in ("kubectl", "docker") and ("exec" in args or "run" in args) and "--" in args:
            nested.append((" ".join(_quote(t) for t in args[args.index("--") + 1 :]), prog))
        # What cmd runs is read as cmd reads it; what another program runs, with no escape
        # character of PowerShell or cmd.
        windows: Dialect = "windows" if self.dialect in ("powershell", "cmd") else self.dialect
        cwd = self.cwd
        for script, how in nested:
            self.cwd = None if how in _ELSEWHERE else cwd
            try:
                self.parse(
                    script,
                    depth=depth + 1,
                    via=how if not cmd.via else f"{cmd.via} > {how}",
                    decoded=cmd.decoded or (decoded_input and how.startswith("stdin")),
                    dialect="cmd" if how == "cmd /c" else windows,
                )
            finally:
                self.cwd = cwd
        if run is not None and run.command and run.view.reaches_host:
            how = f"{prog} run"
            outside, self.container = self.container, run.view
            try:
                self.parse(
                    " ".join(_quote(w) for w in run.command),
                    depth=depth + 1,
                    via=how if not cmd.via else f"{cmd.via} > {how}",
                    decoded=cmd.decoded,
                )
            finally:
                self.container = outside

    def _powershell(self, args: tuple[str, ...]) -> None:
        lowered = [a.lower() for a in args]
        for i, a in enumerate(lowered):
            if (
                a.startswith("-e")
                and "encodedcommand".startswith(a.lstrip("-"))
                and i + 1 < len(args)
            ):
                try:
                    raw = base64.b64decode(args[i + 1] + "=" * (-len(args[i + 1]) % 4))
                    self.result.code.append(("powershell", raw.decode("utf-16-le", "replace")))
                    self.result.notes.append("encoded powershell command")
                except (binascii.Error, ValueError):
                    pass
                return
        rest = [a for a in args if not a.startswith("-")]
        if rest:
            self.result.code.append(("powershell", " ".join(rest)))


def _quote(word: str) -> str:
    if word and all(c.isalnum() or c in "-_./=:@,%+{}~" for c in word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def _flag_value(args: tuple[str, ...], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag or (a.startswith("-") and not a.startswith("--") and a.endswith(flag[1:])):  # noqa: SIM102
            if len(a) <= 4 and i + 1 < len(args):
                return args[i + 1]
    return None


# A function definition: "name() { body; }" or "function name { body; }" (bodies without braces).
_FUNCTION = re.compile(
    r"(?:^|[;&|\s])(?:function\s+([A-Za-z_][\w-]*)\s*(?:\(\s*\))?|([A-Za-z_][\w-]*)\s*\(\s*\))"
    r"\s*\{([^{}]{1,2000})\}"
)
_AWKS = frozenset({"awk", "gawk", "mawk", "nawk"})
# A string handed to a shell by an interpreter: system("..."), exec(...), popen, backticks.
_SHELLED = re.compile(
    r"""(?:\b(?:system|exec|execSync|spawnSync|popen|shell_exec|passthru|proc_open|do\s+shell\s+script)"""
    r"""\s*\(?\s*|%x\{|`)(["'`]?)((?:(?!\1).){2,400})\1"""
)
# A wildcard for hidden files as a path's last part ('.*', ./.[a-z]*).
_HIDDEN_GLOB = re.compile(r"(?:^|/)\.[^/]*[*?\[][^/]*/?$")
# find's options that are not tests: with only these, find matches every path.
_FIND_PLAIN = frozenset({
    "-maxdepth", "-mindepth", "-depth", "-xdev", "-mount", "-follow", "-L", "-H", "-P",
    "-noleaf", "-ignore_readdir_race", "-d", "-x",
})  # fmt: skip
_FIND_ACTIONS = frozenset({"-exec", "-execdir", "-ok", "-okdir", "-delete", "-print", "-print0"})
_GIT_RUNS = frozenset({
    "core.pager", "core.editor", "core.sshcommand", "core.fsmonitor", "sequence.editor",
    "diff.external", "core.askpass", "credential.helper", "gpg.program",
})  # fmt: skip


# Options whose value is a command the program runs (GTFOBins' shell escapes): ``--opt=CMD`` or
# ``--opt CMD``; tar's ``--checkpoint-action`` takes ``exec=CMD``.
_RUNS_OPTION: dict[str, tuple[str, ...]] = {
    "tar": ("--checkpoint-action", "--to-command", "--use-compress-program", "-I", "--rsh-command"),
    "rsync": ("-e", "--rsh", "--rsync-path"),
    "ssh": ("ProxyCommand", "LocalCommand"),
    "scp": ("ProxyCommand", "-S"),
    "zip": ("-TT", "--unzip-command"),
    "flock": ("-c", "--command"),
    "script": ("-c", "--command"),
}


def _option_commands(prog: str, args: tuple[str, ...]) -> list[str]:
    """The commands ``prog`` runs from its options (``tar --checkpoint-action=exec=...``)."""
    names = _RUNS_OPTION[prog]
    out = []
    for i, a in enumerate(args):
        if a == "-o" and i + 1 < len(args):  # ssh -o ProxyCommand=...
            a = args[i + 1]
        for name in names:
            value = None
            if a.startswith(name + "="):
                value = a[len(name) + 1 :]
            elif a == name and i + 1 < len(args):
                value = args[i + 1]
            if value:
                out.append(value.removeprefix("exec="))
    return out[:_XARGS_ITEMS]


#: At most this many written files are remembered, each up to this many characters.
_SCRIPTS = 16
_SCRIPT_CHARS = 20_000


def _script_key(path: str) -> str:
    return path.strip("\"'").removeprefix("./")


def _shelled_strings(source: str) -> list[str]:
    """The command lines a script in another language hands to a shell (``system("...")``)."""
    found = [m.group(2) for m in _SHELLED.finditer(source[:_SCRIPT_CHARS])]
    return found[:_XARGS_ITEMS]


def _each_item(command: list[str], items: list[str]) -> list[str]:
    """The command line run once per item (at most :data:`_XARGS_ITEMS`): the item in place of
    ``{}``, or after the command when it has none (GNU parallel, ``find -exec``)."""
    lines = []
    for item in items[:_XARGS_ITEMS]:
        line = [w.replace("{}", item) for w in command]
        if not any("{}" in w for w in command):
            line.append(item)
        lines.append(" ".join(_quote(t) for t in line))
    return lines


def _find_starts(args: tuple[str, ...]) -> list[str]:
    """find's start points: the words before its expression, after the options that come first
    (``-L``, ``-H``, ``-P``, ``-O3``, ``-D what``); ``.`` when it names none, as GNU and BSD find
    then search the working folder (``find -delete`` is ``find . -delete``)."""
    i = 0
    while i < len(args) and (args[i] in ("-L", "-H", "-P", "-D") or args[i].startswith("-O")):
        i += 2 if args[i] == "-D" else 1
    starts = []
    for a in args[i:]:
        if a.startswith("-") or a in ("(", "!", ")"):
            break
        starts.append(a)
    return starts or ["."]


def _find_tests(args: tuple[str, ...]) -> bool:
    """Whether find's expression has a test that narrows what it matches."""
    for a in args:
        if a in _FIND_ACTIONS:
            break
        if a.startswith("-") and a not in _FIND_PLAIN:
            return True
    return False


@dataclass(frozen=True)
class _GitFolders:
    """Where a git command runs: the folder its ``-C`` options name (joined, as written; ``None``
    without one), its work tree (``--work-tree``, from that folder), and its subcommand's words."""

    folder: str | None
    tree: str | None
    rest: tuple[str, ...]

    def cleaned(self, cwd: str | None) -> list[str]:
        """What a forced ``git clean`` deletes, read as ``rm -rf`` of it, when that is a home or a
        system tree (:func:`~convguard.agent.paths.critical_target`), where almost every file is
        untracked: the work tree (``--work-tree``), the ``-C`` folder or the working folder ``cwd``
        (the caller's, or one a ``cd`` moved to), or its pathspecs there. A clean of any other
        folder is ordinary work, and not read so. Nothing for a dry run (``-n``), an interactive
        one (``-i``) or one without ``-f``."""
        if self.rest[:1] != ("clean",):
            return []
        forced, specs, i = False, list[str](), 1
        while i < len(self.rest):
            a = self.rest[i]
            if a == "--":
                specs += self.rest[i + 1 :]
                break
            if a in ("-e", "--exclude"):
                i += 2
                continue
            short = a[:1] == "-" and a[1:2] != "-"
            if a in ("--dry-run", "--interactive") or (short and ("n" in a or "i" in a)):
                return []
            forced = forced or a == "--force" or (short and "f" in a)
            if a[:1] != "-":
                specs.append(a)
            i += 1
        where = self.tree or self.folder or "."
        paths = [posixpath.join(where, s) for s in specs] or [where]
        return [
            p
            for p in paths[:_XARGS_ITEMS]
            if forced
            and (critical_target(p) or (cwd is not None and critical_target(absolute_path(p, cwd))))
        ]


# git's options before its subcommand that take a value as the next word.
_GIT_VALUED = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix"}
)


def _git_folders(args: tuple[str, ...]) -> _GitFolders:
    folder: str | None = None
    tree: str | None = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        name, eq, value = a.partition("=")
        if not eq and a in _GIT_VALUED:
            value = args[i + 1] if i + 1 < len(args) else ""
            i += 1
        if a == "-C":
            folder = value if folder is None else posixpath.join(folder, value)
        elif name == "--work-tree":
            tree = value
        i += 1
    if tree is not None and folder is not None:
        tree = posixpath.join(folder, tree)
    return _GitFolders(folder, tree, args[i:])


def _git_config_commands(args: tuple[str, ...]) -> list[str]:
    """Commands git would run from ``-c key=value`` settings (a pager, an editor, an ssh
    command, a ``!`` alias)."""
    out = []
    for i, a in enumerate(args[:-1]):
        if a != "-c":
            continue
        key, _, value = args[i + 1].partition("=")
        key = key.lower()
        if key in _GIT_RUNS or (key.startswith("alias.") and value.startswith("!")):
            out.append(value.removeprefix("!"))
    return out


def _xargs_runs(command: list[str], replace: str | None, stdin: str | None) -> list[list[str]]:
    """The command lines ``xargs`` runs: its command with the items of its input when that input
    is known (``echo / | xargs rm -rf`` runs ``rm -rf /``), one line per item with ``-I``;
    else the command alone. At most :data:`_XARGS_ITEMS` items are read."""
    if stdin is None:
        return [command]
    try:
        items = shlex.split(stdin)[:_XARGS_ITEMS]
    except ValueError:
        items = stdin.split()[:_XARGS_ITEMS]
    if not items:
        return [command]
    if replace:
        return [[word.replace(replace, item) for word in command] for item in items]
    return [command + items]


_XARGS_ITEMS = 16


def _folder_after(cmd: Command, cwd: str | None, dialect: Dialect = "posix") -> str | None:
    """The working folder after ``cmd``, a command of :data:`_MOVES` run from ``cwd`` by
    ``dialect``'s shell (:func:`~convguard.agent.paths.changed_folder`); ``None`` where the
    directory stack or the location history decides (``popd``, ``Pop-Location``, ``pushd`` alone
    or ``pushd +N``, PowerShell's ``cd -``/``cd +``), as it is not followed."""
    if dialect != "posix":
        return _windows_folder_after(cmd, cwd, dialect)
    args = list(cmd.args)
    while args and _CD_OPTION.fullmatch(args[0]):
        args.pop(0)
    if args[:1] == ["--"]:
        args.pop(0)
    if cmd.program == "popd" or (cmd.program == "pushd" and (not args or args[0][:1] in "+-")):
        return None
    if cmd.program == "pushd" and "-n" in cmd.args:  # only adds the folder to the stack
        return cwd
    return changed_folder(cwd, args[0] if args else None)


def _windows_folder_after(cmd: Command, cwd: str | None, dialect: Dialect) -> str | None:
    """:func:`_folder_after` for cmd (``cd``/``chdir``, with ``/d`` to change the drive too;
    ``cd`` alone only prints the folder; ``cd..``) and PowerShell (``Set-Location``,
    ``sl``, ``cd``, ``chdir``, ``Push-Location``, ``pushd``; the folder as ``-Path`` or
    ``-LiteralPath``). A Windows folder (``D:\\x``, ``%USERPROFILE%``) is not resolved (see
    :func:`~convguard.agent.paths.changed_folder`): what follows it runs where it is not known."""
    program = cmd.program
    if program in ("popd", "pop-location"):
        return None
    if program == "cd..":
        return changed_folder(cwd, "..")
    args, target, i = list(cmd.args), None, 0
    while i < len(args):
        a = args[i]
        low = a.lower()
        if dialect != "powershell" and low == "/d":
            i += 1
        elif low in _LOCATION_VALUED:  # -Path X, -LiteralPath X; -StackName N names no folder
            if low != "-stackname" and target is None and i + 1 < len(args):
                target = args[i + 1]
            i += 2
        elif dialect != "cmd" and low.startswith("-") and low not in ("-", "+"):
            i += 1  # a switch: -PassThru
        else:
            target = a if target is None else target
            i += 1
    if target is None:
        # cmd's "cd" and PowerShell's "Push-Location" alone stay; PowerShell's "cd" alone goes
        # home since 6.2 and stays before it, so where it went is not known
        stays = dialect == "cmd" or program in ("pushd", "push-location")
        return cwd if stays else None
    if dialect != "cmd" and target in ("-", "+"):  # PowerShell's location history
        return None
    if dialect == "cmd" and target[:1] in "~$":  # cmd has no "~" home, nor "$" variables
        return None
    return changed_folder(cwd, target)


#: The commands that move the working folder, by the shell reading them (``windows``: cmd or
#: PowerShell, not known which).
_MOVES: dict[Dialect, frozenset[str]] = {
    "posix": frozenset({"cd", "pushd", "popd"}),
    "cmd": frozenset({"cd", "chdir", "pushd", "popd", "cd.."}),
    "powershell": frozenset(
        {"cd", "chdir", "sl", "set-location", "pushd", "push-location", "popd", "pop-location"}
    ),
}
_MOVES["windows"] = _MOVES["cmd"] | _MOVES["powershell"]
_LOCATION_VALUED = frozenset({"-path", "-literalpath", "-pspath", "-lp", "-stackname"})
_CD_OPTION = re.compile(r"-[LPe@n]+")


def _skip_options(args: tuple[str, ...], valued: frozenset[str]) -> list[str]:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in valued else 1
    return list(args[i:])


# PowerShell's Start-Process (and its aliases) and cmd's ``start`` run the program they name
#: How a command reaches what runs in a working folder of its own: on another machine, in a pod
#: or a container, or later from a scheduler's.
_ELSEWHERE = frozenset(
    {"ssh", "kubectl", "docker", "crontab", "at", "batch", "systemd-run", "systemd-run timer"}
)
_STARTERS = frozenset({"start-process", "saps", "start"})
_START_VALUED = frozenset(
    {
        "-filepath",
        "-argumentlist",
        "-args",
        "-workingdirectory",
        "-verb",
        "-windowstyle",
        "-credential",
        "-redirectstandardoutput",
        "-redirectstandarderror",
        "-redirectstandardinput",
        "/d",
    }
)
_START_SWITCHES = frozenset(
    {"-passthru", "-wait", "-nonewwindow", "-usenewenvironment", "/b", "/wait", "/min", "/max"}
)


def _started_command(args: tuple[str, ...]) -> str | None:
    """The command line ``Start-Process``/``start`` runs: ``-FilePath`` (or the first other word
    that is not cmd's empty window title), then ``-ArgumentList`` and the words left over."""
    named: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        low = args[i].lower()
        if low in _START_VALUED and i + 1 < len(args):
            named[low] = args[i + 1]
            i += 2
            continue
        if low not in _START_SWITCHES and (args[i] or rest):
            rest.append(args[i])
        i += 1
    if "-filepath" not in named and rest:
        named["-filepath"] = rest.pop(0)
    path = named.get("-filepath", "")
    if not path:
        return None
    words = " ".join(_quote(a) for a in rest)
    listed = named.get("-argumentlist") or named.get("-args") or ""
    return " ".join(w for w in (_quote(path), listed, words) if w)


# A job's schedule: ``@daily``-like, or minutes and hours written in digits, ``*``, ``,``, ``-``
# and ``/`` (what is not is no job: cron refuses the line).
_CRON_SCHEDULE = re.compile(r"^(?:@[a-z]+\s|[\d*,/-]+\s+[\d*,/-]+\s)")
_CRON_PERCENT = re.compile(r"(?<!\\)%")


# Tables cron reads its jobs from: the system's, whose lines name a user after the times, and
# each user's (what ``crontab`` installs; Debian, Red Hat, SUSE, BSD and macOS folders).
_CRON_SYSTEM_TABLE = re.compile(r"^/etc/(?:crontab|cron\.d/[^/]+)$")
_CRON_USER_TABLE = re.compile(
    r"^/(?:var/spool/cron/(?:crontabs/|tabs/)?|var/cron/tabs/|usr/lib/cron/tabs/|var/at/tabs/)"
    r"[^/]+$"
)


def _cron_table(path: str) -> bool | None:
    """Whether ``path`` is a system cron table (``True``: a user field follows the times), a
    user's (``False``), or no cron table (``None``)."""
    path = path.strip("\"'").removeprefix("/private")
    if _CRON_SYSTEM_TABLE.match(path):
        return True
    return False if _CRON_USER_TABLE.match(path) else None


def _cron_commands(table: str | None, *, user_field: bool = False) -> list[str]:
    """The command each job of a crontab runs (at most :data:`_XARGS_ITEMS`): what follows its
    five time fields, or its ``@reboot``-like nickname (and the user, in a system table), up to
    a ``%`` (the rest is the command's standard input, ``\\%`` a literal one)."""
    out: list[str] = []
    for line in (table or "").splitlines():
        line = line.strip()
        if not _CRON_SCHEDULE.match(line):  # a comment, a variable (``MAILTO=``), no job
            continue
        times = (1 if line.startswith("@") else 5) + user_field
        fields = line.split(None, times)
        if len(fields) > times:
            out.append(_CRON_PERCENT.split(fields[times], maxsplit=1)[0].replace("\\%", "%"))
    return out[:_XARGS_ITEMS]


# Container engines whose ``run`` starts the command written after the image.
_CONTAINER_ENGINES = frozenset({"docker", "podman", "nerdctl"})
# Their global options and ``run``'s options that take a value (long names, then short letters).
_CONTAINER_VALUED = frozenset({
    # global
    "host", "context", "config", "log-level", "tlscacert", "tlscert", "tlskey", "connection",
    "url", "identity", "root", "runroot", "storage-driver", "cgroup-manager", "tmpdir",
    "namespace", "address", "module",
    # run (docker, podman, nerdctl)
    "attach", "add-host", "annotation", "arch", "authfile", "blkio-weight",
    "blkio-weight-device", "cap-add", "cap-drop", "cert-dir", "cgroup-conf", "cgroup-parent",
    "cgroupns", "cgroups", "cidfile", "conmon-pidfile", "cpu-count", "cpu-percent",
    "cpu-period", "cpu-quota", "cpu-rt-period", "cpu-rt-runtime", "cpu-shares", "cpus",
    "cpuset-cpus", "cpuset-mems", "creds", "decryption-key", "detach-keys", "device",
    "device-cgroup-rule", "device-read-bps", "device-read-iops", "device-write-bps",
    "device-write-iops", "dns", "dns-opt", "dns-option", "dns-search", "domainname",
    "entrypoint", "env", "env-file", "expose", "gidmap", "gpus", "group-add", "group-entry",
    "health-cmd", "health-interval", "health-retries", "health-start-interval",
    "health-start-period", "health-timeout", "hostname", "hostuser", "init-path", "ip", "ip6",
    "ipc", "isolation", "kernel-memory", "label", "label-file", "link", "link-local-ip",
    "log-driver", "log-opt", "mac-address", "memory", "memory-reservation", "memory-swap",
    "memory-swappiness", "mount", "name", "net", "net-alias", "network", "network-alias",
    "oom-score-adj", "os", "passwd-entry", "personality", "pid", "pidfile", "pids-limit",
    "platform", "pod", "pod-id-file", "preserve-fds", "publish", "pull", "requires", "restart",
    "retry", "retry-delay", "runtime", "sdnotify", "seccomp-policy", "secret", "security-opt",
    "shm-size", "stop-signal", "stop-timeout", "storage-opt", "subgidname", "subuidname",
    "sysctl", "systemd", "timeout", "tmpfs", "tz", "uidmap", "ulimit", "umask", "unsetenv",
    "user", "userns", "uts", "variant", "volume", "volume-driver", "volumes-from", "workdir",
})  # fmt: skip
_CONTAINER_SHORT_VALUED = "Hacehlmpuvw"
# ``-v SOURCE:TARGET[:OPTIONS]`` (a Windows source keeps its drive's colon).
_VOLUME = re.compile(r"^((?:[A-Za-z]:)?[^:]*):(/[^:]*)")
# A source that is a folder of the host (not a named volume): absolute, relative, home, variable.
_HOST_SOURCE = re.compile(r"^(?:[/.~$]|[A-Za-z]:[\\/])")


# A word that names a path, after an option's or a setting's name (``--output=``, ``of=``).
_OPTION_VALUE = re.compile(r"^(?:--?[\w-]+|[A-Za-z_]\w*)=")


@dataclass(frozen=True)
class _Container:
    """How the host sees what a container's command names.

    ``mounts`` holds, longest first, each folder of the container that a folder of the host is
    mounted on, with that host folder; ``workdir`` is the container's working folder when the
    call sets it (``-w``), else ``""``. ``devices`` holds each device of the host passed in
    (``--device /dev/sda``), at its path in the container, and ``all_devices`` says that every
    device of the host is there at its own path (``--privileged``); a device is a file, so only
    a path naming it reaches it. Every other path is the container's own, nothing to the host:
    ``docker run -v "$PWD":/src alpine cat /etc/shadow`` reads the image's file.
    """

    mounts: tuple[tuple[str, str], ...]
    workdir: str = ""
    devices: tuple[tuple[str, str], ...] = ()
    all_devices: bool = False

    @property
    def reaches_host(self) -> bool:
        """Whether a folder or a device of the host is in the container."""
        return bool(self.mounts or self.devices or self.all_devices)

    def host_command(self, cmd: Command) -> Command:
        """``cmd`` as the host sees it: each word as :meth:`host_words` reads it, and each
        redirection to a file of the container's own left out."""
        argv = [w for i, word in enumerate(cmd.argv) for w in self.host_words(word, program=not i)]
        redirects = []
        for op, target in cmd.redirects:
            host = [target] if op in ("<<", "<<<") else self.host_words(target)
            if host:
                redirects.append((op, host[0]))
        return dataclasses.replace(cmd, argv=tuple(argv), redirects=tuple(redirects))

    def host_words(self, word: str, *, program: bool = False) -> list[str]:
        """What the host sees of one word. A device of the host passed in is that device
        (``/dev/xvdc`` is ``/dev/sdb`` for ``--device /dev/sdb:/dev/xvdc``); a path under a
        mount is its host path (``/host/etc`` is ``/etc`` for ``-v /:/host``); a folder above
        mounts, the host folders it reaches there (``/`` is ``$PWD`` for ``-v "$PWD":/src``); a
        path of the container's own is nothing (left out; the program keeps its name). A
        relative path written as one (``.``, ``./x``, ``../x``, ``*``) is read from the working
        folder when the call sets it (and stays relative when that folder is the host's working
        folder mounted; without one it is kept only when a folder is mounted), ``~`` as root's
        home; an option's value after ``=`` is read the same; other words are kept."""
        option, value = "", word
        if not program and (named := _OPTION_VALUE.match(word)) is not None:
            option, value = named.group(), word[named.end() :]
        if not value or ":" in value or any(c.isspace() for c in value):
            return [word]
        if value.startswith("/"):
            path = value
        elif value == "~" or value.startswith("~/"):
            path = "/root" + value[1:]
        elif value in (".", "..") or value.startswith(("./", "../", "*")):
            if not self.workdir:  # relative to a folder the call does not name: a mount's, maybe
                return [word] if self.mounts else [option] if option else []
            workdir = self._under(self.workdir) or ""  # "" when the container's own
            here = WORKING_FOLDER.match(workdir)  # the host's working folder, mounted
            if here is not None:  # "-v $PWD:/src -w /src": the host's own working folder
                inside = workdir[here.end() :].lstrip("/")
                return [option + posixpath.normpath(posixpath.join(inside, value))]
            path = f"{self.workdir}/{value}"
        else:
            return [word]
        path = posixpath.normpath(path)
        if program:  # a program of the container's own keeps its name
            return [self._under(path) or value.rsplit("/", 1)[-1]]
        return [option + h for h in self._host(path)] or ([option] if option else [])

    def _host(self, path: str) -> list[str]:
        """The host paths an absolute path of the container names: the host's device it names,
        its host path under a mount, or the host folders mounted below it (``/``, ``/h*``);
        none for the container's own."""
        device = dict(self.devices).get(path)
        if device is None and self.all_devices and path.startswith("/dev/"):
            device = path if _glob_base(path) == path else None  # a pattern is no one device
        if device is not None:
            return [device]
        under = self._under(path)
        if under is not None:
            return [under]
        above = _glob_base(path).rstrip("/") + "/"
        return [source for target, source in self.mounts if target.startswith(above)]

    def _under(self, path: str) -> str | None:
        """The host path of an absolute path under a mount, else ``None``."""
        for target, source in self.mounts:
            if path == target or path.startswith(target + "/"):
                return (source.rstrip("/") + path[len(target) :]) or "/"
        return None


def _glob_base(path: str) -> str:
    """The folder a path's first wildcard is in (``/h*`` → ``/``), or the path itself."""
    cut = min((path.find(c) for c in "*?[" if c in path), default=-1)
    return path if cut < 0 else (path[:cut].rsplit("/", 1)[0] or "/")


@dataclass(frozen=True)
class _ContainerRun:
    """A container engine's ``run``: the engine's own words (global options, ``run``, its
    options and the image, at ``image`` among the arguments), the command it starts (none: the
    image's own), and how the host sees it."""

    engine: tuple[str, ...]
    command: tuple[str, ...]
    view: _Container
    image: int


def container_image(cmd: Command) -> int | None:
    """Where among ``cmd``'s arguments a container engine's ``run`` names its image (``alpine``
    in ``docker run --rm alpine``), or ``None`` when ``cmd`` runs no image."""
    if cmd.program not in _CONTAINER_ENGINES:
        return None
    run = _container_run(cmd.args)
    return None if run is None else run.image


def _container_run(args: tuple[str, ...]) -> _ContainerRun | None:
    """The command a container engine's ``run`` starts (the entrypoint first when set), the
    folders of the host it mounts (``-v``/``--volume``, ``--mount type=bind``) and the devices
    of the host it passes in (``--device``, every one with ``--privileged``). ``None`` when the
    call is not a ``run`` of an image."""
    mounts: dict[str, str] = {}  # path in the container -> path on the host
    devices: dict[str, str] = {}  # the same for a device
    privileged = False
    entrypoint = workdir = ""
    positional: list[str] = []
    i = 0
    while i < len(args) and len(positional) < 2 + (positional[:1] == ["container"]):
        a = args[i]
        i += 1
        name, value = "", ""
        if a == "--":
            positional.extend(args[i : i + 1])
            i += 1
            continue
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if not eq and name in _CONTAINER_VALUED and i < len(args):
                value, i = args[i], i + 1
        elif a.startswith("-") and len(a) > 1:
            letters = a[1:]
            for j, letter in enumerate(letters):
                if letter in _CONTAINER_SHORT_VALUED:
                    name, value = letter, letters[j + 1 :].removeprefix("=")
                    if not value and i < len(args):
                        value, i = args[i], i + 1
                    break
        else:
            positional.append(a)
            continue
        if name in ("v", "volume"):
            volume = _VOLUME.match(value)
            if volume and _HOST_SOURCE.match(volume.group(1)):
                mounts[volume.group(2)] = volume.group(1)
        elif name == "mount":
            spec = {k: v for k, _, v in (part.partition("=") for part in value.split(","))}
            source = spec.get("source") or spec.get("src") or ""
            target = spec.get("target") or spec.get("destination") or spec.get("dst") or ""
            if spec.get("type") == "bind" and source and target.startswith("/"):
                mounts[target] = source
        elif name == "device":  # HOST[:CONTAINER[:PERMISSIONS]]
            host, _, rest = value.partition(":")
            inside = rest.partition(":")[0]
            if host.startswith("/"):
                devices[posixpath.normpath(inside if inside.startswith("/") else host)] = host
        elif name == "privileged":
            privileged = value.lower() not in ("false", "0")
        elif name == "entrypoint":
            entrypoint = value
        elif name in ("w", "workdir") and value.startswith("/"):
            workdir = posixpath.normpath(value)
    if len(positional) < 2 or positional[:-1] not in (["run"], ["container", "run"]):
        return None
    command = ([entrypoint] if entrypoint else []) + list(args[i:])
    folders = {posixpath.normpath(t): s for t, s in mounts.items() if t.rstrip("/")}
    mounted = tuple(sorted(folders.items(), key=lambda m: -len(m[0])))
    view = _Container(mounted, workdir, tuple(devices.items()), privileged)
    return _ContainerRun(args[:i], tuple(command), view, image=i - 1)


# systemd-run's options that take a value; an ``--on-…`` option makes it a timer.
_SYSTEMD_RUN_VALUED = frozenset({
    "-p", "--property", "-u", "--unit", "--description", "--slice", "-E", "--setenv", "--uid",
    "--gid", "--nice", "--working-directory", "-H", "--host", "-M", "--machine", "--on-active",
    "--on-boot", "--on-startup", "--on-unit-active", "--on-unit-inactive", "--on-calendar",
    "--timer-property", "--path-property", "--socket-property", "--service-type",
})  # fmt: skip


def _systemd_run(args: tuple[str, ...]) -> tuple[str, str] | None:
    """The command line ``systemd-run`` starts (what follows its options) and how it is
    reached: ``systemd-run timer`` when an ``--on-…`` option schedules it, else
    ``systemd-run``."""
    timer = False
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, eq, _ = args[i].partition("=")
        timer = timer or name.startswith("--on-")
        i += 1
        if name == "--":
            break
        if not eq and name in _SYSTEMD_RUN_VALUED:
            i += 1
    if i >= len(args):
        return None
    line = " ".join(_quote(a) for a in args[i:])
    return line, "systemd-run timer" if timer else "systemd-run"


def _substituted(script: str) -> str | None:
    """The command of ``script`` when it is one ``$( … )`` whose output is not known: what a
    shell given it runs is what that command prints (``bash -c "$(curl -fsSL URL)"``)."""
    whole = script.startswith("$(") and _matching(script, 1) == len(script) - 1
    if not whole or script.startswith("$(("):  # ``$(( … ))`` is arithmetic
        return None
    return script[2:-1].strip() or None


def _ssh_command(args: tuple[str, ...]) -> str | None:
    valued = frozenset(
        [
            "-b",
            "-c",
            "-D",
            "-E",
            "-e",
            "-F",
            "-I",
            "-i",
            "-J",
            "-L",
            "-l",
            "-m",
            "-O",
            "-o",
            "-p",
            "-Q",
            "-R",
            "-S",
            "-W",
            "-w",
        ]
    )
    rest = _skip_options(args, valued)
    return " ".join(rest[1:]) if len(rest) > 1 else None


def _unwrap(argv: list[str]) -> tuple[list[str], tuple[str, ...], str]:
    """The command the wrappers at the front of ``argv`` run, the wrappers, and the name
    ``exec -a NAME`` starts it under (``""`` when none)."""
    wrappers: list[str] = []
    process_name = ""
    while argv:
        name = argv[0].rsplit("/", 1)[-1]
        if name not in WRAPPERS:
            break
        wrappers.append(name)
        rest = argv[1:]
        if name == "chroot" and rest:
            rest = rest[1:]
        i = 0
        while i < len(rest):
            a = rest[i]
            if name == "exec" and _EXEC_NAMED.match(a) and i + 1 < len(rest):
                process_name = rest[i + 1]  # ``-a NAME``, bundled as bash allows: ``-la NAME``
                i += 2
            elif a.startswith("-") and a != "-":
                i += 2 if a in WRAPPERS[name] else 1
            elif (name == "env" and "=" in a) or (
                name in ("timeout", "watch") and i == 0 and a[:1].isdigit()
            ):
                i += 1
            else:
                break
        argv = rest[i:]
    return argv, tuple(wrappers), process_name


_EXEC_NAMED = re.compile(r"^-[cl]*a$")


def _cmd_line(args: tuple[str, ...]) -> str:
    """The command line ``cmd`` runs: what follows its ``/c`` or ``/k`` (``/r`` is ``/c``; the
    switch may be glued to it, ``/cwhoami``), the switches before it left out; without one, its
    words but ``/q``. The words are joined as they came, their quotes gone: cmd reads them again."""
    for i, a in enumerate(args):
        switch = a[:2].lower()
        if switch in ("/c", "/k", "/r"):
            return " ".join((a[2:], *args[i + 1 :])).strip()
    return " ".join(a for a in args if a.lower() != "/q")


def parse_script(text: str, *, dialect: Dialect = "posix", cwd: str | None = None) -> Parsed:
    """Parse a shell script as ``dialect``'s shell reads it (see :data:`Dialect`): in PowerShell
    and cmd, backslashes are path separators, and a backtick (PowerShell) or a caret outside double
    quotes (cmd: ``c^m^d``, ``^^`` a caret) escapes the next character. cmd's ``%COMSPEC%`` is
    cmd itself; what ``cmd /c`` or ``cmd /k`` runs is read as cmd reads it, from any shell.
    ``cwd``, the folder the script runs in when known, is each command's :attr:`Command.cwd`
    (not for what runs elsewhere: over ``ssh``, in a pod, as a scheduled job)."""
    result = Parsed()
    _Parser(result, dialect=dialect, cwd=cwd).parse(text, depth=0, via="", decoded=False)
    return result


def parse_written(path: str, text: str, *, cwd: str | None = None) -> Parsed:
    """What a file written with ``text`` will run, read now: the jobs of a cron table
    (``/etc/cron.d/*``, ``/etc/crontab``, ``/var/spool/cron/*``; a relative ``path`` read from
    the working folder ``cwd`` when known), each a command reached through ``cron``, as a shell
    write of the same text reads them. Nothing for any other file."""
    result = Parsed()
    parser = _Parser(result, dialect="posix", cwd=cwd)
    parser._read_cron_table(path, text, via="", depth=0, decoded=False)
    return result

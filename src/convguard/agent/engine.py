"""The rule engine: detection knowledge kept as YAML data, loaded and checked once, then matched.

A rule file (``rules/<platform-or-theme>/<name>.yaml``) holds ``rules:``, a list of rules::

    - id: windows.defender-disabled          # stable: findings, logs and scope files name it
      title: turns off Windows Defender       # the finding's reason, followed by the command
      category: persistence_evasion           # one of CATEGORIES
      level: deny                             # ask | deny
      lowerable: false                        # may the user's request or the scope lower it?
      attack: [T1562.001]                     # MITRE ATT&CK technique ids
      references: [https://attack.mitre.org/techniques/T1562/001/]
      match:
        programs: [set-mppreference]          # run as these programs (lower case, no .exe)
        args: '-disable|-exclusion'           # and their lower-cased arguments match this
      tests:
        hit: ['Set-MpPreference -DisableRealtimeMonitoring $true']
        miss: ['Set-MpPreference -SignatureUpdateInterval 4']

Five kinds of rule, by what ``match`` holds:

- **command** rules (``programs`` — ``'*'`` for any program, even none, as in
  ``HISTFILE=/dev/null`` alone; ``not_programs`` leaves some out —, optionally ``command`` — a
  regular expression searched in the first word as written: ``/dev/shm/x`` —, ``wrappers`` — run
  through one of these: ``sudo``, ``nohup`` —, ``process_name`` — searched in the name a wrapper
  starts the program under: ``exec -a '[kworker/0:1]' ./x`` —, ``args`` — a regular expression
  searched in the
  lower-cased arguments joined by spaces —, ``unless`` — one that must not be found there (a
  neighbouring rule's, so that only one of them fires; ``case_sensitive: true`` reads the
  arguments as written) —, ``flags`` — any of these options, bundled short options counted letter
  by letter — and ``predicate``, a named Python check from :mod:`convguard.agent.predicates`);
  ``targets: hosts`` hands the hosts among the arguments to the scope, which may authorise them.
  What surrounds the arguments: ``paths`` (a regular expression searched in each argument that is
  not an option, as written, ``$HOME``, ``/home/NAME`` and ``/root`` folded to ``~``; with
  ``path_is`` / ``path_is_not``, kinds of path that same argument is and is not: ``secret``,
  ``log``, ``critical`` …, see :data:`~convguard.agent.predicates.PATH_KINDS`; ``targets:
  paths`` hands those arguments to the scope and to the user's request, which may cover them),
  ``destination`` and ``sources`` (the same, in the last such argument of at least two — where
  ``cp``, ``mv`` or ``scp`` put things — and in any one before it; ``sources_are``: kinds of
  path one source is), ``values_of`` (the values of these options, ``-d VALUE`` or
  ``--data=VALUE``: ``value`` searched in one as written, ``value_file`` and ``value_file_is`` /
  ``value_file_is_not`` on the file it names — after an ``@``, before a ``;``, as curl's
  ``-F 'f=@path;type=…'`` writes it), ``upstream`` / ``downstream`` (any of these programs pipes
  into the command / is piped into from it; ``'*'``: any), ``ends_pipe: true`` (the command pipes
  into nothing), ``alone: true`` (run as a statement of its own: not inside ``$( )``, ``xargs`` or
  ``find -exec``, nothing piped into it), ``pipes_not_into`` (the program it pipes into directly
  is none of these), ``redirects`` (searched in each redirection written ``OP TARGET``: ``'^< '``
  for input from a file), ``inputs`` / ``inputs_are`` (an input redirection's target, and the
  kinds of path it is), ``stdin`` (searched in the lower-cased text fed on standard input when
  known: a here-document, a pipe of ``echo``), ``words`` / ``words_are`` (a word of the arguments
  split on white space, and its kinds: a path inside text fed to an editor), ``via`` (searched in
  how the command was reached, each step after a ``>``: ``xargs``, ``find -exec``, ``$(...)``,
  ``docker run`` for a container's command; for a job the call schedules, its scheduler:
  ``crontab`` for a crontab it installs, ``cron`` for a cron table it writes, ``at``,
  ``batch``, ``systemd-run timer``) and ``assignments`` (searched in each
  variable it sets, written ``NAME=value``); every test given must hold. A command rule with
  ``unless_rules`` is a fallback: it is tried after the others (and the command's write rules),
  and fires only when none of the rules it names fired on the command;
- **write** rules (``write``): each file written — by the Write tool, or by a command: an output
  redirection (what ``echo`` or ``printf`` print, a here-document fed to ``cat``), ``tee``,
  ``sed -i``, the destination of ``cp``, ``mv``, ``install``, ``ln``, ``tar``, ``zip`` (see
  :func:`~convguard.agent.files.file_writes`) — tested on its ``path`` (searched, the home
  folded to ``~``), the kinds of path it is (``path_is``), its ``content`` (searched as written;
  an unknown content never matches) and ``content_unless``, and ``emptied: true`` (nothing
  written, or what is written is not known: ``> ~/.bash_history``); ``unless_rules`` makes a
  write rule a fallback the same way;
- **text** rules (``text``, a regular expression searched in the lower-cased text — as written
  with ``case_sensitive: true`` — of code, typed text, written files; with ``scripts: windows``
  only PowerShell and cmd scripts, with ``scripts: interpreters`` only code for another
  interpreter: perl, ruby, php, lua, node …, neither Python nor a shell, with ``scripts:
  unparsed`` any code no syntax tree was read for: another language, Python that does not parse);
  every text rule names ``triggers``, literal words one of which any match contains, so the
  expression runs only on texts that hold one (the cheap test that spares most texts most
  expressions);
- **sequence** rules (``sequence``: steps, each with ``programs``/``args``/``predicate``),
  matched in order over the session's recent commands and this call's, the last step in this call;
  with ``distinct_programs: true`` each step must be a program no earlier step matched (three
  different discovery programs, not ``uname`` three times);
- **call** rules (``within_call``): over the commands of this one call — every step of ``all_of``
  run by some command, in any order (a download and a ``source`` of what no file holds); or the
  commands that match a step of ``any_of``, counted by ``key`` (``program``, by default; ``match``,
  the text ``args`` matched; ``path``, each argument ``paths`` matched; several parts are joined)
  and by ``family`` (a step's label): ``distinct`` different keys or ``families`` different
  families (three discovery programs, or two of different kinds); or ``follow``: a file made by a
  command matching one of ``made_by`` — its ``outputs`` (output redirections, ``curl -o``, what
  ``wget`` or ``curl -O`` download), the ``paths`` its step matched, or the ``values`` of its
  step's ``values_of`` — then used by a later command matching ``then``, as the program it runs
  (``used_as: run``), as an argument (``argument``) or as the first argument that is not an option
  (``script``: what a shell or an interpreter runs), compared by ``same: name`` (the last part
  of the path) or ``same: path``.

Where a command's working folder is known (:attr:`~convguard.agent.shell.Command.cwd`), the path
tests (``paths``, ``path_is``, ``destination``, ``sources``, ``inputs``, ``words``, ``value_file``
and a write rule's ``path``, with their kinds) hold when they hold in one of the places
:func:`~convguard.agent.paths.places` reads an argument: as written, or as the absolute path a
relative one names there when that is a location the rules single out (``rm -rf .`` in the home
is ``rm -rf ~``, and so is ``cd ~ && rm -rf .``). With no folder known, a relative path to a
home's credential store (``../.ssh/id_rsa``) is also read from a home. ``args`` and the other
tests read the arguments as written.

Every rule carries its own ``tests`` (command lines, or for a sequence a list of tool calls),
run by the test suite and by ``convguard rules test``. Loading validates everything and names
the file, the rule id and the field of any error (:mod:`convguard.agent.schema`); rules that
loaded are kept in the compiled cache (:mod:`convguard.agent.cache`), so that the next process —
the Claude Code hook is one per tool call — reads them back without YAML or pydantic, and each
pattern is compiled on its first search. Rules are indexed by program, so a command costs only
the rules of its own program.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from convguard.agent import cache as compiled_cache
from convguard.agent.files import file_writes, outputs
from convguard.agent.findings import Finding, Level, option_flags, render
from convguard.agent.paths import fold_home, hosts_in, places
from convguard.agent.predicates import PATH_KINDS, PREDICATES, PathTest, Predicate
from convguard.agent.shell import Command
from convguard.errors import InvalidInput

__all__ = [
    "RULES_ENV",
    "Pattern",
    "Rule",
    "RuleSet",
    "Step",
    "default_rules",
    "load_rules",
]

#: The environment variable naming extra rule folders (``os.pathsep``-separated).
RULES_ENV = "CONVGUARD_AGENT_RULES"
RuleKind = Literal["command", "text", "sequence", "call", "write"]

_Case = str | list[str]
#: The layout of a cached rule set (raise it when :func:`_rule` reads the plain data differently).
_CACHE_FORMAT = "rules-4"


class Pattern:
    """A rule's regular expression, compiled on its first search.

    Rules read back from the compiled-rules cache were compiled when their files were first
    loaded, so their patterns are known to be valid; compiling them lazily means a process (the
    hook) pays only for the patterns of the programs it actually meets. After the first search,
    :attr:`search` is the compiled pattern's own method.
    """

    __slots__ = ("pattern", "search")
    pattern: str
    search: Callable[[str], re.Match[str] | None]

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.search = self._first_search

    def compiled(self) -> re.Pattern[str]:
        compiled = re.compile(self.pattern)
        self.search = compiled.search
        return compiled

    def _first_search(self, text: str) -> re.Match[str] | None:
        return self.compiled().search(text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


@dataclass(frozen=True)
class Step:
    """One step of a sequence rule (or the whole of a command rule's program test)."""

    programs: frozenset[str] = frozenset()
    #: Searched in the command's first word as written (``/dev/shm/x``, ``./linpeas.sh``).
    command: Pattern | None = None
    #: Run through one of these wrappers (``sudo``, ``nohup``, ``env`` …).
    wrappers: frozenset[str] = frozenset()
    #: Searched in the name a wrapper starts the program under (``exec -a NAME``), as written;
    #: a command started under none never matches.
    process_name: Pattern | None = None
    args: Pattern | None = None
    unless: Pattern | None = None
    #: Match the arguments as written (``-D`` is not ``-d``), not lower-cased.
    case_sensitive: bool = False
    #: Searched in each argument that is not an option, the home folded to ``~``, as written.
    paths: Pattern | None = None
    #: Kinds of path (:data:`~convguard.agent.predicates.PATH_KINDS`) that argument is, and is not.
    path_is: tuple[PathTest, ...] = ()
    path_is_not: tuple[PathTest, ...] = ()
    #: Searched, the same way, in the last argument that is not an option (where ``cp``, ``mv``,
    #: ``scp`` put things) and in each of the ones before it (what they take).
    destination: Pattern | None = None
    sources: Pattern | None = None
    #: Kinds of path one of those sources is (``secret``: a key copied to another host).
    sources_are: tuple[PathTest, ...] = ()
    #: Some program piped into the command (``upstream``) or that it pipes into (``downstream``).
    upstream: frozenset[str] = frozenset()
    downstream: frozenset[str] = frozenset()
    #: The command pipes into nothing (``yes > /dev/null``, not ``yes 2>/dev/null | head``).
    ends_pipe: bool = False
    #: Searched in each redirection written ``OP TARGET`` (``< /etc/passwd``, ``> /dev/null``).
    redirects: Pattern | None = None
    #: Searched in the lower-cased text fed on standard input, when known (a here-document, a pipe).
    stdin: Pattern | None = None
    #: Searched in how the command was reached (``xargs``, ``find -exec``, ``$(``); empty if run
    #: as a statement of its own.
    via: Pattern | None = None
    #: Searched in each variable the command sets, written ``NAME=value`` as written.
    assignments: Pattern | None = None
    predicate: Predicate | None = None
    #: Programs the command must not be (with ``programs: ['*']``: any program but these).
    not_programs: frozenset[str] = frozenset()
    #: Run as a statement of its own: not reached through ``$( )``, ``xargs`` or ``find -exec``,
    #: and nothing piped into it.
    alone: bool = False
    #: The program it pipes into directly is none of these (``ps aux | grep node`` is a lookup).
    pipes_not_into: frozenset[str] = frozenset()
    #: Searched in each input redirection's target (``< FILE``), and kinds of path one such
    #: target is.
    inputs: Pattern | None = None
    inputs_are: tuple[PathTest, ...] = ()
    #: Searched in each word of the arguments split on white space (text fed to another
    #: program: ``echo 'e /etc/shadow' | ed``), and kinds of path one such word is.
    words: Pattern | None = None
    words_are: tuple[PathTest, ...] = ()
    #: The values of these options (the next argument, or after ``=`` in ``--opt=value``):
    #: ``value`` is searched in a value as written, ``value_file`` in the file it names (what
    #: follows an ``@``, before a ``;``: curl's ``-F 'f=@path;type=text/plain'``), and
    #: ``value_file_is`` / ``value_file_is_not`` are kinds of path that file is and is not.
    values_of: frozenset[str] = frozenset()
    value: Pattern | None = None
    value_file: Pattern | None = None
    value_file_is: tuple[PathTest, ...] = ()
    value_file_is_not: tuple[PathTest, ...] = ()
    #: In a call rule's ``any_of``: what a matching command counts as (``program``; ``match``,
    #: the text ``args`` matched; ``path``, each argument ``paths`` matched), and its family.
    key: tuple[str, ...] = ("program",)
    family: str = ""

    def matches(self, cmd: Command, text: str | None = None) -> bool:
        """Whether ``cmd`` is this step; ``text`` is its lower-cased arguments when known."""
        if self.programs and _name(cmd) not in self.programs and "*" not in self.programs:
            return False
        if self.not_programs and _name(cmd) in self.not_programs:
            return False
        if self.process_name is not None and not (
            cmd.process_name and self.process_name.search(cmd.process_name)
        ):
            return False
        if self.command is not None and not (cmd.argv and self.command.search(cmd.argv[0])):
            return False
        if self.wrappers and not self.wrappers.intersection(cmd.wrappers):
            return False
        if self.assignments is not None and not any(
            self.assignments.search(f"{name}={value}") for name, value in cmd.assignments
        ):
            return False
        if not self._surroundings(cmd):
            return False
        if self.args is not None or self.unless is not None:
            if self.case_sensitive:
                text = " ".join(cmd.args)
            elif text is None:
                text = " ".join(cmd.args).lower()
            if self.args is not None and not self.args.search(text):
                return False
            if self.unless is not None and self.unless.search(text):
                return False
        return self.predicate is None or self.predicate(cmd)

    def patterns(self) -> tuple[Pattern | None, ...]:
        """Every regular expression of this step (``None`` where one is not given)."""
        return (
            self.command,
            self.process_name,
            self.args,
            self.unless,
            self.paths,
            self.destination,
            self.sources,
            self.redirects,
            self.stdin,
            self.via,
            self.assignments,
            self.inputs,
            self.words,
            self.value,
            self.value_file,
        )

    def paths_of(self, cmd: Command) -> list[str]:
        """The arguments that are not options and pass every path test, each in the first of the
        places it is read (:func:`~convguard.agent.paths.places`) where they all hold: ``paths``
        (on the argument with its home folded), each kind of ``path_is`` and none of
        ``path_is_not``. An argument is given as read there: as written, or the absolute path a
        relative one names (what a scope's paths are compared with)."""
        out = []
        for a in cmd.args:
            if a.startswith("-") or not a:
                continue
            found = next((p for p in places(a, cmd.cwd) if self._path_passes(p)), None)
            if found is not None:
                out.append(found)
        return out

    def _path_passes(self, path: str) -> bool:
        if self.paths is not None and not self.paths.search(fold_home(path)):
            return False
        return all(test(path) for test in self.path_is) and not any(
            test(path) for test in self.path_is_not
        )

    def values(self, cmd: Command) -> list[str]:
        """The values of the options named by ``values_of`` that pass the value tests."""
        out = []
        args = cmd.args
        for i, a in enumerate(args):
            if a in self.values_of and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith("--") and a.split("=", 1)[0] in self.values_of and "=" in a:
                value = a.split("=", 1)[1]
            else:
                continue
            if self.value is not None and not self.value.search(value):
                continue
            named = (
                value.split("@", 1)[1] if "@" in value and not value.startswith("http") else value
            )
            named = named.split(";")[0]
            if any(self._value_file_passes(p) for p in places(named, cmd.cwd)):
                out.append(value)
        return out

    def _value_file_passes(self, path: str) -> bool:
        if self.value_file is not None and not self.value_file.search(path):
            return False
        return all(test(path) for test in self.value_file_is) and not any(
            test(path) for test in self.value_file_is_not
        )

    def keys(self, cmd: Command, text: str | None = None) -> list[str]:
        """What a command that matches this step counts as in a call rule's ``any_of``."""
        parts: list[list[str]] = []
        for part in self.key:
            if part == "program":
                parts.append([_name(cmd)])
            elif part == "match":
                args = " ".join(cmd.args) if self.case_sensitive else " ".join(cmd.args).lower()
                found = self.args.search(args) if self.args is not None else None
                parts.append([found.group()] if found else [])
            else:
                parts.append(self.paths_of(cmd))
        keys = [""]
        for options in parts:
            keys = [f"{k} {o}".strip() for k in keys for o in options]
        return keys

    def _surroundings(self, cmd: Command) -> bool:
        """The tests on what is around the arguments: paths, pipes, redirections, input, via."""
        if self.upstream and not self.upstream.intersection(cmd.upstream):
            return False
        if self.downstream and not (
            self.downstream.intersection(cmd.downstream)
            or ("*" in self.downstream and cmd.downstream)
        ):
            return False
        if self.alone and (cmd.via or cmd.upstream):
            return False
        if self.pipes_not_into and cmd.downstream[:1] and cmd.downstream[0] in self.pipes_not_into:
            return False
        if (self.inputs is not None or self.inputs_are) and not any(
            (self.inputs is None or self.inputs.search(target))
            and all(test(target) for test in self.inputs_are)
            for op, written in cmd.redirects
            if op == "<"
            for target in places(written, cmd.cwd)
        ):
            return False
        if (self.words is not None or self.words_are) and not any(
            (self.words is None or self.words.search(word))
            and all(test(word) for test in self.words_are)
            for written in " ".join(cmd.args).split()
            for word in places(written, cmd.cwd)
        ):
            return False
        if self.values_of and not self.values(cmd):
            return False
        if self.ends_pipe and cmd.downstream:
            return False
        if (self.paths is not None or self.path_is or self.path_is_not) and not self.paths_of(cmd):
            return False
        if self.destination is not None or self.sources is not None or self.sources_are:
            raw = [a for a in cmd.args if not a.startswith("-")]
            if len(raw) < 2 and self.destination is not None:
                return False
            sources = [p for a in raw[:-1] for p in places(a, cmd.cwd)]
            if self.destination is not None and not any(
                self.destination.search(fold_home(p)) for p in places(raw[-1], cmd.cwd)
            ):
                return False
            if self.sources is not None and not any(
                self.sources.search(fold_home(p)) for p in sources
            ):
                return False
            if self.sources_are and not any(
                all(test(p) for test in self.sources_are) for p in sources
            ):
                return False
        if self.redirects is not None and not any(
            self.redirects.search(f"{op} {target}") for op, target in cmd.redirects
        ):
            return False
        if self.stdin is not None and not self.stdin.search((cmd.stdin or "").lower()):
            return False
        return self.via is None or bool(self.via.search(cmd.via))


@dataclass(frozen=True)
class WriteTest:
    """A write rule's test of one write: the path written and what is written there."""

    #: Searched in the path, the home folded to ``~``; kinds of path it is.
    path: Pattern | None = None
    path_is: tuple[PathTest, ...] = ()
    #: Searched in the content as written (never matches unknown content), and must not be.
    content: Pattern | None = None
    content_unless: Pattern | None = None
    #: The content is nothing, a lone newline, or not known (``> file``, ``ls > ~/.bash_history``).
    emptied: bool = False

    def matches(self, path: str, content: str | None, cwd: str | None = None) -> bool:
        """Whether writing ``content`` to ``path`` (from the working folder ``cwd``, when known)
        is this write: the path tests hold in one of the places the path is read."""
        if not any(self._path_passes(p) for p in places(path, cwd)):
            return False
        if self.emptied and content not in (None, "", "\n"):
            return False
        if self.content is not None and not (content and self.content.search(content)):
            return False
        return not (
            self.content_unless is not None and content and self.content_unless.search(content)
        )

    def _path_passes(self, path: str) -> bool:
        if self.path is not None and not self.path.search(fold_home(path)):
            return False
        return all(t(path) for t in self.path_is)

    def patterns(self) -> tuple[Pattern | None, ...]:
        return (self.path, self.content, self.content_unless)


@dataclass(frozen=True)
class Follow:
    """A call rule that follows a file from the command that makes it to the one that uses it."""

    #: Commands that make files: any of these steps; the files are their ``outputs`` (output
    #: redirections, ``curl -o``/``-O``, ``wget``'s downloads), their ``paths`` (the arguments
    #: the step's ``paths`` matched) or their ``values`` (of the step's ``values_of`` options).
    made_by: tuple[Step, ...]
    files: str
    #: A later command matching ``then`` uses one as its program (``run``), an argument
    #: (``argument``) or its first argument that is not an option (``script``: what a shell or
    #: an interpreter is given to run), compared by ``name`` (the last part of the path) or
    #: whole ``path``.
    then: Step
    used_as: str
    same: str

    def made(self, step: Step, cmd: Command) -> list[str]:
        if self.files == "paths":
            found = step.paths_of(cmd)
        elif self.files == "values":
            found = step.values(cmd)
        else:
            found = outputs(cmd)
        return [f.rsplit("/", 1)[-1] for f in found] if self.same == "name" else found

    def used(self, cmd: Command) -> list[str]:
        if self.used_as == "run":
            used = list(cmd.argv[:1])
        else:
            used = [a for a in cmd.args if not a.startswith("-")]
            if self.used_as == "script":
                used = used[:1]
        return [u.rsplit("/", 1)[-1] for u in used] if self.same == "name" else used


@dataclass(frozen=True)
class Rule:
    """One rule, compiled. ``source`` is the file it came from (for messages and listings)."""

    id: str
    title: str
    category: str
    level: Level
    kind: RuleKind
    source: str
    lowerable: bool = False
    attack: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    description: str = ""
    step: Step = Step()
    flags: frozenset[str] = frozenset()
    targets: str | None = None
    text: Pattern | None = None
    triggers: tuple[str, ...] = ()
    scripts: str = "any"
    sequence: tuple[Step, ...] = ()
    #: A sequence rule: each step matched by a program no earlier step matched.
    distinct_programs: bool = False
    #: A call rule: every step of ``all_of`` run in the call, or ``distinct`` different programs
    #: among the commands that match a step of ``any_of``.
    all_of: tuple[Step, ...] = ()
    any_of: tuple[Step, ...] = ()
    distinct: int = 0
    #: ``any_of``: or this many different families (``family``) among the matching commands.
    families: int = 0
    follow: Follow | None = None
    #: A write rule's test of each file written (the Write tool's, or a command's).
    write: WriteTest | None = None
    #: A fallback: a command or write rule that fires only when none of these rules fired on the
    #: same command (or write) before it (a secret merely read, when nothing said it was sent).
    unless_rules: frozenset[str] = frozenset()
    #: A text rule that reads the text as written, not lower-cased.
    case_sensitive: bool = False
    hits: tuple[_Case, ...] = ()
    misses: tuple[_Case, ...] = ()
    #: The rule as written (pattern sources, lists), for ``convguard rules show`` and the lint.
    spec: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def command_finding(self, cmd: Command, text: str | None = None) -> Finding | None:
        if not self.step.matches(cmd, text):
            return None
        if self.flags and not option_flags(cmd) & self.flags:
            return None
        targets: tuple[str, ...] = ()
        if self.targets == "hosts":
            targets = tuple(hosts_in(cmd.args))
        elif self.targets == "paths":
            targets = tuple(self.step.paths_of(cmd))
        return self._finding(f"{self.title}: {render(cmd)}", targets, cmd.program)

    def _finding(self, reason: str, targets: tuple[str, ...] = (), program: str = "") -> Finding:
        return Finding(
            self.category,
            self.level,
            reason,
            targets,
            program if self.targets else "",
            self.lowerable,
            self.id,
            self.attack,
        )


#: A program name with glob characters is read as each program it can name, up to this many.
GLOB_PROGRAMS = 8
_GLOB = re.compile(r"[?*\[]")


def _name(cmd: Command) -> str:
    return cmd.program.removesuffix(".exe")


@dataclass(frozen=True)
class RuleSet:
    """Loaded rules, indexed for matching: by program, by text scope, and the sequences."""

    rules: tuple[Rule, ...]
    by_program: dict[str, tuple[Rule, ...]]
    text_rules: dict[str, tuple[Rule, ...]]
    sequences: tuple[Rule, ...]
    calls: tuple[Rule, ...] = ()
    writes: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> RuleSet:
        rules = tuple(rules)
        index: dict[str, list[Rule]] = {}
        for rule in rules:
            if rule.kind == "command":
                for program in sorted(rule.step.programs):
                    index.setdefault(program, []).append(rule)
        return cls(
            rules=rules,
            by_program={k: tuple(v) for k, v in index.items()},
            text_rules={
                s: tuple(r for r in rules if r.kind == "text" and r.scripts == s)
                for s in ("any", "windows", "interpreters", "unparsed")
            },
            sequences=tuple(r for r in rules if r.kind == "sequence"),
            calls=tuple(r for r in rules if r.kind == "call"),
            writes=tuple(r for r in rules if r.kind == "write"),
        )

    def compile_all(self) -> RuleSet:
        """Compile every pattern now rather than on its first search (for a long-running process
        or a benchmark that would rather pay at start than on each program's first call)."""
        for rule in self.rules:
            steps = (rule.step, *rule.sequence, *rule.all_of, *rule.any_of)
            if rule.follow is not None:
                steps += (*rule.follow.made_by, rule.follow.then)
            extra = rule.write.patterns() if rule.write is not None else ()
            for pattern in (rule.text, *extra, *(p for s in steps for p in s.patterns())):
                if pattern is not None:
                    pattern.compiled()
        return self

    def ids(self) -> frozenset[str]:
        return frozenset(r.id for r in self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def command_findings(self, cmd: Command) -> list[Finding]:
        """The command rules of this command's program (and those of any program) that match it,
        the write rules on each file it writes, then the fallbacks (``unless_rules``) that what
        was found leaves to say."""
        name = _name(cmd)
        if name not in self.by_program and _GLOB.search(name):
            # "/bin/r? -rf /" runs rm: read it as each program the pattern can name.
            named = fnmatch.filter((k for k in self.by_program if k != "*"), name)
            if 0 < len(named) <= GLOB_PROGRAMS:
                return [
                    f
                    for k in named
                    for f in self.command_findings(dataclasses.replace(cmd, argv=(k, *cmd.args)))
                ]
        own = () if name == "*" else self.by_program.get(name, ())
        rules = own + self.by_program.get("*", ())
        writes = file_writes(cmd) if self.writes else []
        if not rules and not writes:
            return []
        text = " ".join(cmd.args).lower()
        out = []
        for rule in rules:
            if rule.unless_rules:
                continue
            found = rule.command_finding(cmd, text)
            if found is not None:
                out.append(found)
        for path, content, how in writes:
            out += self.write_findings(path, content, how=how, cwd=cmd.cwd)
        for rule in rules:
            if rule.unless_rules and not any(f.rule_id in rule.unless_rules for f in out):
                found = rule.command_finding(cmd, text)
                if found is not None:
                    out.append(found)
        return out

    def write_findings(
        self, path: str, content: str | None, *, how: str, cwd: str | None = None
    ) -> list[Finding]:
        """The write rules that a write of ``content`` (``None``: not known) to ``path`` matches,
        a relative path also read from the working folder ``cwd`` when known: first those that
        are not fallbacks, then each fallback none of whose rules fired."""
        out: list[Finding] = []
        for fallbacks in (False, True):
            for rule in self.writes:
                if bool(rule.unless_rules) != fallbacks or rule.write is None:
                    continue
                if any(f.rule_id in rule.unless_rules for f in out):
                    continue
                if rule.write.matches(path, content, cwd):
                    out.append(rule._finding(f"{rule.title} ({how}): {path}"))
        return out

    def text_findings(self, text: str, *, scripts: str = "any") -> list[Finding]:
        """The text rules (``scripts``: ``any``, ``windows``, ``interpreters`` or ``unparsed``)
        whose pattern the text matches."""
        low = text.lower()
        # lower() keeps offsets unless a character folds to several (``İ``): then quote ``low``
        quoted = text if len(low) == len(text) else low
        out = []
        for rule in self.text_rules.get(scripts, ()):
            if rule.text is None or not any(t in low for t in rule.triggers):
                continue
            match = rule.text.search(text if rule.case_sensitive else low)
            if match:
                found = (text if rule.case_sensitive else quoted)[match.start() : match.end()][:80]
                out.append(rule._finding(f"{rule.title}: {found!r}"))
        return out

    def call_findings(self, commands: Sequence[Command]) -> list[Finding]:
        """Call rules whose steps this call's commands make up together."""
        out = []
        for rule in self.calls:
            if rule.all_of:
                found = [next((c for c in commands if s.matches(c)), None) for s in rule.all_of]
                last = found[-1]
                if last is not None and all(c is not None for c in found):
                    out.append(rule._finding(f"{rule.title}: {render(last)}"))
            elif rule.follow is not None:
                out += self._followed(rule, rule.follow, commands)
            else:
                keys: dict[str, str] = {}
                for c in commands:
                    for s in rule.any_of:
                        if s.matches(c):
                            keys.update(dict.fromkeys(s.keys(c), s.family))
                if (rule.distinct and len(keys) >= rule.distinct) or (
                    rule.families and len(set(keys.values())) >= rule.families
                ):
                    out.append(rule._finding(f"{rule.title}: {', '.join(sorted(keys)[:6])}"))
        return out

    @staticmethod
    def _followed(rule: Rule, follow: Follow, commands: Sequence[Command]) -> list[Finding]:
        made: set[str] = set()
        out = []
        for c in commands:
            for s in follow.made_by:
                if s.matches(c):
                    made.update(follow.made(s, c))
            if made and follow.then.matches(c) and made.intersection(follow.used(c)):
                out.append(rule._finding(f"{rule.title}: {render(c)}"))
        return out

    def sequence_findings(
        self, now: Sequence[Command], earlier: Callable[[], Sequence[Command]]
    ) -> list[Finding]:
        """Sequence rules whose steps run in order over the session's earlier commands then
        ``now``, the last step in ``now``. ``earlier`` is called (once) only when some command of
        ``now`` is the last step of a sequence rule: otherwise nothing can fire, whatever came
        before, so most calls never read the session's history."""
        ends = [
            (rule, i)
            for rule in self.sequences
            for i, cmd in enumerate(now)
            if rule.sequence[-1].matches(cmd)
        ]
        if not ends:
            return []
        chain = [*earlier(), *now]
        offset = len(chain) - len(now)
        out, done = [], set()
        for rule, i in ends:
            if id(rule) in done:
                continue
            *steps, _ = rule.sequence
            end, at = offset + i, 0
            # with distinct_programs, the last step's program may not stand for an earlier one
            used = {chain[end].program} if rule.distinct_programs else set()
            for cmd in chain[:end]:
                if at < len(steps) and cmd.program not in used and steps[at].matches(cmd):
                    at += 1
                    if rule.distinct_programs:
                        used.add(cmd.program)
            if at == len(steps):
                out.append(rule._finding(f"{rule.title}: {render(chain[end])}"))
                done.add(id(rule))
        return out


# --- loading ----------------------------------------------------------------------------------


def _pattern(pattern: str | None, where: str, check: bool) -> Pattern | None:
    if pattern is None:
        return None
    lazy = Pattern(pattern)
    if check:
        try:
            lazy.compiled()
        except re.error as exc:
            raise InvalidInput(f"{where}: invalid regular expression {pattern!r}: {exc}") from exc
    return lazy


def _predicate(name: str | None, where: str) -> Predicate | None:
    if name is None:
        return None
    if name not in PREDICATES:
        raise InvalidInput(
            f"{where}: unknown predicate {name!r}; the named predicates are "
            f"{', '.join(sorted(PREDICATES))}"
        )
    return PREDICATES[name]


def _path_kind(name: str, where: str) -> PathTest:
    if name not in PATH_KINDS:
        raise InvalidInput(
            f"{where}: unknown kind of path {name!r}; the kinds are {', '.join(sorted(PATH_KINDS))}"
        )
    return PATH_KINDS[name]


def _step(spec: dict[str, Any], where: str, check: bool) -> Step:
    def pattern(name: str) -> Pattern | None:
        return _pattern(spec.get(name), f"{where}.{name}", check)

    def kinds(name: str) -> tuple[PathTest, ...]:
        return tuple(_path_kind(k, f"{where}.{name}") for k in spec.get(name, ()))

    return Step(
        programs=frozenset(p.lower().removesuffix(".exe") for p in spec.get("programs", ())),
        command=pattern("command"),
        wrappers=frozenset(spec.get("wrappers", ())),
        process_name=pattern("process_name"),
        args=pattern("args"),
        unless=pattern("unless"),
        case_sensitive=spec.get("case_sensitive", False),
        paths=pattern("paths"),
        path_is=kinds("path_is"),
        path_is_not=kinds("path_is_not"),
        destination=pattern("destination"),
        sources=pattern("sources"),
        sources_are=kinds("sources_are"),
        upstream=frozenset(spec.get("upstream", ())),
        downstream=frozenset(spec.get("downstream", ())),
        ends_pipe=spec.get("ends_pipe", False),
        redirects=pattern("redirects"),
        stdin=pattern("stdin"),
        via=pattern("via"),
        assignments=pattern("assignments"),
        predicate=_predicate(spec.get("predicate"), f"{where}.predicate"),
        not_programs=frozenset(p.lower() for p in spec.get("not_programs", ())),
        alone=spec.get("alone", False),
        pipes_not_into=frozenset(spec.get("pipes_not_into", ())),
        inputs=pattern("inputs"),
        inputs_are=kinds("inputs_are"),
        words=pattern("words"),
        words_are=kinds("words_are"),
        values_of=frozenset(spec.get("values_of", ())),
        value=pattern("value"),
        value_file=pattern("value_file"),
        value_file_is=kinds("value_file_is"),
        value_file_is_not=kinds("value_file_is_not"),
        key=tuple(spec.get("key", ("program",))),
        family=spec.get("family", ""),
    )


def _write_test(spec: dict[str, Any], where: str, check: bool) -> WriteTest:
    def pattern(name: str) -> Pattern | None:
        return _pattern(spec.get(name), f"{where}.{name}", check)

    def kinds(name: str) -> tuple[PathTest, ...]:
        return tuple(_path_kind(k, f"{where}.{name}") for k in spec.get(name, ()))

    return WriteTest(
        path=pattern("path"),
        path_is=kinds("path_is"),
        content=pattern("content"),
        content_unless=pattern("content_unless"),
        emptied=spec.get("emptied", False),
    )


def _rule(spec: dict[str, Any], source: str, *, check: bool) -> Rule:
    """One rule from its plain data (a validated file's, or the cache's); ``check`` compiles its
    patterns now, to report an invalid one (the cache only holds rules that passed)."""
    where = f"{source}: rule {spec['id']!r}: match"
    m = spec["match"]
    kinds = [
        k
        for k, on in (
            ("text", m.get("text")),
            ("sequence", m.get("sequence")),
            ("command", m.get("programs")),
            ("call", m.get("within_call") is not None),
            ("write", m.get("write") is not None),
        )
        if on
    ]
    if len(kinds) != 1:
        raise InvalidInput(
            f"{where}: give exactly one of 'programs' (a command rule), 'text' (a text rule), "
            f"'sequence' (a sequence rule), 'within_call' (a call rule) or 'write' (a write "
            f"rule); got {kinds or 'none'}"
        )
    kind: RuleKind = kinds[0]  # type: ignore[assignment]
    if kind == "text" and not m.get("triggers"):
        raise InvalidInput(f"{where}.triggers: a text rule needs trigger words")
    sequence = m.get("sequence", ())
    if kind == "sequence" and len(sequence) < 2:
        raise InvalidInput(f"{where}.sequence: a sequence needs at least two steps")
    if m.get("distinct_programs") and kind != "sequence":
        raise InvalidInput(f"{where}.distinct_programs: only a sequence rule counts programs")
    call = m.get("within_call") or {}
    all_of, any_of = call.get("all_of", ()), call.get("any_of", ())
    distinct, families = call.get("distinct", 0), call.get("families", 0)
    follow = call.get("follow")
    if kind == "call" and not (
        (len(all_of) >= 2 and not any_of and not distinct and not families and not follow)
        or (any_of and (distinct >= 2 or families >= 2) and not all_of and not follow)
        or (follow and not any_of and not all_of and not distinct and not families)
    ):
        raise InvalidInput(
            f"{where}.within_call: give 'all_of' (at least two steps), 'any_of' with "
            "'distinct' (at least two keys) or 'families' (at least two), or 'follow'"
        )
    if m.get("unless_rules") and kind not in ("command", "write"):
        raise InvalidInput(
            f"{where}.unless_rules: only a command or a write rule can be a fallback"
        )
    tests = spec["tests"]
    return Rule(
        id=spec["id"],
        title=spec["title"],
        category=spec["category"],
        level=spec["level"],
        kind=kind,
        source=source,
        lowerable=spec.get("lowerable", False),
        attack=tuple(spec.get("attack", ())),
        references=tuple(spec.get("references", ())),
        description=spec.get("description", ""),
        step=_step(m, where, check) if kind == "command" else Step(),
        flags=frozenset(m.get("flags", ())),
        targets=m.get("targets"),
        text=_pattern(m.get("text") or None, f"{where}.text", check),
        triggers=tuple(t.lower() for t in m.get("triggers", ())),
        scripts=m.get("scripts", "any"),
        sequence=tuple(_step(s, f"{where}.sequence[{i}]", check) for i, s in enumerate(sequence)),
        distinct_programs=bool(m.get("distinct_programs", False)),
        all_of=tuple(
            _step(s, f"{where}.within_call.all_of[{i}]", check) for i, s in enumerate(all_of)
        ),
        any_of=tuple(
            _step(s, f"{where}.within_call.any_of[{i}]", check) for i, s in enumerate(any_of)
        ),
        distinct=distinct,
        families=families,
        follow=None
        if not follow
        else Follow(
            made_by=tuple(
                _step(s, f"{where}.within_call.follow.made_by[{i}]", check)
                for i, s in enumerate(follow["made_by"])
            ),
            files=follow.get("files", "outputs"),
            then=_step(follow["then"], f"{where}.within_call.follow.then", check),
            used_as=follow.get("used_as", "run"),
            same=follow.get("same", "name"),
        ),
        write=_write_test(m["write"], f"{where}.write", check) if kind == "write" else None,
        unless_rules=frozenset(m.get("unless_rules", ())),
        case_sensitive=kind == "text" and m.get("case_sensitive", False),
        hits=tuple(tests["hit"]),
        misses=tuple(tests["miss"]),
        spec=spec,
    )


def _read(path: Path, source: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read rule file {source!r}: {exc}") from exc


def _parse(text: str, source: str) -> list[dict[str, Any]]:
    """The rules of one file's text as validated plain data (YAML and pydantic load here only)."""
    import yaml

    from convguard.agent.schema import validated_rules

    # libyaml's safe loader when installed, else PyYAML's
    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"cannot read rule file {source!r}: {exc}") from exc
    return validated_rules(document, source)


def load_file(path: Path, label: str | None = None) -> list[Rule]:
    """The rules of one YAML file; any error names the file, the rule id and the field."""
    source = label or str(path)
    return [_rule(spec, source, check=True) for spec in _parse(_read(path, source), source)]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def _sources(folders: Iterable[str | Path], builtin: bool) -> list[tuple[str, str]]:
    """``(label, text)`` of every rule file: the shipped ones first, then each folder's."""
    sources: list[tuple[str, str]] = []
    if builtin:
        root = resources.files("convguard.agent") / "rules"
        with resources.as_file(root) as path:
            for file in _files(Path(path)):
                label = f"rules/{file.relative_to(path).as_posix()}"
                sources.append((label, _read(file, label)))
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            raise InvalidInput(
                f"rule folder {str(folder)!r} is not a folder; {RULES_ENV} names folders of "
                "*.yaml rule files"
            )
        sources += [(str(file), _read(file, str(file))) for file in _files(path)]
    return sources


def _rule_set(specs: Any, *, check: bool) -> RuleSet:
    rules = [_rule(spec, source, check=check) for source, spec in specs]
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.id in seen:
            raise InvalidInput(
                f"{rule.source}: rule {rule.id!r}: field 'id': already defined in {seen[rule.id]}"
            )
        seen[rule.id] = rule.source
    for rule in rules:
        unknown = sorted(rule.unless_rules - seen.keys())
        if unknown:
            raise InvalidInput(
                f"{rule.source}: rule {rule.id!r}: field 'match.unless_rules': unknown rule "
                f"id {unknown[0]!r}"
            )
    return RuleSet.of(rules)


def load_rules(folders: Iterable[str | Path] = (), *, builtin: bool = True) -> RuleSet:
    """The shipped rules (``builtin``) plus every ``*.yaml`` under ``folders``; ids must be
    unique across them all (an operator's rule cannot silently replace a shipped one).

    The validated rules are kept in the compiled cache (:mod:`convguard.agent.cache`) under a key
    that hashes every file's label and content, so the next process reads them back as plain data
    (no YAML, no pydantic) and compiles each pattern on its first search; any change to any file,
    a file added or removed, or another folder list is a different key, and the files are read
    again. Only a rule set that loaded without error is ever cached.
    """
    names = [str(f) for f in folders]
    sources = _sources(names, builtin)
    key = compiled_cache.fingerprint(
        _CACHE_FORMAT,
        compiled_cache.code("engine.py", "schema.py"),
        *(part for source in sources for part in source),
    )
    # one entry per folder list: an edited file replaces its entry instead of adding one
    slot = hashlib.sha256("\0".join([str(builtin), *names]).encode()).hexdigest()[:16]
    name = f"rules-{slot}"
    cached = compiled_cache.read(name, key)
    if cached is not None:
        try:
            return _rule_set(cached, check=False)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # an entry damaged under the right key: rebuilt from the files below
    specs = [[label, spec] for label, text in sources for spec in _parse(text, label)]
    rules = _rule_set(specs, check=True)
    compiled_cache.write(name, key, specs)
    return rules


@cache
def default_rules() -> RuleSet:
    """The shipped rules plus the folders named by ``CONVGUARD_AGENT_RULES``, loaded on first
    use and kept (a deployment restarts to pick up changed rule files)."""
    extra = os.environ.get(RULES_ENV, "")
    return load_rules([p for p in extra.split(os.pathsep) if p])

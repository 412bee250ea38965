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

Three kinds of rule, by what ``match`` holds:

- **command** rules (``programs``, optionally ``args`` — a regular expression searched in the
  lower-cased arguments joined by spaces —, ``unless`` — one that must not be found there
  (a neighbouring rule's, so that only one of them fires; ``case_sensitive: true`` reads the
  arguments as written) —, ``flags`` — any of these options,
  bundled short options counted letter by letter — and ``predicate``, a named Python check from
  :mod:`convguard.agent.predicates`); ``targets: hosts`` hands the hosts among the arguments to
  the scope, which may authorise them;
- **text** rules (``text``, a regular expression searched in the lower-cased text of code, typed
  text, written files, or with ``scripts: windows`` only PowerShell and cmd scripts); every text
  rule names ``triggers``, literal words one of which any match contains, so the expression runs
  only on texts that hold one (the cheap test that spares most texts most expressions);
- **sequence** rules (``sequence``: steps, each with ``programs``/``args``/``predicate``),
  matched in order over the session's recent commands and this call's, the last step in this call.

Every rule carries its own ``tests`` (command lines, or for a sequence a list of tool calls),
run by the test suite and by ``convguard rules test``. Loading validates everything and names
the file, the rule id and the field of any error (:mod:`convguard.agent.schema`); rules that
loaded are kept in the compiled cache (:mod:`convguard.agent.cache`), so that the next process —
the Claude Code hook is one per tool call — reads them back without YAML or pydantic, and each
pattern is compiled on its first search. Rules are indexed by program, so a command costs only
the rules of its own program.
"""

from __future__ import annotations

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
from convguard.agent.findings import Finding, Level, option_flags, render
from convguard.agent.paths import hosts_in
from convguard.agent.predicates import PREDICATES, Predicate
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
RuleKind = Literal["command", "text", "sequence"]

_Case = str | list[str]
#: The layout of a cached rule set (raise it when :func:`_rule` reads the plain data differently).
_CACHE_FORMAT = "rules-1"


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
    args: Pattern | None = None
    unless: Pattern | None = None
    #: Match the arguments as written (``-D`` is not ``-d``), not lower-cased.
    case_sensitive: bool = False
    predicate: Predicate | None = None

    def matches(self, cmd: Command, text: str | None = None) -> bool:
        """Whether ``cmd`` is this step; ``text`` is its lower-cased arguments when known."""
        if self.programs and _name(cmd) not in self.programs:
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
    hits: tuple[_Case, ...] = ()
    misses: tuple[_Case, ...] = ()
    #: The rule as written (pattern sources, lists), for ``convguard rules show`` and the lint.
    spec: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def command_finding(self, cmd: Command, text: str | None = None) -> Finding | None:
        if not self.step.matches(cmd, text):
            return None
        if self.flags and not option_flags(cmd) & self.flags:
            return None
        targets = tuple(hosts_in(cmd.args)) if self.targets == "hosts" else ()
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


def _name(cmd: Command) -> str:
    return cmd.program.removesuffix(".exe")


@dataclass(frozen=True)
class RuleSet:
    """Loaded rules, indexed for matching: by program, by text scope, and the sequences."""

    rules: tuple[Rule, ...]
    by_program: dict[str, tuple[Rule, ...]]
    text_rules: dict[str, tuple[Rule, ...]]
    sequences: tuple[Rule, ...]

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
                for s in ("any", "windows")
            },
            sequences=tuple(r for r in rules if r.kind == "sequence"),
        )

    def compile_all(self) -> RuleSet:
        """Compile every pattern now rather than on its first search (for a long-running process
        or a benchmark that would rather pay at start than on each program's first call)."""
        for rule in self.rules:
            steps = (rule.step, *rule.sequence)
            for pattern in (rule.text, *(p for s in steps for p in (s.args, s.unless))):
                if pattern is not None:
                    pattern.compiled()
        return self

    def ids(self) -> frozenset[str]:
        return frozenset(r.id for r in self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def command_findings(self, cmd: Command) -> list[Finding]:
        """The command rules of this command's program that match it."""
        rules = self.by_program.get(_name(cmd), ())
        if not rules:
            return []
        text = " ".join(cmd.args).lower()
        out = []
        for rule in rules:
            found = rule.command_finding(cmd, text)
            if found is not None:
                out.append(found)
        return out

    def text_findings(self, text: str, *, scripts: str = "any") -> list[Finding]:
        """The text rules (``scripts``: ``any`` or ``windows``) whose pattern the text matches."""
        low = text.lower()
        # lower() keeps offsets unless a character folds to several (``İ``): then quote ``low``
        quoted = text if len(low) == len(text) else low
        out = []
        for rule in self.text_rules.get(scripts, ()):
            if rule.text is None or not any(t in low for t in rule.triggers):
                continue
            match = rule.text.search(low)
            if match:
                found = quoted[match.start() : match.end()][:80]
                out.append(rule._finding(f"{rule.title}: {found!r}"))
        return out

    def sequence_findings(
        self, earlier: Sequence[Command], now: Sequence[Command]
    ) -> list[Finding]:
        """Sequence rules whose steps run in order over ``earlier`` then ``now``, the last step
        in ``now``."""
        out = []
        chain = [*earlier, *now]
        for rule in self.sequences:
            *before, last = rule.sequence
            for end in range(len(earlier), len(chain)):
                if not last.matches(chain[end]):
                    continue
                steps, at = list(before), 0
                for cmd in chain[:end]:
                    if at < len(steps) and steps[at].matches(cmd):
                        at += 1
                if at == len(steps):
                    out.append(rule._finding(f"{rule.title}: {render(chain[end])}"))
                    break
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


def _step(spec: dict[str, Any], where: str, check: bool) -> Step:
    return Step(
        programs=frozenset(p.lower().removesuffix(".exe") for p in spec.get("programs", ())),
        args=_pattern(spec.get("args"), f"{where}.args", check),
        unless=_pattern(spec.get("unless"), f"{where}.unless", check),
        case_sensitive=spec.get("case_sensitive", False),
        predicate=_predicate(spec.get("predicate"), f"{where}.predicate"),
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
        )
        if on
    ]
    if len(kinds) != 1:
        raise InvalidInput(
            f"{where}: give exactly one of 'programs' (a command rule), 'text' (a text rule) or "
            f"'sequence' (a sequence rule); got {kinds or 'none'}"
        )
    kind: RuleKind = kinds[0]  # type: ignore[assignment]
    if kind == "text" and not m.get("triggers"):
        raise InvalidInput(f"{where}.triggers: a text rule needs trigger words")
    sequence = m.get("sequence", ())
    if kind == "sequence" and len(sequence) < 2:
        raise InvalidInput(f"{where}.sequence: a sequence needs at least two steps")
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

"""The agent tool guard (B9): a coding or computer-use agent's tool call in, allow/ask/deny out.

:func:`assess_tool_call` reads what a tool call would *do* and rules on that:

- shell commands (``Bash``, ``shell``, ``PowerShell``, ``cmd`` …; each tool's text read as its
  shell reads it, with PowerShell's backtick or cmd's caret escapes) are parsed, not matched as
  flat strings:
  pipelines, lists, subshells, ``bash -c``, ``eval``, here-documents, variables and decoded
  payloads are unpacked (:mod:`convguard.agent.shell`) and every resulting command is judged
  by its program and arguments: the YAML rules (:mod:`convguard.agent.engine`, indexed by
  program), the write rules on every file a command writes (redirections, ``tee``, ``cp`` …),
  and the call rules on what one call's commands add up to; Windows scripts and other code are
  also read by the text rules, and the session's earlier commands (``history``) by the sequence
  rules;
- a shell call that no rule flags is scored by a small learned model over its command tokens
  (:mod:`convguard.agent.model`: one model for POSIX shells, one for PowerShell and cmd); a high
  score asks, never denies;
- code (``python -c``, a code-interpreter tool, a script written to disk) is read through its
  syntax tree when it is Python, and through attack indicators otherwise;
- file writes and edits are judged by the write rules on their path (persistence locations,
  credential stores, logs, disks) and content, and their content as code;
- addresses (``WebFetch``, URLs typed by a computer-use agent) on their scheme and host;
- computer-use actions (Anthropic's ``computer`` tool) on what they type and the keys they press.

The working folder (``cwd``), when the caller knows it, places relative paths: a relative path of
a shell command or a file tool is also judged as the absolute path it names there when that is a
location the rules single out (:func:`~convguard.agent.paths.places`), so ``rm -rf .`` in the home
is denied as ``rm -rf ~`` is, and ``cat id_rsa`` in ``~/.ssh`` asked as ``cat ~/.ssh/id_rsa`` is.

Categories: ``malware``, ``credential_access``, ``network_attack``, ``denial_of_service``,
``persistence_evasion``, ``destructive``, ``exfiltration``. Every finding names its rule
(``rule_id``: a YAML rule's id, ``shell.*``, ``address.*``, ``code.python``,
``classifier.cyberattack``, ``model.command-tokens``); a rule id in the scope's ``disabled`` set
drops its findings.

Invariants:
- the verdict is the most severe level among the findings that remain after scope and context;
  no finding means ``allow`` (ordinary commands are never listed, only dangerous ones);
- a :class:`Scope` is the only thing that authorises a scan or attack tool, and only when every
  target it names lies inside the scope's hosts or networks; loopback counts as in scope for scans;
- the conversation context can lower an ``ask`` that a user explicitly requested (``rm -rf
  ~/old`` after "delete ~/old") and can raise every finding to ``deny`` (and network actions to
  ``ask``) when the user asked to attack a third party; it never lowers a ``deny`` and never
  authorises a network attack;
- nothing is executed: commands and code are only parsed.

The free-text classifier (:class:`~convguard.assess.linear.LinearClassifier`, category
``cyberattack``) is one signal for text that is not a command — a code request, typed text, the
context — loaded on first use; the verdict comes mainly from parsing and rules.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from convguard.agent.code import python_report
from convguard.agent.engine import RuleSet, default_rules
from convguard.agent.findings import CATEGORIES, Finding, render
from convguard.agent.model import (
    CommandModel,
    Platform,
    call_tokens,
    default_model,
    default_windows_model,
)
from convguard.agent.paths import fold_home, hosts_in, places, secret_path
from convguard.agent.scope import Scope
from convguard.agent.shell import (
    POWERSHELLS,
    Command,
    Dialect,
    Parsed,
    parse_script,
    parse_written,
)
from convguard.errors import InvalidInput

if TYPE_CHECKING:  # the text classifier's module loads only when a call needs it
    from convguard.assess.types import Classifier

__all__ = [
    "HISTORY_CACHE",
    "HISTORY_LIMIT",
    "ToolVerdict",
    "Verdict",
    "assess_tool_call",
    "parsed_commands",
]

Verdict = Literal["allow", "ask", "deny"]
CLASSIFIER_THRESHOLD = 0.5
_RANK: dict[str, int] = {"allow": 0, "ask": 1, "deny": 2}
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
#: How many earlier shell commands of the session (``history``) the sequence rules look at, and
#: the longest one read.
HISTORY_LIMIT = 20
_HISTORY_CHARS = 4000
#: How many earlier commands' parses are kept between calls: a session's history moves by one
#: command a call, so a call that reads it parses only the commands no earlier call read (room for
#: several sessions at once).
HISTORY_CACHE = 16 * HISTORY_LIMIT


@dataclass(frozen=True)
class ToolVerdict:
    verdict: Verdict
    reasons: tuple[str, ...]
    categories: tuple[str, ...]
    tool: str
    #: The commands seen after unpacking (each rendered as its words), for the record.
    commands: tuple[str, ...] = ()
    elapsed_ms: float = 0.0
    #: The findings behind the verdict, most severe first, each naming its rule and techniques.
    findings: tuple[Finding, ...] = ()

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules that decided the verdict, most severe first, once each."""
        return tuple(dict.fromkeys(f.rule_id for f in self.findings))

    @property
    def attack(self) -> tuple[str, ...]:
        """The ATT&CK techniques of those rules, once each."""
        return tuple(dict.fromkeys(t for f in self.findings for t in f.attack))

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "categories": list(self.categories),
            "rule_ids": list(self.rule_ids),
            "attack": list(self.attack),
            "findings": [f.to_dict() for f in self.findings],
            "tool": self.tool,
            "commands": list(self.commands),
            "elapsed_ms": round(self.elapsed_ms, 4),
        }


@dataclass
class _Seen:
    rules: RuleSet
    #: The folder the call runs in, when known (POSIX or Windows, absolute).
    cwd: str | None = None
    findings: list[Finding] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Every parsed command (for the call-level rules), and those parsed as POSIX shell or as
    #: PowerShell/cmd (for the command model of that platform).
    parsed: list[Command] = field(default_factory=list)
    posix: list[Command] = field(default_factory=list)
    windows: list[Command] = field(default_factory=list)


def _tagged(findings: Sequence[Finding], rule_id: str) -> list[Finding]:
    """Findings of a rule written in Python, named by ``rule_id`` unless they name themselves."""
    return [f if f.rule_id else dataclasses.replace(f, rule_id=rule_id) for f in findings]


def _shell(seen: _Seen, script: str, *, dialect: Dialect = "posix", depth: int = 0) -> None:
    parsed = parse_script(script, dialect=dialect, cwd=seen.cwd)
    _parsed(seen, parsed, windows=dialect != "posix", depth=depth)


def _parsed(seen: _Seen, parsed: Parsed, *, windows: bool = False, depth: int = 0) -> None:
    """Judge what a parsed script runs: each command, the notes of what could not be unpacked,
    and the code it hands to other interpreters."""
    seen.parsed.extend(parsed.commands)
    (seen.windows if windows else seen.posix).extend(parsed.commands)
    for cmd in parsed.commands:
        if cmd.argv:
            seen.commands.append(render(cmd))
        seen.findings.extend(seen.rules.command_findings(cmd))
        if cmd.decoded and cmd.argv:
            seen.findings.append(
                Finding(
                    "persistence_evasion",
                    "ask",
                    f"runs a decoded payload: {render(cmd)}",
                    rule_id="shell.decoded-payload",
                    attack=("T1140",),
                )
            )
    for note in parsed.notes:
        if note == "fork bomb":
            seen.findings.append(
                Finding(
                    "denial_of_service",
                    "deny",
                    "fork bomb",
                    rule_id="shell.fork-bomb",
                    attack=("T1499.001",),
                )
            )
        elif note == "encoded powershell command":
            seen.findings.append(
                Finding(
                    "persistence_evasion",
                    "ask",
                    "runs an encoded PowerShell command",
                    rule_id="shell.encoded-powershell",
                    attack=("T1027.010", "T1059.001"),
                )
            )
        else:
            seen.findings.append(
                Finding(
                    "persistence_evasion",
                    "ask",
                    f"cannot unpack: {note}",
                    rule_id="shell.cannot-unpack",
                    attack=("T1027",),
                )
            )
    for language, source in parsed.code:
        _code(seen, source, language=language, depth=depth + 1)


def _code(seen: _Seen, source: str, *, language: str = "", depth: int = 0) -> None:
    if depth > 3:
        return
    report = python_report(source) if language in ("", "python") else None
    if report is not None:
        seen.findings.extend(_tagged(report.findings, "code.python"))
        for script in report.scripts:
            _shell(seen, script, depth=depth)
    elif language in ("sh", "bash", "shell", "zsh"):
        _shell(seen, source, depth=depth)
    elif language in ("powershell", "pwsh", "cmd", "bat"):
        dialect: Dialect = "cmd" if language in ("cmd", "bat") else "powershell"
        _shell(seen, source, dialect=dialect, depth=depth)
        seen.findings.extend(seen.rules.text_findings(source, scripts="windows"))
    elif language not in ("", "python"):  # perl, ruby, php, lua, node …
        seen.findings.extend(seen.rules.text_findings(source, scripts="interpreters"))
    seen.findings.extend(seen.rules.text_findings(source))
    if report is None:
        seen.findings.extend(seen.rules.text_findings(source, scripts="unparsed"))
    if report is None and language not in ("sh", "bash", "shell", "zsh"):
        seen.texts.append(source)


def _url(seen: _Seen, url: str) -> None:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "file" and secret_path(parts.path):
        seen.findings.append(
            Finding(
                "credential_access",
                "deny",
                f"opens a credential store: {url}",
                rule_id="address.credential-store",
                attack=("T1552.001",),
            )
        )
    elif scheme in ("javascript", "data", "vbscript"):
        seen.findings.append(
            Finding(
                "malware",
                "ask",
                f"opens a script address: {url[:80]}",
                rule_id="address.script-scheme",
                attack=("T1059.007",),
            )
        )
    host = (parts.hostname or "").lower()
    if host in ("169.254.169.254", "metadata.google.internal", "100.100.100.200"):
        seen.findings.append(
            Finding(
                "credential_access",
                "ask",
                f"reads cloud metadata: {url}",
                rule_id="address.cloud-metadata",
                attack=("T1552.005",),
            )
        )
    if re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN|ssh-(?:rsa|ed25519) |passw(?:or)?d=", url):
        seen.findings.append(
            Finding(
                "exfiltration",
                "deny",
                "sends a secret in an address",
                rule_id="address.secret-in-url",
                attack=("T1048",),
            )
        )


_SHELLISH = re.compile(r"^\s*(?:sudo\s+)?[\w./-]+(?:\s|$)|[|;&<>`$]")


def _typed(seen: _Seen, text: str) -> None:
    """Text a computer-use agent types: a command line if it reads as one, and always text."""
    for url in re.findall(r"(?:https?|file|javascript)://?\S+", text):
        _url(seen, url)
    if _SHELLISH.search(text):
        # typed into whatever window has the focus: a terminal there has a folder of its own
        _parsed(seen, parse_script(text))
    seen.findings.extend(seen.rules.text_findings(text))
    seen.texts.append(text)


def _write(seen: _Seen, path: str, content: str) -> None:
    seen.findings.extend(
        seen.rules.write_findings(path, content or None, how="write", cwd=seen.cwd)
    )
    # a cron table's jobs, as a shell write reads them
    scheduled = parse_written(path, content, cwd=seen.cwd)
    if scheduled.commands:
        _parsed(seen, scheduled)
    elif path.endswith((".py", ".pyw")):
        _code(seen, content, language="python")
    elif path.endswith((".sh", ".bash", ".zsh")) or content.startswith("#!"):
        _shell(seen, content)
    elif path.endswith((".ps1", ".bat", ".cmd")):
        _shell(seen, content, dialect="powershell" if path.endswith(".ps1") else "cmd")
    else:
        seen.findings.extend(seen.rules.text_findings(content))


def _str(arguments: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = arguments.get(key)
        if isinstance(value, str):
            return value
    return None


# The shell a tool's commands are read by: cmd's tool, PowerShell's, or a Windows shell not named.
_TOOL_DIALECTS: dict[str, Dialect] = {
    **dict.fromkeys(POWERSHELLS, "powershell"),
    "cmd": "cmd",
    "windows_shell": "windows",
}


def _tool_shell(seen: _Seen, tool: str, arguments: Mapping[str, Any]) -> None:
    command = _str(arguments, "command", "cmd", "script", "input")
    if command is None:
        raise InvalidInput(f"tool {tool!r} needs a string 'command' argument; got {arguments!r}")
    dialect = _TOOL_DIALECTS.get(tool.lower(), "posix")
    _shell(seen, command, dialect=dialect)
    if dialect != "posix":
        seen.findings.extend(seen.rules.text_findings(command))
        seen.findings.extend(seen.rules.text_findings(command, scripts="windows"))


def _tool_code(seen: _Seen, tool: str, arguments: Mapping[str, Any]) -> None:
    code = _str(arguments, "code", "source", "script", "input", "command")
    if code is None:
        raise InvalidInput(f"tool {tool!r} needs a string 'code' argument; got {arguments!r}")
    language = (_str(arguments, "language", "lang") or "").lower()
    _code(seen, code, language=language)


def _tool_write(seen: _Seen, tool: str, arguments: Mapping[str, Any]) -> None:
    path = _str(arguments, "file_path", "path", "notebook_path", "filename")
    if path is None:
        raise InvalidInput(f"tool {tool!r} needs a string 'file_path' argument; got {arguments!r}")
    pieces = [_str(arguments, "content", "new_string", "file_text", "new_str", "new_source")]
    edits = arguments.get("edits")
    if isinstance(edits, list):
        pieces += [e.get("new_string") for e in edits if isinstance(e, Mapping)]
    _write(seen, path, "\n".join(p for p in pieces if isinstance(p, str)))


def _tool_read(seen: _Seen, tool: str, arguments: Mapping[str, Any]) -> None:
    path = _str(arguments, "file_path", "path") or ""
    if any(secret_path(p) for p in places(path, seen.cwd)):
        seen.findings.append(
            Finding(
                "credential_access",
                "ask",
                f"reads a credential store: {path}",
                rule_id="read.credential-store",
                attack=("T1552.001",),
            )
        )


def _tool_fetch(seen: _Seen, tool: str, arguments: Mapping[str, Any]) -> None:
    url = _str(arguments, "url", "uri", "address")
    if url is None:
        raise InvalidInput(f"tool {tool!r} needs a string 'url' argument; got {arguments!r}")
    _url(seen, url)


def _tool_computer(seen: _Seen, tool: str, arguments: Mapping[str, Any]) -> None:
    action = _str(arguments, "action") or ""
    if action in ("type", "key", "hold_key"):
        text = _str(arguments, "text") or ""
        if action == "type":
            _typed(seen, text)
    elif action in ("open", "open_url", "navigate", "goto"):
        _url(seen, _str(arguments, "url", "text") or "")


def _tool_other(seen: _Seen, tool: str, arguments: Mapping[str, Any]) -> None:
    if isinstance(arguments.get("command"), str):
        _tool_shell(seen, tool, arguments)
    elif isinstance(arguments.get("code"), str):
        _tool_code(seen, tool, arguments)
    elif isinstance(arguments.get("url"), str):
        _tool_fetch(seen, tool, arguments)
    else:
        text = " ".join(v for v in arguments.values() if isinstance(v, str))
        if text:
            seen.findings.extend(seen.rules.text_findings(text))
            seen.texts.append(text)


_Handler = Callable[[_Seen, str, Mapping[str, Any]], None]
_TOOLS: dict[str, _Handler] = {
    **dict.fromkeys(
        ("bash", "shell", "sh", "terminal", "run_command", "execute_command", "run_shell",
         "powershell", "pwsh", "cmd", "bash_20250124", "exec"),
        _tool_shell,
    ),
    **dict.fromkeys(
        ("python", "code_interpreter", "execute_code", "run_code", "python_repl", "ipython",
         "code_execution", "jupyter"),
        _tool_code,
    ),
    **dict.fromkeys(
        ("write", "edit", "multiedit", "notebookedit", "create_file", "write_file", "edit_file",
         "str_replace_based_edit_tool", "str_replace_editor", "apply_patch"),
        _tool_write,
    ),
    **dict.fromkeys(("read", "read_file", "view", "cat"), _tool_read),
    **dict.fromkeys(("webfetch", "fetch", "web_fetch", "browse", "open_url", "http_get"), _tool_fetch),  # noqa: E501
    **dict.fromkeys(("computer", "computer_20250124", "computer_20241022"), _tool_computer),
}  # fmt: skip

_THIRD_PARTY = re.compile(
    r"\b(?:hack|attack|ddos|take down|knock (?:\w+ )?offline|break into|get into|crash|flood|"
    r"brute[\s-]?force|steal|spy on|pwn)\b.{0,60}\b(?:their|his|her|someone|competitor|ex|"
    r"neighbou?r|school|company|government|bank|site|server|network|account|wifi|website)",
    re.I | re.S,
)
_ASKED = {
    "destructive": re.compile(
        r"\b(?:delete|remove|clean|wipe|erase|rm|drop|purge|force[\s-]?push|shut\s?down|reboot|"
        r"reset|get rid of|clear out)\b",
        re.I,
    ),
    "persistence_evasion": re.compile(
        r"\b(?:cron|crontab|schedul\w*|bashrc|zshrc|profile|startup|systemd|service|launch ?agent|"
        r"firewall|account|user|autostart|login item|hook)\b",
        re.I,
    ),
    "denial_of_service": re.compile(r"\b(?:shut\s?down|reboot|restart|power off)\b", re.I),
}


@cache
def _default_classifier() -> Classifier:
    from convguard.assess.linear import LinearClassifier

    return LinearClassifier.load()


def _cyber_score(classifier: Classifier | None, texts: Sequence[str]) -> float:
    texts = [t for t in texts if len(t.split()) >= 4]
    if not texts:
        return 0.0
    model = classifier or _default_classifier()
    return max(row.get("cyberattack", 0.0) for row in model.score(texts))


def _attack_intent(
    context: Sequence[str], classifier: Classifier | None, rules: RuleSet
) -> str | None:
    joined = "\n".join(context[-6:])
    if not joined.strip():
        return None
    match = _THIRD_PARTY.search(joined)
    if match:
        return f"the user asked to {match.group()!r}"
    hits = [f for f in rules.text_findings(joined) if f.category != "persistence_evasion"]
    if hits:
        return f"the user asked for {hits[0].reason.split(':')[0]}"
    score = _cyber_score(classifier, context[-3:])
    if score >= CLASSIFIER_THRESHOLD:
        return f"the user's request reads as a cyberattack ({score:.2f})"
    return None


def _user_asked(finding: Finding, context: Sequence[str]) -> bool:
    pattern = _ASKED.get(finding.category)
    joined = "\n".join(context[-6:])
    if pattern is None or not pattern.search(joined):
        return False
    names = [fold_home(t).rstrip("/").rsplit("/", 1)[-1] for t in finding.targets]
    return all(n and n.lower() in joined.lower() for n in names)


def _resolve(
    seen: _Seen, scope: Scope | None, context: Sequence[str], classifier: Classifier | None
) -> tuple[list[Finding], list[str]]:
    notes: list[str] = []
    kept: list[Finding] = []
    for f in seen.findings:
        if f.category == "network_attack" and f.targets:
            loopback = all(t in _LOOPBACK or t.startswith("127.") for t in f.targets)
            tool_ok = scope is not None and (not scope.tools or f.program in scope.tools)
            if scope is not None and tool_ok and all(scope.covers_host(t) for t in f.targets):
                notes.append(f"in the authorised scope: {f.reason}")
                continue
            if loopback and f.level == "ask":
                notes.append(f"loopback only: {f.reason}")
                continue
            if scope is not None:
                f = dataclasses.replace(f, reason=f"{f.reason} (outside the authorised scope)")
        if f.lowerable and scope is not None and f.targets:  # noqa: SIM102
            if all(scope.covers_path(t) for t in f.targets):
                notes.append(f"inside the authorised paths: {f.reason}")
                continue
        kept.append(f)
    if seen.texts:
        score = _cyber_score(classifier, seen.texts)
        if score >= CLASSIFIER_THRESHOLD:
            kept.append(
                Finding(
                    "malware",
                    "ask",
                    f"text classifier: cyberattack {score:.2f}",
                    rule_id="classifier.cyberattack",
                )
            )
    intent = _attack_intent(context, classifier, seen.rules) if context else None
    if intent is not None:
        raised = [
            dataclasses.replace(f, level="deny", reason=f"{f.reason} ({intent})") for f in kept
        ]
        if not raised and any(hosts_in(c.split()) for c in seen.commands):
            raised.append(
                Finding(
                    "network_attack",
                    "ask",
                    f"network action after {intent}",
                    rule_id="context.network-action",
                )
            )
        return raised, notes
    if context:
        lowered = []
        for f in kept:
            if f.level == "ask" and f.lowerable and _user_asked(f, context):
                notes.append(f"the user asked for this: {f.reason}")
            else:
                lowered.append(f)
        kept = lowered
    return kept, notes


@lru_cache(maxsize=HISTORY_CACHE)
def _earlier_commands(script: str) -> tuple[Command, ...]:
    """One earlier command's parse, kept for the next calls of its session. Its only input is the
    text (read as POSIX shell, with no working folder), so the text is the whole key; a
    :class:`Command` is frozen, so calls can share it."""
    return tuple(parse_script(script).commands)


def _earlier(history: Sequence[str]) -> list[Command]:
    """The session's earlier shell commands, parsed (the last :data:`HISTORY_LIMIT`, each cut to
    a bounded length): what sequence rules read before this call."""
    out: list[Command] = []
    for script in history[-HISTORY_LIMIT:]:
        out.extend(_earlier_commands(script[:_HISTORY_CHARS]))
    return out


def _collect(
    tool: str,
    arguments: Mapping[str, Any],
    rules: RuleSet,
    history: Sequence[str] = (),
    cwd: str | None = None,
) -> _Seen:
    """What a tool call would run, unpacked, with the rule findings (before scope and context)."""
    seen = _Seen(rules, cwd)
    handler = _TOOLS.get(tool.lower(), _tool_other)
    if tool.lower().startswith("mcp__") and handler is _tool_other:
        handler = _TOOLS.get(tool.rsplit("__", 1)[-1].lower(), _tool_other)
    handler(seen, tool, arguments)
    seen.findings.extend(rules.call_findings(seen.parsed))
    seen.findings.extend(rules.sequence_findings(seen.parsed, lambda: _earlier(history)))
    return seen


def parsed_commands(
    tool: str, arguments: Mapping[str, Any], *, platform: Platform = "posix"
) -> list[Command]:
    """The commands of one platform's shells (POSIX, or PowerShell and cmd) that a tool call would
    run, unpacked exactly as the guard unpacks them (what that platform's command model reads; the
    training script builds its examples with it)."""
    seen = _collect(tool, arguments, default_rules())
    return seen.windows if platform == "windows" else seen.posix


def _model_findings(
    seen: _Seen, posix: CommandModel | None, windows: CommandModel | None
) -> list[Finding]:
    """The command models' finding: an ``ask`` when the commands read like an attack technique.

    Each platform's commands are scored by that platform's model (``posix`` or ``windows``; the
    shipped ones when ``None``). Only where the explicit rules found nothing: a rule's finding, and
    what scope and context made of it (an authorised scan, a delete the user asked for), is never
    second-guessed by a model. Added after scope and context: a model never denies, and context
    never raises it to deny.
    """
    if seen.findings:
        return []
    for commands, model, load in (
        (seen.posix, posix, default_model),
        (seen.windows, windows, default_windows_model),
    ):
        if not commands:
            continue
        model = model or load()
        tokens = call_tokens(commands)
        score = model.score(tokens)
        if score >= model.threshold:
            hint = ", ".join(model.top(tokens))
            return [
                Finding(
                    "malware",
                    "ask",
                    f"command model: reads like an attack technique {score:.2f} ({hint})",
                    rule_id="model.command-tokens",
                )
            ]
    return []


# An absolute folder: POSIX (/…), a Windows drive (C:\…, C:/…) or a UNC share (\\server\…).
_ABSOLUTE_FOLDER = re.compile(r"^(?:/|[A-Za-z]:[\\/]|\\\\[^\\])")


def _working_folder(cwd: object) -> str | None:
    if cwd is None:
        return None
    if isinstance(cwd, str) and _ABSOLUTE_FOLDER.match(cwd):
        return cwd
    raise InvalidInput(
        "cwd must be the absolute path of the folder the tool call runs in (such as "
        f"'/home/alice/project'), or None when it is not known; got {cwd!r}"
    )


def assess_tool_call(
    tool: str,
    arguments: Mapping[str, Any],
    *,
    scope: Scope | None = None,
    context: Sequence[str] | None = None,
    classifier: Classifier | None = None,
    command_model: CommandModel | None = None,
    windows_command_model: CommandModel | None = None,
    history: Sequence[str] = (),
    rules: RuleSet | None = None,
    cwd: str | None = None,
) -> ToolVerdict:
    """Judge one tool call before it runs (see the module docstring for the rules).

    ``tool`` is the tool's name (``Bash``, ``Write``, ``WebFetch``, ``computer`` …, matched
    without case; unknown tools are read for a ``command``, ``code`` or ``url`` argument, then as
    text). ``context`` is the recent user turns, oldest first. ``classifier`` replaces the shipped
    linear model used for free text (a scripted fake in tests); ``command_model`` replaces the
    shipped command-token model of POSIX shells, ``windows_command_model`` that of PowerShell and
    cmd. ``history`` is the session's earlier shell commands, oldest
    first (only sequence rules read them, and only when a command of this call can end a
    sequence). ``rules`` replaces the loaded rule set
    (:func:`~convguard.agent.engine.default_rules`); rules whose id the scope disables are
    dropped. ``cwd`` is the absolute path of the folder the call runs in, when known: a relative
    path of a shell command or a file tool is then also judged where it lies (see the module
    docstring); ``None`` judges relative paths as written. A Windows folder is accepted and not
    resolved against (yet); a relative one raises :class:`InvalidInput`.
    """
    started = time.perf_counter()
    if not isinstance(arguments, Mapping):
        raise InvalidInput(f"tool arguments must be a mapping, got {type(arguments).__name__}")
    seen = _collect(tool, arguments, rules or default_rules(), history, _working_folder(cwd))
    if scope is not None and scope.disabled:
        seen.findings = [f for f in seen.findings if f.rule_id not in scope.disabled]
    findings, notes = _resolve(seen, scope, tuple(context or ()), classifier)
    findings.extend(_model_findings(seen, command_model, windows_command_model))
    verdict: Verdict = "allow"
    for f in findings:
        if _RANK[f.level] > _RANK[verdict]:
            verdict = f.level
    findings.sort(key=lambda f: -_RANK[f.level])
    reasons = [f.reason for f in findings]
    categories = tuple(c for c in CATEGORIES if any(f.category == c for f in findings))
    return ToolVerdict(
        verdict=verdict,
        reasons=tuple(dict.fromkeys([*reasons, *notes])),
        categories=categories,
        tool=tool,
        commands=tuple(dict.fromkeys(seen.commands)),
        elapsed_ms=(time.perf_counter() - started) * 1000,
        findings=tuple(findings),
    )

"""Code and free text: Python read through its syntax tree, other languages and typed text through
a short list of indicators, and Windows command lines through program rules.

Python source is parsed with :mod:`ast` (never run): string arguments of ``os.system``,
``subprocess.*``, ``os.popen``, ``pty.spawn`` are handed back as shell scripts to parse; a socket
together with ``dup2``/``pty.spawn``/a shell is a remote shell; ``open()`` of a credential store
is credential access; ``shutil.rmtree`` of a system tree is destructive; ``os.fork`` in a loop is a
fork bomb. Text that is not Python (or not code at all) is checked against :data:`INDICATORS`,
phrases that name an attack technique or tool, each with the category and level it calls for.
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from convguard.agent.findings import Finding, render
from convguard.agent.paths import critical_target, secret_path
from convguard.agent.shell import Command

__all__ = ["WINDOWS_RULES", "CodeReport", "python_report"]

_RUNNERS = frozenset(
    {"system", "popen", "run", "call", "check_call", "check_output", "Popen", "spawn", "getoutput",
     "getstatusoutput", "execv", "execve", "execl", "execlp", "execvp", "spawnl"}
)  # fmt: skip
_SHELLS = frozenset({"/bin/sh", "/bin/bash", "sh", "bash", "/bin/zsh", "cmd.exe", "powershell"})


@dataclass
class CodeReport:
    findings: list[Finding] = field(default_factory=list)
    #: Shell command lines the code would run.
    scripts: list[str] = field(default_factory=list)


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        items = [_literal(e) for e in node.elts]
        if all(i is not None for i in items):
            return " ".join(_q(i) for i in items if i is not None)
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "X"
            for v in node.values
        )
    return None


def _q(word: str) -> str:
    return word if word and " " not in word and "'" not in word else "'" + word + "'"


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def python_report(source: str) -> CodeReport | None:
    """Findings and shell scripts of Python ``source``; ``None`` when it is not Python."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    report = CodeReport()
    names: set[str] = set()
    strings: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            names.add(name)
            arg = _literal(node.args[0]) if node.args else None
            if name == "spawn" and arg is not None and arg.strip() in _SHELLS:
                report.findings.append(Finding("malware", "ask", f"code spawns a shell: {arg}"))
            elif name in _RUNNERS and arg is not None:
                report.scripts.append(arg)
            elif name == "open" and arg is not None and secret_path(arg):
                report.findings.append(Finding("credential_access", "ask", f"code reads {arg}"))
            elif name == "rmtree" and arg is not None and critical_target(arg):
                report.findings.append(Finding("destructive", "deny", f"code deletes {arg}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append(node.value)
        elif isinstance(node, ast.While | ast.For):  # noqa: SIM102
            if any(isinstance(n, ast.Call) and _name(n.func) == "fork" for n in ast.walk(node)):
                report.findings.append(Finding("denial_of_service", "deny", "code forks in a loop"))
    if "socket" in names or "connect" in names:  # noqa: SIM102
        if names & {"dup2", "spawn"} or any(s in _SHELLS or s.endswith("-i") for s in strings):
            report.findings.append(Finding("malware", "deny", "code connects a shell to a socket"))
    for s in strings:
        if secret_path(s) and not any(f.category == "credential_access" for f in report.findings):
            report.findings.append(Finding("credential_access", "ask", f"code refers to {s}"))
    return report


# --- Windows command lines -------------------------------------------------------------------


def _reg(cmd: Command) -> list[Finding]:
    text = " ".join(cmd.args).lower()
    if re.search(r"\bsave\b.*\b(?:sam|security|system)\b", text):
        return [Finding("credential_access", "deny", f"saves a credential hive: {render(cmd)}")]
    if "add" in text.split() or "import" in text.split():
        if re.search(
            r"\\run(?:once)?\b|winlogon|image file execution|appinit|\\services\\|lsa\b|userinit|shell\b",
            text,
        ):
            return [Finding("persistence_evasion", "deny", f"registry persistence: {render(cmd)}")]
        if re.search(r"disable|defender|policies|firewall|uac|enablelua", text):
            return [
                Finding(
                    "persistence_evasion",
                    "deny",
                    f"registry change that weakens defences: {render(cmd)}",
                )
            ]
        return [Finding("persistence_evasion", "ask", f"registry change: {render(cmd)}")]
    if "delete" in text.split():
        return [Finding("persistence_evasion", "ask", f"registry deletion: {render(cmd)}")]
    return []


def _recovery(cmd: Command) -> list[Finding]:
    text = " ".join(cmd.args).lower()
    if re.search(r"delete|resize|recoveryenabled\s+no|bootstatuspolicy|/w:", text):
        return [Finding("destructive", "deny", f"destroys backups or recovery: {render(cmd)}")]
    return []


def _schtasks(cmd: Command) -> list[Finding]:
    if any(a.lower() in ("/create", "-create") for a in cmd.args):
        return [Finding("persistence_evasion", "ask", f"creates a scheduled task: {render(cmd)}")]
    return []


def _sc(cmd: Command) -> list[Finding]:
    words = [a.lower() for a in cmd.args]
    if "create" in words or "config" in words:
        return [
            Finding("persistence_evasion", "ask", f"creates or changes a service: {render(cmd)}")
        ]
    if ("stop" in words or "delete" in words) and any(
        re.search(r"defend|sense|wscsvc|eventlog|sysmon", w) for w in words
    ):
        return [Finding("persistence_evasion", "deny", f"stops a security service: {render(cmd)}")]
    return []


def _net(cmd: Command) -> list[Finding]:
    words = [a.lower() for a in cmd.args]
    if "/add" in words and ("localgroup" in words or "group" in words):
        return [
            Finding("persistence_evasion", "deny", f"adds an account to a group: {render(cmd)}")
        ]
    if "/add" in words:
        return [Finding("persistence_evasion", "ask", f"creates an account: {render(cmd)}")]
    return []


def _lolbin(cmd: Command) -> list[Finding]:
    text = " ".join(cmd.args).lower()
    if re.search(
        r"https?://|\\\\\w|-urlcache|/transfer|scrobj|javascript:|vbscript:|\.sct\b|-decode", text
    ):
        return [
            Finding("malware", "ask", f"signed binary used to fetch or run code: {render(cmd)}")
        ]
    return []


WINDOWS_RULES = {
    "reg": _reg,
    "vssadmin": _recovery,
    "wbadmin": _recovery,
    "bcdedit": _recovery,
    "cipher": _recovery,
    "wmic": lambda c: _recovery(c) if "shadowcopy" in " ".join(c.args).lower() else [],
    "schtasks": _schtasks,
    "at": _schtasks,
    "sc": _sc,
    "net": _net,
    "net1": _net,
    "certutil": _lolbin,
    "bitsadmin": _lolbin,
    "mshta": _lolbin,
    "regsvr32": _lolbin,
    "msiexec": _lolbin,
}

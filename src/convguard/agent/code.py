"""The Python-code walker: Python source read through its syntax tree, never run.

String arguments of ``os.system``, ``subprocess.*``, ``os.popen``, ``pty.spawn`` are handed back
as shell scripts to parse; a socket together with ``dup2``/``pty.spawn``/a shell is a remote
shell; ``open()`` of a credential store is credential access; ``shutil.rmtree`` of a system tree
is destructive; ``os.fork`` in a loop is a fork bomb. Text that is not Python is read by the text
rules (``convguard/agent/rules/text``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from convguard.agent.findings import Finding
from convguard.agent.paths import critical_target, secret_path

__all__ = ["CodeReport", "python_report"]

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

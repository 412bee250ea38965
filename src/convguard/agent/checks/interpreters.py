"""Code for perl, ruby, php, lua or node: a shell spawned (a GTFOBins escape or a shell's half of
a reverse shell) or a raw network connection opened."""

from __future__ import annotations

import re

from convguard.agent.findings import Finding

__all__ = ["interpreter_findings"]

_INTERPRETER_SHELL = re.compile(
    r"(?:exec|system|spawn|popen|passthru|shell_exec|proc_open|os\.execute|io\.popen|execsync|spawnsync|`)"
    r"\s*\(?\s*['\"]?(?:/bin/|/usr/bin/)?(?:ba|z|da|k)?sh(?:\s+-i)?\b"
)


_INTERPRETER_SOCKET = re.compile(
    r"io::socket|tcpsocket\.(?:open|new)|fsockopen\s*\(|stream_socket_client|socket\.tcp\(|require\(['\"]net['\"]\)|net\.connect\(|new\s+net\.socket"
    r"|\bsocket\s*\(\s*\w+\s*,\s*pf_inet",
    re.I,
)


def interpreter_findings(language: str, source: str) -> list[Finding]:
    """perl, ruby, php, lua or node code that spawns a shell (a GTFOBins escape or a shell's
    half of a reverse shell), or that opens a raw network connection."""
    if language in ("", "python", "sh", "bash", "shell", "zsh", "powershell", "pwsh", "cmd", "bat"):
        return []
    out: list[Finding] = []
    sock = _INTERPRETER_SOCKET.search(source)
    if sock:
        out.append(
            Finding(
                "malware",
                "ask",
                f"{language} code opens a network connection: {sock.group()[:60]!r}",
            )
        )
    match = _INTERPRETER_SHELL.search(source)
    if match:
        out.append(
            Finding(
                "persistence_evasion",
                "ask",
                f"{language} code spawns a shell: {match.group()[:60]!r}",
            )
        )
    return out

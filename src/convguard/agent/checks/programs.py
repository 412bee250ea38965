"""Checks of one command that need code, by program: what the YAML rules cannot say as a pattern
(the roots a ``find`` starts from, a posted value read as a path).

Collection (documents gathered by ``find``, collected files posted by ``curl``) and impact
(logs deleted, or every file of a home shredded or encrypted, by ``find``).

:data:`PROGRAM_CHECKS` maps a program (lower case, without ``.exe``) to its checks; each returns
the findings for one parsed command. Every check fires on a verb, a flag, a target or a pairing
that an everyday build, test or deployment does not have.
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from convguard.agent.findings import Finding, Level, render
from convguard.agent.paths import fold_home, hosts_in, log_path
from convguard.agent.shell import Command

__all__ = ["PROGRAM_CHECKS"]

_Rule = Callable[[Command], list[Finding]]


def _finding(category: str, level: Level, reason: str, cmd: Command, *, lowerable: bool = False) -> Finding:  # fmt: skip
    return Finding(category, level, f"{reason}: {render(cmd)}", (), "", lowerable)


_SCRATCH = ("/tmp/", "/var/tmp/", "/dev/shm/", "/private/tmp/")


def _find_wipe(cmd: Command) -> list[Finding]:
    roots = [a for a in cmd.args if not a.startswith(("-", "(", "!"))][:3]
    text = " ".join(cmd.args)
    if any(log_path(r) for r in roots) and re.search(
        r"-delete|-exec\s+(?:rm|shred|truncate)|-exec\s+sh\b", text
    ):
        return [_finding("persistence_evasion", "deny", "deletes logs", cmd)]
    return []


_DOCUMENTS = re.compile(
    r"\.(?:docx?|xlsx?|pptx?|pdf|odt|kdbx|pem|key|pfx|p12|ovpn|rdp|sql)\b", re.I
)


def _find_collect(cmd: Command) -> list[Finding]:
    """find: logs deleted, or documents gathered from home or system folders (copied, archived,
    sent)."""
    out = _find_wipe(cmd)
    roots = [a for a in cmd.args if not a.startswith(("-", "(", "!"))][:3]
    text = " ".join(cmd.args)
    wide = any(
        fold_home(r).rstrip("/") in ("", "/", "~", "/home", "/Users", "/root", "/etc", "/var")
        or fold_home(r).startswith(("~/", "/home/", "/Users/", "/root/"))
        for r in roots
    )
    gathers = re.search(r"-exec\s+(?:cp|mv|tar|zip|7z|rsync|scp|curl|cat)\b", text) or any(
        p in ("tar", "zip", "cpio") for p in cmd.downstream
    )
    if wide and gathers and _DOCUMENTS.search(text):
        out.append(
            _finding(
                "exfiltration", "ask", "gathers documents or keys from a home or system folder", cmd
            )
        )
    return out


_LOOPBACK = re.compile(r"^(?:localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|::1|\[::1\])$")


def _remote(hosts: Sequence[str]) -> bool:
    return any(not _LOOPBACK.match(h) for h in hosts)


_DATA_FLAGS = frozenset(
    {"-d", "--data", "--data-binary", "--data-raw", "--data-urlencode", "--data-ascii"}
)


_PACKED = re.compile(r"\.(?:zip|tar|t?gz|tgz|bz2|xz|7z|rar|db|sqlite3?|bak|dmp|pcap|b64)$", re.I)


_PRODUCERS = frozenset(
    {"cat", "tar", "zip", "gzip", "base64", "xxd", "find", "ls", "env", "history"}
)


def _posted(value: str, cmd: Command) -> bool:
    """A ``-d @…`` value that reads like collected data: piped from a collector, an archive or a
    dump, or a file in a temporary, home or system folder (not ``@payload.json`` of a project)."""
    if value == "@-":
        return bool(_PRODUCERS & set(cmd.upstream))
    path = fold_home(value[1:])
    if re.search(r"secret|passw|cred|token|shadow|\.key$", path, re.I):
        return True
    return bool(_PACKED.search(path)) or path.startswith(
        ("/tmp/", "/var/tmp/", "/dev/shm/", "~", "/etc/", "/var/", "/home/", "/Users/", "/root/")
    )


def _post(cmd: Command) -> list[Finding]:
    """curl posting collected data (``-d @/tmp/loot.tgz``, ``tar … | curl -d @-``) to a remote
    host."""
    args = cmd.args
    hosts = hosts_in(args)
    for i, a in enumerate(args[:-1]):
        if (
            a in _DATA_FLAGS
            and args[i + 1].startswith("@")
            and _remote(hosts)
            and _posted(args[i + 1], cmd)
        ):
            return [
                _finding("exfiltration", "ask", "posts a file or piped data to a remote host", cmd)
            ]
    return []


def _find_destroy(cmd: Command) -> list[Finding]:
    """find over a whole system or home running a shredder or an encryptor on every file."""
    roots = [a for a in cmd.args if not a.startswith(("-", "(", "!"))][:2]
    if any(
        fold_home(r).rstrip("/") in ("", "~", "/home", "/Users", "/etc", "/var", "/usr", "/root")
        for r in roots
    ) and re.search(
        r"-exec(?:dir)?\s+(?:shred|wipe|srm|gpg|ccencrypt)\b|-exec(?:dir)?\s+openssl\s+enc\b",
        " ".join(cmd.args),
    ):
        return [
            _finding(
                "destructive",
                "deny",
                "shreds or encrypts every file of a system or home folder",
                cmd,
            )
        ]
    return []


#: The checks of each program (lower case, without ``.exe``), in the order they run.
PROGRAM_CHECKS: dict[str, tuple[_Rule, ...]] = {
    "find": (
        _find_collect,
        _find_destroy,
    ),
    "curl": (_post,),
}

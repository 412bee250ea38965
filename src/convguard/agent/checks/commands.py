"""One command judged by its targets: the checks that need code to read a path, a mode or a pipe.

Deletes and permission changes of system trees and homes (one finding per target, the first
that applies, with the path for the scope), finds that delete or hunt for secrets and setuid
programs, uploads of secrets, copies of secrets to other hosts, files placed in persistence
locations. :func:`command_findings` adds the checks every command gets (redirections into
persistence locations, logs and disks, secrets among arguments and sent over the network);
:func:`write_findings` judges a file write by its path and content. Ordinary programs with no
finding are allowed: the guard lists what is dangerous, never what is permitted.
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import re
from collections.abc import Callable

from convguard.agent.findings import Finding, Level, option_flags, plain_args, render
from convguard.agent.paths import (
    hosts_in,
    is_block_device,
    log_path,
    persistence_path,
    secret_path,
)
from convguard.agent.shell import Command

__all__ = [
    "PROGRAM_RULES",
    "Finding",
    "command_findings",
    "content_findings",
    "option_flags",
    "plain_args",
    "render",
]

Rule = Callable[[Command], list[Finding]]


_NET_SINKS = frozenset({"nc", "ncat", "netcat", "socat", "telnet", "curl", "wget", "ssh", "scp"})
_REMOTE_FETCH = re.compile(
    r"\b(?:curl|wget|fetch|nc|ncat|socat|DownloadString|Invoke-WebRequest|iwr)\b|/dev/tcp/", re.I
)
_REVERSE = re.compile(
    r"/dev/(?:tcp|udp)/|\bnc(?:at)?\b[^|;\n]*\s-[ec]\b|\bsocket\b.*\bdup2\b", re.S
)


# --- exfiltration -------------------------------------------------------------------------------


def _upload(cmd: Command) -> list[Finding]:
    """curl/wget: uploading secrets, or files to paste and tunnel services."""
    out: list[Finding] = []
    args = cmd.args
    hosts = tuple(hosts_in(args))
    for i, a in enumerate(args):
        value = a
        if a in (
            "-d",
            "--data",
            "--data-binary",
            "--data-raw",
            "-F",
            "--form",
            "-T",
            "--upload-file",
            "--post-file",
            "--body-file",
        ) and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(("--post-file=", "--body-file=")):
            value = a.split("=", 1)[1]
        else:
            continue
        path = value.split("@", 1)[1] if "@" in value and not value.startswith("http") else value
        path = path.split(";")[0]
        if secret_path(path) or re.search(r"/etc/passwd|\.(?:pem|key|kdbx)$|\.env$", path):
            out.append(
                Finding(
                    "exfiltration",
                    "deny",
                    f"uploads a secret ({path}): {render(cmd)}",
                    hosts,
                    rule_id="py.command.uploads-secret",
                    attack=("T1048", "T1552.001"),
                )
            )
        elif (  # noqa: SIM102
            value.startswith("@")
            or a in ("-T", "--upload-file", "--post-file")
            or a.startswith("--post-file=")
        ):
            if any(re.search(_DROP_SITES, h) for h in hosts):
                out.append(
                    Finding(
                        "exfiltration",
                        "ask",
                        f"uploads a file to a drop site: {render(cmd)}",
                        hosts,
                        rule_id="py.command.uploads-to-drop-site",
                        attack=("T1567",),
                    )
                )
    return out


_DROP_SITES = r"pastebin|transfer\.sh|file\.io|webhook\.site|requestbin|ngrok|anonfiles|0x0\.st|discord(?:app)?\.com/api/webhooks|pipedream|interact\.sh|oast\.|burpcollaborator|termbin"


# --- persistence and defence evasion -----------------------------------------------------------


def _writer(cmd: Command) -> list[Finding]:
    """tee/cp/mv/install/ln/sed -i into persistence locations (content from the pipe if known)."""
    plain = plain_args(cmd)
    if cmd.program == "tee":
        dests = plain
    elif cmd.program == "sed":
        dests = plain[1:] if option_flags(cmd) & {"-i"} else []
    else:
        dests = plain[-1:] if len(plain) >= 2 else []
    out: list[Finding] = []
    for d in dests:
        out.extend(write_findings(d, cmd.stdin if cmd.program == "tee" else None, how=cmd.program))
    if cmd.program in ("cp", "mv", "cat", "tar", "zip", "rsync") and any(
        secret_path(p) for p in plain[:-1] if cmd.program != "cat"
    ):
        out.append(
            Finding(
                "credential_access",
                "ask",
                f"copies secrets: {render(cmd)}",
                rule_id="py.command.copies-secrets",
                attack=("T1552.001",),
            )
        )
    return out


def write_findings(path: str, content: str | None, *, how: str) -> list[Finding]:
    """A write of ``content`` (``None``: unknown) to ``path``: persistence, logs, disks, secrets."""
    out: list[Finding] = []
    if is_block_device(path):
        return [
            Finding(
                "destructive",
                "deny",
                f"writes over a disk: {path}",
                rule_id="py.write.overwrites-disk",
                attack=("T1561.002",),
            )
        ]
    if path in ("/proc/sysrq-trigger", "/proc/sys/kernel/sysrq"):
        return [
            Finding(
                "denial_of_service",
                "deny",
                f"triggers kernel SysRq actions: {path}",
                rule_id="py.write.triggers-sysrq",
                attack=("T1529",),
            )
        ]
    if log_path(path) and content in (None, "", "\n"):
        return [
            Finding(
                "persistence_evasion",
                "deny",
                f"empties logs/history: {path}",
                rule_id="py.write.empties-logs",
                attack=("T1070.002", "T1070.003"),
            )
        ]
    if persistence_path(path):
        hot = content is not None and bool(
            _REMOTE_FETCH.search(content) or _REVERSE.search(content)
        )
        severe = re.search(r"/etc/(?:passwd|shadow|sudoers|ld\.so\.preload)|authorized_keys", path)
        level: Level = "deny" if hot or severe else "ask"
        detail = " that fetches or connects remotely" if hot else ""
        out.append(
            Finding(
                "persistence_evasion",
                level,
                f"{how} writes to a persistence location{detail}: {path}",
                (),
                "",
                level == "ask",
                rule_id="py.write.persistence-location",
                attack=("T1546", "T1037", "T1053"),
            )
        )
    elif secret_path(path):
        out.append(
            Finding(
                "credential_access",
                "ask",
                f"{how} overwrites a credential file: {path}",
                rule_id="py.write.overwrites-credential-file",
                attack=("T1552.001",),
            )
        )
    if content:
        out.extend(content_findings(content))
    return out


def content_findings(text: str) -> list[Finding]:
    """Quick checks of written or typed text whose language is unknown."""
    out: list[Finding] = []
    if _REVERSE.search(text):
        out.append(
            Finding(
                "malware",
                "deny",
                "content opens a remote shell",
                rule_id="py.content.remote-shell",
                attack=("T1059.004", "T1095"),
            )
        )
    return out


def command_findings(cmd: Command) -> list[Finding]:
    """Every finding for one command: its program's rule plus the checks all commands get."""
    out: list[Finding] = []
    rule = PROGRAM_RULES.get(cmd.program)
    if rule is None and cmd.program.endswith(".exe"):
        rule = PROGRAM_RULES.get(cmd.program[:-4])
    if rule is not None:
        out.extend(rule(cmd))
    for op, target in cmd.redirects:
        if "/dev/tcp/" in target or "/dev/udp/" in target:
            continue  # a network socket, not a file: linux.redirects-to-network-socket
        if op in (">", ">>", ">|", "&>", "&>>"):
            content = None
            if cmd.program in ("echo", "printf"):
                content = " ".join(cmd.args)
            elif cmd.program == "cat" and cmd.stdin is not None:
                content = cmd.stdin
            elif not cmd.argv:
                content = ""
            out.extend(write_findings(target, content, how=cmd.program or "redirect"))
        elif (
            op == "<"
            and secret_path(target)
            and any(p in _NET_SINKS for p in (cmd.program, *cmd.downstream))
        ):
            out.append(
                Finding(
                    "exfiltration",
                    "deny",
                    f"sends a secret over the network: {target}",
                    rule_id="py.command.sends-secret",
                    attack=("T1048", "T1552.001"),
                )
            )
    secrets = [
        a for a in cmd.args if a.startswith(("/", "~", "$HOME", "${HOME}", "C:")) and secret_path(a)
    ]
    secrets += [t for op, t in cmd.redirects if op == "<" and secret_path(t)]
    if secrets and not any(f.category in ("exfiltration", "credential_access") for f in out):
        if any(p in _NET_SINKS for p in cmd.downstream) or cmd.program in (
            "nc",
            "ncat",
            "netcat",
            "socat",
        ):
            out.append(
                Finding(
                    "exfiltration",
                    "deny",
                    f"sends a secret over the network: {secrets[0]}",
                    rule_id="py.command.sends-secret",
                    attack=("T1048", "T1552.001"),
                )
            )
        elif cmd.program not in (
            "ls",
            "stat",
            "test",
            "[",
            "chmod",
            "chown",
            "rm",
            "touch",
            "ssh-keygen",
            "ssh",
            "ssh-add",
            "scp",
            "git",
            "mkdir",
        ):
            level: Level = (
                "deny"
                if re.search(
                    r"shadow|master\.passwd|Login Data|key[34]\.db|logins\.json|Keychain|ntds|SAM$",
                    secrets[0],
                )
                else "ask"
            )
            out.append(
                Finding(
                    "credential_access",
                    level,
                    f"reads a credential store: {secrets[0]}",
                    rule_id="py.command.reads-credential-store",
                    attack=("T1552.001", "T1555"),
                )
            )
    return out


PROGRAM_RULES: dict[str, Rule] = {
    "curl": _upload,
    "wget": _upload,
    "tee": _writer,
    "cp": _writer,
    "mv": _writer,
    "install": _writer,
    "ln": _writer,
    "sed": _writer,
    "tar": _writer,
    "zip": _writer,
}

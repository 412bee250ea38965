"""The files a command writes: what write rules and call rules that follow a file read.

How a command is read, not what is dangerous about it: which of its arguments and redirections
name a file it writes, and what it writes there when that is known. Pure: a parsed command in,
paths out; nothing is executed.
"""

from __future__ import annotations

from convguard.agent.findings import option_flags
from convguard.agent.shell import Command

__all__ = ["file_writes", "outputs"]

#: What the redirection operators that write a file look like.
_WRITE_OPS = frozenset({">", ">>", ">|", "&>", "&>>"})
#: Programs that write the file named by their last argument (of at least two that are not
#: options): ``cp``, ``mv`` … put things there (what they write is not known).
_COPIERS = frozenset({"cp", "mv", "install", "ln", "tar", "zip"})


def file_writes(cmd: Command) -> list[tuple[str, str | None, str]]:
    """The files a command writes, as ``(path, content, how)``; ``content`` is ``None`` when not
    known. Its output redirections (the text of ``echo``/``printf``, a here-document fed to
    ``cat``, nothing at all for a bare ``> file``), ``tee``'s files (what is piped in),
    ``sed -i``'s files and the destination of ``cp``, ``mv``, ``install``, ``ln``, ``tar``,
    ``zip``. A redirection to ``/dev/tcp/…`` is a network socket, not a file."""
    out: list[tuple[str, str | None, str]] = []
    plain = [a for a in cmd.args if not a.startswith("-")]
    if cmd.program == "tee":
        out += [(p, cmd.stdin, "tee") for p in plain]
    elif cmd.program == "sed" and "-i" in option_flags(cmd):
        out += [(p, None, "sed") for p in plain[1:]]
    elif cmd.program in _COPIERS and len(plain) >= 2:
        out.append((plain[-1], None, cmd.program))
    for op, target in cmd.redirects:
        if op not in _WRITE_OPS or "/dev/tcp/" in target or "/dev/udp/" in target:
            continue
        content: str | None = None
        if cmd.program in ("echo", "printf"):
            content = " ".join(cmd.args)
        elif cmd.program == "cat" and cmd.stdin is not None:
            content = cmd.stdin
        elif not cmd.argv:
            content = ""
        out.append((target, content, cmd.program or "redirect"))
    return out


def outputs(cmd: Command) -> list[str]:
    """Files a command writes that a later command may run: output redirections and downloads."""
    out = list(cmd.writes())
    args = cmd.args
    for i, a in enumerate(args[:-1]):
        if (cmd.program == "curl" and a in ("-o", "--output")) or (
            cmd.program == "wget" and a in ("-O", "--output-document")
        ):
            out.append(args[i + 1])
    if cmd.program == "wget" or (cmd.program == "curl" and "-O" in option_flags(cmd)):
        out += [a.rsplit("/", 1)[-1] for a in args if "://" in a]
    return out

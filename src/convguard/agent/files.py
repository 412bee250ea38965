"""The files a command writes: what write rules and call rules that follow a file read.

How a command is read, not what is dangerous about it: which of its arguments and redirections
name a file it writes, and what it writes there when that is known. Pure: a parsed command in,
paths out; nothing is executed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
    """Files a command writes that a later command may run: output redirections and downloads
    (curl's ``-o FILE`` and, with ``-O``, each URL's file name; wget's ``-O FILE``, else each
    URL's file name), the output option read inside a group of short options (``-sSLo FILE``,
    ``-qOFILE``). Standard output (``-o -``, ``-O-``) is no file."""
    out = list(cmd.writes())
    download = _DOWNLOADS.get(cmd.program)
    if download is None:
        return out
    options = list(_options(cmd.args, download.valued, frozenset(download.output)))
    named = [value for name, value in options if name in download.output]
    out += [value for value in named if value != "-"]
    url_names = any(name in download.url_names for name, _ in options)
    if url_names or (download.url_names_unless_named and not named):
        out += [a.rsplit("/", 1)[-1] for a in cmd.args if "://" in a]
    return out


@dataclass(frozen=True)
class _Download:
    """How a download program's options name the files it writes."""

    #: Its short options that take a value: a group of short options (``-sSLo``) ends at the
    #: first of them, whose value is the rest of the group or the next word.
    valued: str
    #: The option that names the file written (short and long).
    output: tuple[str, ...]
    #: Options that write each URL's own file name.
    url_names: tuple[str, ...] = ()
    #: Whether each URL's file name is written when no output option names a file.
    url_names_unless_named: bool = False


_DOWNLOADS = {
    "curl": _Download(
        "AbcCdDEeFHKmoPQrtTuUwxXyYz",
        output=("-o", "--output"),
        url_names=("-O", "--remote-name", "--remote-name-all"),
    ),
    "wget": _Download(
        "aBeiIlOoPQRtTUwXD", output=("-O", "--output-document"), url_names_unless_named=True
    ),
}


def _options(
    args: tuple[str, ...], valued: str, long_valued: frozenset[str]
) -> Iterator[tuple[str, str]]:
    """Each option of ``args`` with its value (``""`` for a switch): a group of short options
    letter by letter, up to the first of ``valued``; a long option's ``=VALUE``, or the next word
    for one of ``long_valued``. Options end at ``--``."""
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            return
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            if not eq and name in long_valued and i < len(args):
                value, i = args[i], i + 1
            yield name, value
        elif a.startswith("-") and len(a) > 1:
            for j, letter in enumerate(a[1:], start=2):
                if letter in valued:
                    value = a[j:]
                    if not value and i < len(args):
                        value, i = args[i], i + 1
                    yield "-" + letter, value
                    break
                yield "-" + letter, ""

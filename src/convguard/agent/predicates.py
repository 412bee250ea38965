"""Named predicates: the few checks a rule's ``match`` cannot say as a pattern (Falco's macros).

A rule names one with ``predicate: <name>``; each takes the parsed command and answers yes or no.
They are few on purpose: a check that a regular expression over the arguments can express
belongs in the rule file, not here. What rules need that is procedural but general — the files a
command writes and what it writes there (write rules), a file followed from the command that
made it to the one that runs it, discovery counted by key and family (call rules), option
values and the files they name, fallbacks that speak only when named rules did not — are
fields of the engine (:mod:`convguard.agent.engine`), not predicates.

- ``secret_path``: an argument is a credential store (SSH keys, cloud credentials, browser
  logins, ``/etc/shadow`` …; see :func:`convguard.agent.paths.secret_path`);
- ``remote_host``: an argument names a host that is not this machine (an address, a URL, a
  ``user@host:``), so the command reaches out;
- ``collected_path``: an argument is a whole home, key or system folder (``~``, ``/etc``,
  ``~/.ssh``, ``/var/www``), what an attacker stages before taking it away;
- ``scratch_program``: the program itself lives in a scratch folder (``/tmp``, ``/var/tmp``,
  ``/dev/shm``), where droppers put what they fetched;
- ``scratch_output``: the command writes a file (a redirection, ``curl -o``, ``wget -O``) into a
  scratch folder;
- ``log_path``: an argument that is not an option is a log or shell-history file
  (see :func:`convguard.agent.paths.log_path`);
- ``makes_executable``: ``chmod`` grants execute (``+x``, ``755`` …) to a file in a scratch
  folder.

``secret_path``, ``collected_path`` and ``log_path`` read a relative argument also where it lies
when the command's working folder is known (:func:`convguard.agent.paths.places`); the scratch
predicates read paths as written (a project checked out under ``/tmp`` is no dropper).

:data:`PATH_KINDS` are tests of one path, which a rule's ``path_is`` and ``path_is_not`` apply to
each argument that is not an option (the tables live in :mod:`convguard.agent.paths`):

- ``secret``: a credential store (SSH keys, cloud credentials, browser logins, ``/etc/shadow`` …);
- ``persistence``: a place whose content runs later or changes who may log in (shell start-up
  files, cron, systemd units, launch agents, ``authorized_keys``, ``/etc/sudoers`` …);
- ``guard``: a file of the guard itself (its compiled cache, ``~/.cache/convguard/``);
- ``log``: a log folder or file, or a shell history;
- ``critical``: a tree whose recursive deletion or permission change wrecks a system or a home
  (``/``, ``~``, ``/usr``, ``/var/lib``, ``C:/Windows`` …);
- ``root_level``: ``/``, ``~`` or a top-level system folder;
- ``block_device``: a disk (``/dev/sda``, ``/dev/nvme0n1`` …).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from convguard.agent.findings import plain_args
from convguard.agent.paths import (
    critical_target,
    fold_home,
    guard_path,
    hosts_in,
    is_block_device,
    log_path,
    persistence_path,
    places,
    root_level,
    secret_path,
)
from convguard.agent.shell import Command

__all__ = ["PATH_KINDS", "PREDICATES", "PathTest", "Predicate"]

Predicate = Callable[[Command], bool]
PathTest = Callable[[str], bool]

_SCRATCH = ("/tmp/", "/var/tmp/", "/dev/shm/", "/private/tmp/")
_LOOPBACK = re.compile(r"^(?:localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|::1)$")
_COLLECTED = re.compile(
    r"^(?:~|/home|/Users|/root|/etc|/var/www|/var/lib/mysql|/var/lib/postgresql|/var/mail|/srv)/?\*?$"
    r"|^~/(?:Documents|Desktop|Downloads|Pictures|\.ssh|\.gnupg|\.aws|\.config|\.kube|Library)(?:/|$)"
)


def _secret_path(cmd: Command) -> bool:
    return any(secret_path(p) for a in cmd.args for p in places(a, cmd.cwd))


_COPY_TARGET = re.compile(r"^(?:[\w.-]+@)?([\w.-]+\.[\w-]+|\[[0-9a-f:]+\]):")


def _remote_host(cmd: Command) -> bool:
    hosts = hosts_in(cmd.args)
    hosts += [m.group(1) for a in cmd.args if (m := _COPY_TARGET.match(a))]
    return any(not _LOOPBACK.match(h) for h in hosts)


def _collected_path(cmd: Command) -> bool:
    return any(_COLLECTED.match(fold_home(p)) for a in plain_args(cmd) for p in places(a, cmd.cwd))


def _scratch_program(cmd: Command) -> bool:
    return bool(cmd.argv) and cmd.argv[0].startswith(_SCRATCH)


def _scratch_output(cmd: Command) -> bool:
    written = list(cmd.writes())
    args = cmd.args
    for i, a in enumerate(args[:-1]):
        # ``-o FILE``, bundled (``-sSo FILE``) or long (``--output FILE``)
        bundled = a.startswith("-") and not a.startswith("--") and a[-1:] in ("o", "O")
        if bundled or a in ("--output", "--output-document"):
            written.append(args[i + 1])
    return any(w.startswith(_SCRATCH) for w in written)


def _log_path(cmd: Command) -> bool:
    return any(log_path(p) for a in plain_args(cmd) for p in places(a, cmd.cwd))


def _makes_executable(cmd: Command) -> bool:
    plain = plain_args(cmd)
    if cmd.program != "chmod" or len(plain) < 2:
        return False
    executable = "x" in plain[0] or bool(re.fullmatch(r"[0-7]?[1357][0-7]{2}", plain[0]))
    return executable and any(p.startswith(_SCRATCH) for p in plain[1:])


PREDICATES: dict[str, Predicate] = {
    "secret_path": _secret_path,
    "remote_host": _remote_host,
    "collected_path": _collected_path,
    "scratch_program": _scratch_program,
    "scratch_output": _scratch_output,
    "log_path": _log_path,
    "makes_executable": _makes_executable,
}

PATH_KINDS: dict[str, PathTest] = {
    "secret": secret_path,
    "persistence": persistence_path,
    "guard": guard_path,
    "log": log_path,
    "critical": critical_target,
    "root_level": root_level,
    "block_device": is_block_device,
}

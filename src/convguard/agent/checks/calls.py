"""Checks of one tool call's commands read together: what no single command shows.

A dropper's steps within one call (a file fetched or decoded, made executable, run: the same
file name followed from step to step), discovery commands of two families or discovery files
read together, a credential store's path fed to another program. :data:`CALL_CHECKS` lists
them, each with the rule id its findings carry. (What one command shows alone is a YAML rule,
and so is what a call's commands show by being there together: ``within_call`` in
:mod:`convguard.agent.engine`.)
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from convguard.agent.findings import Finding, Level, option_flags, plain_args, render
from convguard.agent.paths import secret_path
from convguard.agent.shell import Command

__all__ = ["CALL_CHECKS"]

_SCRATCH = ("/tmp/", "/var/tmp/", "/dev/shm/", "/private/tmp/")


def _finding(
    category: str, level: Level, reason: str, cmd: Command, rule_id: str, attack: tuple[str, ...]
) -> Finding:
    return Finding(category, level, f"{reason}: {render(cmd)}", rule_id=rule_id, attack=attack)


_DECODERS = frozenset(
    {
        "base64",
        "b64decode",
        "xxd",
        "openssl",
        "uudecode",
        "rev",
        "gunzip",
        "gzip",
        "zcat",
        "bzip2",
        "xz",
    }
)


_DISCOVERY_FILES = re.compile(
    r"^/etc/(?:passwd|group|os-release|issue|lsb-release|hosts|resolv\.conf|hostname|machine-id|shells|sudoers)$"
    r"|^/proc/(?:version|cpuinfo|net/\w+|mounts|modules)$|^/sys/class/dmi/"
)


_ACCOUNT_LISTS = re.compile(
    r"^(?:getent (?:passwd|group|shadow)|dscl \. -?list /(?:Users|Groups)|dscacheutil -q (?:user|group)|lastlog|last)\b"
)


def _outputs(cmd: Command) -> list[str]:
    """Files a command writes: its output redirections and download targets."""
    out = [t for op, t in cmd.redirects if op in (">", ">>", ">|", "&>", "&>>")]
    args = cmd.args
    for i, a in enumerate(args[:-1]):
        if (cmd.program == "curl" and a in ("-o", "--output")) or (
            cmd.program == "wget" and a in ("-O", "--output-document")
        ):
            out.append(args[i + 1])
    if cmd.program == "wget":
        out += [a.rsplit("/", 1)[-1] for a in args if "://" in a]
    if cmd.program == "curl" and "-O" in option_flags(cmd):
        out += [a.rsplit("/", 1)[-1] for a in args if "://" in a]
    return out


def _droppers_and_discovery_files(commands: Sequence[Command]) -> list[Finding]:
    """A dropper's steps within one call (a file fetched or decoded, made executable, run) and
    discovery files read together."""
    out: list[Finding] = []
    fetched: set[str] = set()
    decoded: set[str] = set()
    executable: set[str] = set()
    facts: set[str] = set()
    for cmd in commands:
        prog = cmd.program
        if prog in ("curl", "wget", "scp", "rsync", "ftp", "tftp", "sftp"):
            fetched.update(o.rsplit("/", 1)[-1] for o in _outputs(cmd))
        elif prog in _DECODERS or (
            prog in ("echo", "printf", "cat") and "base64" in cmd.downstream
        ):
            decoded.update(o.rsplit("/", 1)[-1] for o in _outputs(cmd))
        if prog == "chmod" and any(
            re.fullmatch(r"[ugoa]*\+[rw]*x[rw]*|[0-7]?[0-7][1357][0-7]{2}|7[0-7]{2}", a)
            for a in cmd.args[:2]
        ):
            for target in plain_args(cmd)[1:]:
                executable.add(target.rsplit("/", 1)[-1])
                if target.startswith(_SCRATCH):
                    executable.add(target)
        run = cmd.argv[0] if cmd.argv else ""
        base = run.rsplit("/", 1)[-1]
        if run.startswith("/dev/shm/"):
            pass  # said by the rule linux.runs-program-shared-memory
        elif "/" in run and base and (base in fetched or base in decoded):
            out.append(
                _finding(
                    "malware",
                    "ask",
                    "runs a program it just fetched or decoded",
                    cmd,
                    "py.call.runs-fetched-program",
                    ("T1105", "T1204.002"),
                )
            )
        elif run.startswith(_SCRATCH) and run in executable:
            out.append(
                _finding(
                    "malware",
                    "ask",
                    "makes a temporary file executable and runs it",
                    cmd,
                    "py.call.runs-temporary-executable",
                    ("T1059.004", "T1222.002"),
                )
            )
        for a in cmd.args:
            if _DISCOVERY_FILES.match(a):
                facts.add(a)
        listing = _ACCOUNT_LISTS.match(" ".join(cmd.argv))
        if listing:
            facts.add(listing.group())
    if len(facts) >= 2:
        out.append(
            Finding(
                "network_attack",
                "ask",
                f"reads several system facts: {', '.join(sorted(facts)[:4])}",
                rule_id="py.call.reads-system-facts",
                attack=("T1082", "T1087.001"),
            )
        )
    return out


# Discovery programs by what they describe. Two of them from different families run one after
# another (``netstat; who``) are a reconnaissance burst; two of one family (``id; groups``,
# ``uname -a; cat /etc/os-release``) are how a developer checks one thing, and resource checks
# such as ``df`` or ``uptime`` do not count at all.
_FAMILIES: dict[str, str] = {
    **dict.fromkeys(
        ("whoami", "id", "groups", "who", "w", "last", "lastlog", "lastb", "users", "getent",
         "finger", "pinky", "quser", "qwinsta", "klist", "dscl", "dscacheutil", "sudo-l", "net",
         "nltest", "get-localuser", "get-localgroup", "get-localgroupmember", "get-aduser",
         "get-adcomputer", "get-adgroup", "get-adgroupmember", "get-addomain", "get-adforest"),
        "accounts",
    ),
    **dict.fromkeys(
        ("ifconfig", "ip", "netstat", "ss", "arp", "route", "nmcli", "iwconfig", "ipconfig",
         "nbtstat", "sockstat", "lsof", "showmount", "smbstatus", "getmac", "scutil",
         "networksetup", "get-netipaddress", "get-netipconfiguration", "get-netadapter",
         "get-netroute", "get-nettcpconnection", "get-netudpendpoint", "get-dnsclientcache",
         "get-dnsclientserveraddress", "get-netneighbor", "get-netfirewallrule",
         "get-netfirewallprofile", "get-smbshare", "get-smbmapping", "get-smbconnection",
         "resolve-dnsname", "test-netconnection"),
        "network",
    ),
    **dict.fromkeys(
        ("uname", "hostname", "hostnamectl", "lsb_release", "sw_vers", "systeminfo",
         "system_profiler", "ioreg", "sysctl", "lsmod", "kldstat", "locale", "localectl",
         "timedatectl", "date", "csrutil", "sestatus", "getenforce", "fdesetup", "ver",
         "get-computerinfo", "get-culture", "get-winsystemlocale", "get-winuserlanguagelist",
         "get-timezone", "chcp", "w32tm", "mountvol", "get-psdrive", "get-volume", "get-disk",
         "driverquery", "get-pnpdevice", "tree", "get-executionpolicy", "gpresult", "env",
         "printenv", "get-hotfix", "wmic", "get-wmiobject", "gwmi", "get-ciminstance"),
        "system",
    ),
    **dict.fromkeys(
        ("ps", "pstree", "tasklist", "get-process", "get-service", "query", "crontab-l",
         "get-scheduledtask", "get-mpcomputerstatus", "get-mppreference", "get-eventlog",
         "get-winevent", "systemctl", "service", "dpkg", "rpm", "apt", "sc", "reg"),
        "software",
    ),
}  # fmt: skip


_RECON_FILES = re.compile(
    r"^/etc/(?:(?P<accounts>passwd|group)|(?P<network>hosts|resolv\.conf)"
    r"|os-release|lsb-release|issue|hostname|machine-id|\*release|\*-release)$"
    r"|^/proc/(?:(?P<net>net/\w+)|version|cpuinfo|meminfo|mounts)$"
)


_READERS = frozenset({"cat", "head", "tail", "less", "more"})


_FILTERS = frozenset(
    {
        ("grep",),
        ("egrep",),
        ("fgrep",),
        ("findstr",),
        ("select-string",),
        ("where-object",),
        ("?",),
        ("where",),
    }
)


_INVENTORIES = {
    "systemctl": re.compile(r"^list-(?:units|unit-files|timers|sockets)\b"),
    "service": re.compile(r"--status-all"),
    "dpkg": re.compile(r"^-l\b|--list"),
    "rpm": re.compile(r"^-qa\b"),
    "apt": re.compile(r"^list --installed"),
    "ip": re.compile(r"^(?:a|addr|address|r|route|n|neigh|link|l)\b"),
    "sc": re.compile(r"^query(?:ex)?\b|^qc\b"),
    "reg": re.compile(r"^query\b"),
}


def _recon_key(prog: str, cmd: Command) -> tuple[str, str] | None:
    """What a standalone command discovers: ``(key, family)``, a key counted once per call."""
    if prog in _INVENTORIES:
        match = _INVENTORIES[prog].search(" ".join(cmd.args))
        return (f"{prog} {match.group().split()[0]}", _FAMILIES[prog]) if match else None
    if prog in _FAMILIES:
        return prog, _FAMILIES[prog]
    if prog in _READERS:
        for a in cmd.args:
            match = _RECON_FILES.match(a)
            if match:
                family = (
                    "accounts"
                    if match["accounts"]
                    else "network"
                    if match["network"] or match["net"]
                    else "system"
                )
                return f"{prog} {a}", family
    return None


def _discovery_pairs_and_fetched_code(commands: Sequence[Command]) -> list[Finding]:
    """A pair of discovery commands run one after another, a download made executable, a
    credential store's path fed to another program."""
    out: list[Finding] = []
    recon: dict[str, str] = {}
    fetched: set[str] = set()
    for cmd in commands:
        prog = cmd.program.removesuffix(".exe")
        if prog in ("sudo", "crontab") and cmd.args[:1] == ("-l",):
            prog += "-l"
        # only commands run as statements of their own: not inside $( ), a pipe or xargs
        # a targeted lookup (``ps aux | grep node``) is not a survey
        if not cmd.via and not cmd.upstream and cmd.downstream[:1] not in _FILTERS:
            found = _recon_key(prog, cmd)
            if found is not None:
                recon[found[0]] = found[1]
        if prog in ("curl", "wget", "fetch"):
            args = cmd.args
            for i, a in enumerate(args[:-1]):
                if a in ("-o", "--output", "-O", "--output-document"):
                    fetched.add(args[i + 1])
        if (
            prog == "chmod"
            and fetched & set(plain_args(cmd)[1:])
            and re.search(r"\+\w*x|[0-7]?[1357][0-7]{2}$", " ".join(cmd.args[:1]))
        ):
            out.append(
                _finding(
                    "malware",
                    "ask",
                    "downloads a program and makes it executable",
                    cmd,
                    "py.call.makes-download-executable",
                    ("T1105", "T1222.002"),
                )
            )
        if cmd.downstream and prog in ("echo", "printf", "cat"):
            # text fed to an editor or interpreter that names a credential store (``e /etc/shadow``)
            words = " ".join(cmd.args).split()
            hit = next((w for w in words if w.startswith(("/", "~")) and secret_path(w)), None)
            if hit is not None:
                out.append(
                    _finding(
                        "credential_access",
                        "ask",
                        f"feeds a credential store's path to {cmd.downstream[0]}",
                        cmd,
                        "py.call.feeds-credential-path",
                        ("T1552.001",),
                    )
                )
    if len(recon) >= 3 or len(set(recon.values())) >= 2:
        out.append(
            Finding(
                "network_attack",
                "ask",
                f"runs discovery commands one after another: {', '.join(sorted(recon)[:5])}",
                rule_id="py.call.discovery-pair",
                attack=("T1082", "T1087", "T1016"),
            )
        )
    return out


_Check = Callable[[Sequence[Command]], list[Finding]]

#: ``(rule id, check)`` for each check of a whole call.
CALL_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("py.calls.droppers-and-discovery-files", _droppers_and_discovery_files),
    ("py.calls.discovery-pairs-and-fetched-code", _discovery_pairs_and_fetched_code),
)

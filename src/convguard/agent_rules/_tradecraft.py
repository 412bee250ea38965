"""Rules for attack tradecraft on Linux and macOS, by what a command does rather than which tool
does it: reconnaissance (sweeps, security-software and password-policy lookups, public-address
lookups), collection (screens, clipboards, keystrokes, microphones, mail, browser data, archives of
home and system folders), command and control (tunnels, proxies, relays, listeners), evasion
(history settings, preloaded libraries, kernel hardening turned off, programs disguised among
system binaries, hidden files in scratch folders, log deletion through ``find``), impact
(miners and CPU burners, stopped system daemons, accounts locked or removed, encryption) and the
steps of a dropper within one call (fetch or decode a file, make it executable, run it).

:data:`TRADECRAFT_RULES` maps a program (lower case) to a rule over one parsed command, like the
other rule tables, and :func:`tradecraft_call_findings` looks at one call's commands together.
Every rule fires on a verb, a flag, a target or a pairing of commands that an everyday build, test
or file edit does not have; none fires on a program's name alone when it has ordinary uses.
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from convguard.agent.findings import Finding, Level, option_flags, plain_args, render
from convguard.agent.paths import fold_home, log_path
from convguard.agent.shell import Command

__all__ = [
    "TRADECRAFT_RULES",
    "tradecraft_call_findings",
]

_Rule = Callable[[Command], list[Finding]]


def _finding(category: str, level: Level, reason: str, cmd: Command, *, lowerable: bool = False) -> Finding:  # fmt: skip
    return Finding(category, level, f"{reason}: {render(cmd)}", (), "", lowerable)


def _always(category: str, level: Level, reason: str, *, lowerable: bool = False) -> _Rule:
    def rule(cmd: Command) -> list[Finding]:
        return [_finding(category, level, reason, cmd, lowerable=lowerable)]

    return rule


def _when(pattern: str, category: str, level: Level, reason: str, *, lowerable: bool = False) -> _Rule:  # fmt: skip
    compiled = re.compile(pattern)

    def rule(cmd: Command) -> list[Finding]:
        if compiled.search(" ".join(cmd.args).lower()):
            return [_finding(category, level, reason, cmd, lowerable=lowerable)]
        return []

    return rule


# --- reconnaissance ------------------------------------------------------------------------------

# Security products, as they appear in process, package, module and application lists.
_SECURITY_PRODUCTS = re.compile(
    r"falcon|crowdstrike|sentinel|carbon ?black|cbagent|cylance|sophos|eset|kaspersky|mcafee|symantec"
    r"|norton|defender|mdatp|avast|avg\b|bitdefender|trend ?micro|malwarebytes|clamav|clamd|osquery"
    r"|sysmon|auditd|wazuh|ossec|elastic-agent|tanium|qualys|rapid7|little ?snitch|lulu|knockknock"
    r"|blockblock|xprotect|santa\b|gatekeeper|selinux|apparmor|aide\b|tripwire|rkhunter|chkrootkit"
    r"|\bav\b|antivirus|\bedr\b|endpoint security",
    re.I,
)
_LISTERS = frozenset(
    {"ps", "pgrep", "ls", "launchctl", "systemctl", "service", "lsmod", "kextstat", "kmutil",
     "dpkg", "rpm", "apt", "yum", "dnf", "brew", "pkgutil", "system_profiler", "top"}
)  # fmt: skip


def _grep(cmd: Command) -> list[Finding]:
    """grep after a process/package list for security products; or for secrets across a system."""
    args = cmd.args
    patterns = [a for a in args if not a.startswith("-")]
    text = " ".join(patterns)
    if (
        cmd.program == "pgrep" or any(p in _LISTERS for p in cmd.upstream)
    ) and _SECURITY_PRODUCTS.search(text):
        return [_finding("persistence_evasion", "ask", "looks for security software", cmd)]
    if re.search(r"passw|passwd|pwd\b|secret|api[_-]?key|credential|private key|token", text, re.I):
        roots = patterns[1:]
        wide = any(
            fold_home(r).rstrip("/")
            in (
                "/",
                "~",
                "/home",
                "/etc",
                "/var",
                "/root",
                "/Users",
                "/opt",
                "/srv",
                "~/Documents",
                "~/Desktop",
            )
            or fold_home(r).startswith(("/etc/", "/var/www", "/home/", "/root/"))
            for r in roots
        )
        if wide and option_flags(cmd) & {"-r", "-R", "--recursive"}:
            return [
                _finding("credential_access", "ask", "searches files for passwords or keys", cmd)
            ]
    return []


_SWEEP = re.compile(r"^(?:\d{1,3}\.){2,3}(?:\$|\{\d|%%?\w)")  # $i, {1..254}, cmd's %i


def _probe(cmd: Command) -> list[Finding]:
    """ping/arping/nc/curl over a range of addresses built in a loop: a sweep."""
    if any(_SWEEP.match(a) for a in cmd.args):
        return [_finding("network_attack", "ask", "sweeps a range of addresses", cmd)]
    if cmd.program == "ping" and "-p" in cmd.args:
        return [_finding("exfiltration", "ask", "hides data in ping padding", cmd)]
    return []


_BUILT_NAME = re.compile(r"(?:\)|\$\{?\w+\}?)\.(?:[\w-]+\.)+[a-z]{2,}\b", re.I)


# --- collection ----------------------------------------------------------------------------------

_HOME_OR_SYSTEM = re.compile(
    r"^(?:~|/home|/Users|/root|/etc|/var/log|/var/www|/var/lib/mysql|/var/mail|~/(?:Documents|Desktop|Downloads|Pictures|\.ssh|\.gnupg|\.aws|Library))/?\*?$"
    r"|^/home/[^/]+/?\*?$|^/Users/[^/]+/?\*?$"
)


def _archive(cmd: Command) -> list[Finding]:
    """Archives of home and system folders (staging) or with a password (hiding the content)."""
    flags = option_flags(cmd)
    args = cmd.args
    program = cmd.program.removesuffix(".exe")  # ``Rar.exe``, ``7z.exe`` on Windows
    out: list[Finding] = []
    if (
        (program == "zip" and (flags & {"-P", "-e", "--password", "--encrypt"}))
        or (program in ("7z", "7za", "7zr") and any(re.match(r"-p\S", a) for a in args))
        or (program == "rar" and any(re.match(r"-h?p\S", a) for a in args))
    ):
        out.append(
            _finding("exfiltration", "ask", "packs files into a password-protected archive", cmd)
        )
    if program in ("tar", "zip", "7z", "7za", "rar", "ditto") and any(
        _HOME_OR_SYSTEM.match(fold_home(a)) for a in plain_args(cmd)
    ):
        out.append(
            _finding("exfiltration", "ask", "collects a home or system folder into an archive", cmd)
        )
    return out


# --- command and control -------------------------------------------------------------------------


def _listener(cmd: Command) -> list[Finding]:
    if "-l" in option_flags(cmd) or "--listen" in cmd.args:
        return [
            _finding(
                "malware", "ask", f"listens for connections with {cmd.program}", cmd, lowerable=True
            )
        ]
    return []


# --- evasion and privilege -----------------------------------------------------------------------

_SYSTEM_BIN = re.compile(r"^/(?:usr/)?s?bin/|^/(?:usr/)?lib(?:64|32)?/|^/System/")
_SYSTEM_PROGRAMS = re.compile(r"^/(?:usr/)?s?bin/|^/System/")
_SCRATCH = ("/tmp/", "/var/tmp/", "/dev/shm/", "/private/tmp/")


def _placer(cmd: Command) -> list[Finding]:
    """cp/mv/ln/install: a program placed among system binaries, or a system program copied out
    under another name (masquerading)."""
    plain = plain_args(cmd)
    if len(plain) < 2:
        return []
    dest, sources = plain[-1], plain[:-1]
    name = dest.rstrip("/").rsplit("/", 1)[-1]
    if cmd.program != "ln" and _SYSTEM_PROGRAMS.match(dest):
        return [
            _finding(
                "persistence_evasion",
                "ask",
                "places a file among system programs",
                cmd,
                lowerable=True,
            )
        ]
    if dest.startswith(_SCRATCH) and any(
        re.match(
            r"~/(?:Documents|Desktop|Downloads|Pictures|\.ssh|\.gnupg|\.aws)\b|/home/[^/]+/?\*?$",
            fold_home(s),
        )
        for s in sources
    ):
        return [_finding("exfiltration", "ask", "stages user files in a temporary folder", cmd)]
    if any(_SYSTEM_BIN.match(s) for s in sources) and (
        dest.startswith(_SCRATCH) or name.startswith(".") or fold_home(dest).startswith("~")
    ):
        return [
            _finding(
                "persistence_evasion",
                "ask",
                "copies a system program elsewhere (masquerading)",
                cmd,
            )
        ]
    return []


def _hidden_dir(cmd: Command) -> list[Finding]:
    if any(
        p.startswith(_SCRATCH) and re.search(r"/\.[^./][^/]*(?:/|$)", p) for p in plain_args(cmd)
    ):
        return [_finding("persistence_evasion", "ask", "hides files in a temporary folder", cmd)]
    return []


_DAEMONS = re.compile(
    r"^(?:cron|crond|atd|anacron|sshd?|rsyslogd?|syslogd?|systemd-\w+|dbus|networking|network-manager"
    r"|NetworkManager|firewalld|ufw|iptables|nftables|apache2|httpd|nginx|mysqld?|mariadb|postgresql"
    r"|mongod|docker|containerd|cups|bluetooth)(?:\.service)?$",
    re.I,
)


def _stop_daemon(cmd: Command) -> list[Finding]:
    """Stopping or killing the machine's own daemons (cron, ssh, logging, databases)."""
    words = cmd.args
    if cmd.program in ("systemctl", "service"):
        verb = next((w for w in words if w in ("stop", "disable", "mask", "kill")), None)
        if verb and any(_DAEMONS.match(w) for w in words if w != verb):
            return [
                _finding("denial_of_service", "ask", "stops a system service", cmd, lowerable=True)
            ]
        if any(
            w in ("poweroff", "reboot", "halt", "kexec", "rescue", "emergency") for w in words[:2]
        ):
            return [
                _finding(
                    "denial_of_service",
                    "ask",
                    "shuts down or reboots the machine",
                    cmd,
                    lowerable=True,
                )
            ]
        return []
    targets = [w.strip("^$") for w in plain_args(cmd)]
    if any(_DAEMONS.match(t) for t in targets):
        return [_finding("denial_of_service", "ask", "kills a system daemon", cmd, lowerable=True)]
    return []


def _yes(cmd: Command) -> list[Finding]:
    if not cmd.downstream and any(t == "/dev/null" for op, t in cmd.redirects):
        return [_finding("denial_of_service", "ask", "burns CPU", cmd, lowerable=True)]
    return []


def _find_wipe(cmd: Command) -> list[Finding]:
    roots = [a for a in cmd.args if not a.startswith(("-", "(", "!"))][:3]
    text = " ".join(cmd.args)
    if any(log_path(r) for r in roots) and re.search(
        r"-delete|-exec\s+(?:rm|shred|truncate)|-exec\s+sh\b", text
    ):
        return [_finding("persistence_evasion", "deny", "deletes logs", cmd)]
    return []


_CLOUD_SECRETS = re.compile(
    r"secretsmanager get-secret-value|ssm get-parameters?\b.*--with-decryption|secrets versions access"
    r"|keyvault secret (?:show|download)|kms decrypt|sts get-session-token|iam list-access-keys"
    r"|ec2 get-password-data|modify-snapshot-attribute|modify-image-attribute|get-console-output"
)


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


def _dd_over(cmd: Command) -> list[Finding]:
    """dd writing zeros or random bytes over a file in a home or system folder."""
    source = next((a[3:] for a in cmd.args if a.startswith("if=")), "")
    target = next((fold_home(a[3:]) for a in cmd.args if a.startswith("of=")), "")
    if (
        source in ("/dev/zero", "/dev/urandom", "/dev/random")
        and target.startswith(("~", "/"))
        and not target.startswith(("/tmp", "/dev/null", "/var/tmp"))
    ):
        return [
            _finding(
                "destructive",
                "ask",
                "overwrites a file with zeros or random bytes",
                cmd,
                lowerable=True,
            )
        ]
    return []


def _raw_send(cmd: Command) -> list[Finding]:
    """nc/ncat/telnet fed a file or an archive: data sent over a raw connection."""
    out = _probe(cmd) + _listener(cmd)
    fed = any(op == "<" for op, _t in cmd.redirects) or any(
        p in ("cat", "tar", "zip", "gzip", "base64", "xxd", "dd") for p in cmd.upstream
    )
    if fed and not out and any(not a.startswith("-") for a in cmd.args):
        out.append(
            _finding(
                "exfiltration", "ask", f"sends data over a raw connection with {cmd.program}", cmd
            )
        )
    return out


TRADECRAFT_RULES: dict[str, _Rule] = {
    "grep": _grep,
    "egrep": _grep,
    "fgrep": _grep,
    "rg": _grep,
    "pgrep": _grep,
    "nc": _raw_send,
    "ncat": _raw_send,
    "telnet": _raw_send,
    "tar": _archive,
    "zip": _archive,
    "7z": _archive,
    "7za": _archive,
    "7zr": _archive,
    "rar": _archive,
    "ditto": _archive,
    "mv": _placer,
    "ln": _placer,
    "install": _placer,
    "mkdir": _hidden_dir,
    "touch": _hidden_dir,
    "systemctl": _stop_daemon,
    "service": _stop_daemon,
    "pkill": _stop_daemon,
    "killall": _stop_daemon,
    "yes": _yes,
    "find": _find_collect,
    "dd": _dd_over,
    "cp": _placer,
}


# --- one call's commands together ----------------------------------------------------------------

_SHELLS = frozenset(
    {"sh", "bash", "zsh", "dash", "ksh", "ash", "python", "python3", "perl", "ruby", "php", "node"}
)
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
# (LD_PRELOAD of a scratch folder is the program rules' business; one in the project is a test)
_KERNEL_OR_LOGGING = re.compile(
    r"^/proc/sys/|^/sys/kernel/|^/sys/fs/selinux/|^/etc/(?:audit/|rsyslog|syslog|systemd/journald\.conf|audisp/|selinux/config|apparmor)"
)
_ACCOUNT_LISTS = re.compile(
    r"^(?:getent (?:passwd|group|shadow)|dscl \. -?list /(?:Users|Groups)|dscacheutil -q (?:user|group)|lastlog|last)\b"
)
_VARS = frozenset({"HISTCONTROL", "HISTIGNORE", "PROMPT_COMMAND", "LD_AUDIT"})


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


def tradecraft_call_findings(commands: Sequence[Command]) -> list[Finding]:
    """A dropper's steps within one call (a file fetched or decoded, made executable, run), code
    decoded into an interpreter, discovery files read together, and history/loader variables."""
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
            out.append(_finding("malware", "ask", "runs a program from shared memory", cmd))
        elif "/" in run and base and (base in fetched or base in decoded):
            out.append(_finding("malware", "ask", "runs a program it just fetched or decoded", cmd))
        elif run.startswith(_SCRATCH) and run in executable:
            out.append(
                _finding("malware", "ask", "makes a temporary file executable and runs it", cmd)
            )
        if (
            prog in _SHELLS
            and not plain_args(cmd)
            and cmd.upstream
            and any(p in _DECODERS for p in cmd.upstream)
        ):
            out.append(_finding("persistence_evasion", "ask", "runs code decoded from text", cmd))
        for a in cmd.args:
            if _DISCOVERY_FILES.match(a):
                facts.add(a)
        listing = _ACCOUNT_LISTS.match(" ".join(cmd.argv))
        if listing:
            facts.add(listing.group())
        written = [t for op, t in cmd.redirects if op in (">", ">>", ">|")]
        if prog == "tee" or (prog == "sed" and "-i" in option_flags(cmd)):
            written += plain_args(cmd)
        hit = next((w for w in written if _KERNEL_OR_LOGGING.match(w)), None)
        if hit is not None:
            out.append(
                _finding(
                    "persistence_evasion", "ask", f"changes kernel or logging settings ({hit})", cmd
                )
            )
        for name, value in cmd.assignments:
            if name in _VARS and value:
                level: Level = "ask"
                out.append(
                    Finding(
                        "persistence_evasion",
                        level,
                        f"sets {name} (history, logging or library loading): {name}={value[:60]}",
                    )
                )
    if len(facts) >= 2:
        out.append(
            Finding(
                "network_attack",
                "ask",
                f"reads several system facts: {', '.join(sorted(facts)[:4])}",
            )
        )
    return out

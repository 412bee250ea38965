"""Checks of one command that need code, by program: what the YAML rules cannot say as a pattern
(a loop over the arguments, a pairing with the pipe or the redirections, a path test).

Reconnaissance (grep after a process list for security products, recursive searches for
passwords, sweeps fed by a loop), collection (archives of home and system folders, user files
staged in a temporary folder, cloud-storage copies, remote copies of secrets, posted files),
command and control (raw connections fed a file, shells piped through telnet or openssl,
listeners), evasion (programs placed among or copied out of system binaries, hidden files in
scratch folders, system daemons stopped, timestamps copied, git made to run programs, traps,
packed programs), impact (files overwritten or moved into /dev/null, clouds and clusters torn
down, endless CPU burners, destroyed finds).

:data:`PROGRAM_CHECKS` maps a program (lower case, without ``.exe``) to its checks; each returns
the findings for one parsed command. Every check fires on a verb, a flag, a target or a pairing
that an everyday build, test or deployment does not have.
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from convguard.agent.findings import Finding, Level, option_flags, plain_args, render
from convguard.agent.paths import fold_home, hosts_in, log_path
from convguard.agent.shell import Command

__all__ = ["PROGRAM_CHECKS"]

_Rule = Callable[[Command], list[Finding]]


def _finding(category: str, level: Level, reason: str, cmd: Command, *, lowerable: bool = False) -> Finding:  # fmt: skip
    return Finding(category, level, f"{reason}: {render(cmd)}", (), "", lowerable)


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


def _listener(cmd: Command) -> list[Finding]:
    if "-l" in option_flags(cmd) or "--listen" in cmd.args:
        return [
            _finding(
                "malware", "ask", f"listens for connections with {cmd.program}", cmd, lowerable=True
            )
        ]
    return []


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


_LOOPBACK = re.compile(r"^(?:localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|::1|\[::1\])$")


def _name(cmd: Command) -> str:
    """The program's name without ``.exe`` (``rclone.exe`` on Windows is ``rclone``)."""
    return cmd.program.removesuffix(".exe")


def _remote(hosts: Sequence[str]) -> bool:
    return any(not _LOOPBACK.match(h) for h in hosts)


# Folders whose wholesale copy is collection: homes, documents, keys, system configuration, web
# roots, databases.
_COLLECTED = re.compile(
    r"^(?:~|/home|/Users|/root|/etc|/var/www|/var/lib/mysql|/var/lib/postgresql|/var/mail|/srv)/?\*?$"
    r"|^~/(?:Documents|Desktop|Downloads|Pictures|\.ssh|\.gnupg|\.aws|\.config|\.kube|Library)(?:/|$)"
    r"|^/home/[^/]+/?\*?$|^/Users/[^/]+/?\*?$"
)


def _collected(arg: str) -> bool:
    return bool(_COLLECTED.match(fold_home(arg)))


def _cloud_copy(cmd: Command) -> list[Finding]:
    """A home, key or system folder copied to cloud storage (``aws s3``, ``gsutil``, ``rclone``,
    ``az storage``)."""
    args = cmd.args
    text = " ".join(args).lower()
    plain = plain_args(cmd)
    if _name(cmd) == "rclone":
        if (
            plain[:1]
            and plain[0] in ("copy", "sync", "move", "copyto", "moveto")
            and len(plain) >= 3
        ):
            source, dest = plain[1], plain[-1]
            if re.match(r"^[\w-]{2,}:", dest) and not re.match(r"^[\w-]{2,}:", source):
                return [_finding("exfiltration", "ask", "copies files to cloud storage", cmd)]
        return []
    if re.search(
        r"\bs3 (?:cp|sync|mv)\b|^(?:cp|rsync|mv)\b|storage (?:blob upload|copy|fs)", text
    ) and any(_collected(a) for a in plain):
        return [
            _finding(
                "exfiltration", "ask", "copies a home, key or system folder to cloud storage", cmd
            )
        ]
    return []


_IDENTITY_DISCOVERY = re.compile(
    r"\biam (?:list-(?:users|roles|groups|policies|attached-\w+|user-policies|access-keys)|get-account-authorization-details)"
    r"|\borganizations list-accounts|\bad (?:user|group|sp|app) list|\brole assignment list"
    r"|\bget-iam-policy\b|\biam service-accounts (?:list|keys list)|\bsecretsmanager list-secrets"
)


def _cloud(cmd: Command) -> list[Finding]:
    out = _cloud_copy(cmd) + _cloud_destroy(cmd)
    if _IDENTITY_DISCOVERY.search(" ".join(cmd.args).lower()):
        out.append(
            _finding("network_attack", "ask", "enumerates cloud identities and permissions", cmd)
        )
    return out


# What a backup of a home directory does not single out: documents, keys, system configuration.
_SINGLED_OUT = re.compile(
    r"^~/(?:Documents|Desktop|Downloads|Pictures|\.ssh|\.gnupg|\.aws|\.kube|\.config|Library/(?:Keychains|Mail|Messages|Cookies))(?:/|$)"
    r"|^/etc/?\*?$|^/var/(?:mail|lib/mysql|lib/postgresql)/?"
)


def _remote_copy(cmd: Command) -> list[Finding]:
    """scp/rsync of documents, keys or system configuration to another host (a whole home
    directory copied to a server is more often a backup)."""
    plain = plain_args(cmd)
    if len(plain) < 2:
        return []
    dest, sources = plain[-1], plain[:-1]
    if re.match(r"^(?:[\w.-]+@)?[\w.-]+:", dest) and any(
        _SINGLED_OUT.match(fold_home(s)) for s in sources
    ):
        return [
            _finding(
                "exfiltration",
                "ask",
                "copies documents, keys or system configuration to another host",
                cmd,
            )
        ]
    return []


_DATA_FLAGS = frozenset(
    {"-d", "--data", "--data-binary", "--data-raw", "--data-urlencode", "--data-ascii"}
)


_DOH = re.compile(r"/dns-query\b|/resolve\?(?:name|type)=|dns\.google/|cloudflare-dns\.com/|doh\.")


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
    host, and names resolved over HTTPS (DNS over HTTPS, a covert channel)."""
    args = cmd.args
    out: list[Finding] = []
    hosts = hosts_in(args)
    for i, a in enumerate(args[:-1]):
        if (
            a in _DATA_FLAGS
            and args[i + 1].startswith("@")
            and _remote(hosts)
            and _posted(args[i + 1], cmd)
        ):
            out.append(
                _finding("exfiltration", "ask", "posts a file or piped data to a remote host", cmd)
            )
            break
    if _DOH.search(" ".join(args).lower()):
        out.append(
            _finding("exfiltration", "ask", "resolves names over HTTPS (a covert channel)", cmd)
        )
    return out


def _shell_over(cmd: Command) -> list[Finding]:
    """A shell piped to or from telnet or ``openssl s_client``: a remote shell."""
    shells = {"sh", "bash", "zsh", "dash", "ksh", "ash"}
    if _name(cmd) == "openssl" and "s_client" not in cmd.args:
        return []
    if shells & set(cmd.upstream + cmd.downstream):
        return [_finding("malware", "deny", f"pipes a shell through {cmd.program}", cmd)]
    return []


_RUNS_SOMETHING = re.compile(
    r"\bsh\s+-c\b|\bbash\b|/tmp/|/dev/shm/|/var/tmp/|\bcurl\b|\bwget\b|\bnc\b|base64"
)


def _git_config(cmd: Command) -> list[Finding]:
    args = [a.lower() for a in cmd.args]
    if "config" not in args:
        return []
    for i, a in enumerate(args[:-1]):
        if (
            a
            in ("core.pager", "core.fsmonitor", "core.sshcommand", "core.hookspath", "core.editor")
            or (a.startswith("alias.") and args[i + 1].startswith("!"))
        ) and _RUNS_SOMETHING.search(args[i + 1]):
            return [
                _finding("persistence_evasion", "ask", "makes git run a program on every use", cmd)
            ]
    return []


_CLOUD_DESTROY = re.compile(
    r"\bs3 rb\b|\bs3 rm\b.*--recursive|\bec2 terminate-instances\b|\brds delete-db-(?:instance|cluster)\b"
    r"|\bs3api delete-bucket\b|\bcloudformation delete-stack\b|\bdynamodb delete-table\b|\bgroup delete\b"
    r"|\b(?:instances|disks|snapshots|buckets|clusters|projects) delete\b|\bstorage rm\b.*(?:-r|--recursive)"
)


def _cloud_destroy(cmd: Command) -> list[Finding]:
    """Cloud resources, clusters or infrastructure destroyed wholesale."""
    text = " ".join(cmd.args).lower()
    hit = False
    if _name(cmd) == "terraform":
        hit = bool(re.match(r"(?:-\S+\s+)*destroy\b", text)) or "apply -destroy" in text
    elif _name(cmd) == "kubectl":
        hit = bool(
            re.search(
                r"\bdelete\s+(?:namespace|ns|pv|persistentvolume|node|nodes)\b|\bdelete\b.*--all\b",
                text,
            )
        )
    else:
        hit = bool(_CLOUD_DESTROY.search(text))
    if hit:
        return [
            _finding(
                "destructive",
                "ask",
                "destroys cloud resources or infrastructure",
                cmd,
                lowerable=True,
            )
        ]
    return []


def _upx(cmd: Command) -> list[Finding]:
    if not set(cmd.args) & {
        "-d",
        "--decompress",
        "-t",
        "--test",
        "-l",
        "--list",
        "-V",
        "--version",
        "-h",
        "--help",
    }:
        return [
            _finding("persistence_evasion", "ask", "packs a program (hides it from scanners)", cmd)
        ]
    return []


_FETCH_OR_CONNECT = re.compile(
    r"\bcurl\b|\bwget\b|\bnc\b|\bncat\b|/dev/tcp/|\bbash -i\b|\bsh -i\b|base64|\bpython3? -c\b"
)


def _trap(cmd: Command) -> list[Finding]:
    if cmd.args and _FETCH_OR_CONNECT.search(cmd.args[0]):
        return [
            _finding(
                "persistence_evasion",
                "ask",
                "runs a network command whenever the shell gets a signal or exits (trap)",
                cmd,
            )
        ]
    return []


def _zone_transfer(cmd: Command) -> list[Finding]:
    """Names built from piped data (``xargs -I{} dig {}.example.com``): data in DNS queries."""
    if cmd.via.endswith("xargs") and any("{}." in a for a in cmd.args):
        return [_finding("exfiltration", "ask", "sends data in DNS queries", cmd)]
    return []


def _file_transfer(cmd: Command) -> list[Finding]:
    """Files put on a server over FTP or TFTP (an unencrypted upload channel)."""
    text = " ".join(cmd.args) + " " + (cmd.stdin or "")
    if re.search(r"(?:^|\s)m?put\s+\S", text):
        return [_finding("exfiltration", "ask", f"uploads files with {cmd.program}", cmd)]
    return []


def _serve_root(cmd: Command) -> list[Finding]:
    """A web server started over the whole filesystem, a home or system folder."""
    args = cmd.args
    for i, a in enumerate(args[:-1]):
        if a in ("-h", "-t", "--directory", "-d") and (
            args[i + 1] in ("/", "~", "/etc", "/home", "/root", "/Users") or _collected(args[i + 1])
        ):
            return [
                _finding(
                    "exfiltration", "ask", "serves a home or system folder over the network", cmd
                )
            ]
    return []


def _openssl(cmd: Command) -> list[Finding]:
    if "s_client" in cmd.args and any(
        op == "<" and not t.startswith("/dev/") for op, t in cmd.redirects
    ):
        return [
            _finding("exfiltration", "ask", "sends a file over a TLS connection with openssl", cmd)
        ]
    return _shell_over(cmd)


_LOGIN_RECORDS = re.compile(r"/[wbu]tmp$")


def _utmp(cmd: Command) -> list[Finding]:
    if any(_LOGIN_RECORDS.search(a) for a in cmd.args) or any(
        _LOGIN_RECORDS.search(t) for _op, t in cmd.redirects
    ):
        return [_finding("persistence_evasion", "ask", "reads or rewrites login records", cmd)]
    return []


def _move_away(cmd: Command) -> list[Finding]:
    """A home or system folder moved into /dev/null (gone)."""
    plain = plain_args(cmd)
    if (
        len(plain) >= 2
        and plain[-1] == "/dev/null"
        and any(
            fold_home(p).rstrip("/")
            in ("", "~", "/etc", "/home", "/usr", "/var", "/bin", "/boot", "/root")
            for p in plain[:-1]
        )
    ):
        return [
            _finding("destructive", "deny", "moves a home or system folder into /dev/null", cmd)
        ]
    return []


def _cat(cmd: Command) -> list[Finding]:
    """Endless random or zero bytes written to a file."""
    args = cmd.args
    if (
        any(a in ("/dev/urandom", "/dev/zero", "/dev/random") for a in args)
        and not cmd.downstream
        and any(op in (">", ">>") and not t.startswith("/dev/") for op, t in cmd.redirects)
    ):
        return [_finding("denial_of_service", "ask", "fills the disk", cmd, lowerable=True)]
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


_SYSTEM_FILE = re.compile(r"^/(?:bin|sbin|usr|etc|lib|lib64|boot|System)/")


def _timestomp(cmd: Command) -> list[Finding]:
    """touch copying a system file's times (``touch -r /bin/ls x``): timestomping."""
    args = cmd.args
    for i, a in enumerate(args[:-1]):
        if a in ("-r", "--reference") and _SYSTEM_FILE.match(args[i + 1]):
            return [
                _finding(
                    "persistence_evasion",
                    "ask",
                    "copies a system file's timestamps (timestomping)",
                    cmd,
                )
            ]
        if a.startswith("--reference=") and _SYSTEM_FILE.match(a.split("=", 1)[1]):
            return [
                _finding(
                    "persistence_evasion",
                    "ask",
                    "copies a system file's timestamps (timestomping)",
                    cmd,
                )
            ]
    return []


#: The checks of each program (lower case, without ``.exe``), in the order they run.
PROGRAM_CHECKS: dict[str, tuple[_Rule, ...]] = {
    "grep": (_grep,),
    "egrep": (_grep,),
    "fgrep": (_grep,),
    "rg": (_grep,),
    "pgrep": (_grep,),
    "nc": (_raw_send,),
    "ncat": (_raw_send,),
    "telnet": (
        _raw_send,
        _shell_over,
    ),
    "tar": (_archive,),
    "zip": (_archive,),
    "7z": (_archive,),
    "7za": (_archive,),
    "7zr": (_archive,),
    "rar": (_archive,),
    "ditto": (_archive,),
    "mv": (
        _placer,
        _move_away,
    ),
    "ln": (_placer,),
    "install": (_placer,),
    "mkdir": (_hidden_dir,),
    "touch": (
        _hidden_dir,
        _timestomp,
    ),
    "systemctl": (_stop_daemon,),
    "service": (_stop_daemon,),
    "pkill": (_stop_daemon,),
    "killall": (_stop_daemon,),
    "yes": (_yes,),
    "find": (
        _find_collect,
        _find_destroy,
    ),
    "dd": (_dd_over,),
    "cp": (_placer,),
    "aws": (_cloud,),
    "gsutil": (
        _cloud_copy,
        _cloud_destroy,
    ),
    "az": (_cloud,),
    "gcloud": (_cloud,),
    "rclone": (_cloud_copy,),
    "scp": (_remote_copy,),
    "rsync": (_remote_copy,),
    "curl": (_post,),
    "openssl": (_openssl,),
    "git": (_git_config,),
    "terraform": (_cloud_destroy,),
    "kubectl": (_cloud_destroy,),
    "upx": (_upx,),
    "trap": (_trap,),
    "dig": (_zone_transfer,),
    "host": (_zone_transfer,),
    "nslookup": (_zone_transfer,),
    "drill": (_zone_transfer,),
    "ftp": (_file_transfer,),
    "tftp": (_file_transfer,),
    "lftp": (_file_transfer,),
    "busybox": (_serve_root,),
    "php": (_serve_root,),
    "utmpdump": (_utmp,),
    "cat": (_cat,),
}

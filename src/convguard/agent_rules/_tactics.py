"""More attacker tactics on Linux and macOS, by what a command does: data copied to cloud storage
or remote hosts, posted, uploaded over FTP or resolved out; tunnelling and remote-access programs;
capability, container, Wi-Fi and zone-transfer reconnaissance; traffic redirected (routes,
proxies); interfaces, disks and clouds taken down or filled; privileged commands aliased; git,
traps, launch plists and browser extensions made to run a program; scripts that delete
themselves, timestamps and clocks changed; keyrings and password managers read; web shells and
planted libraries; shells and sockets opened from other interpreters; and a pair of discovery
commands run one after another.

:data:`TACTIC_RULES` maps a program (lower case, without ``.exe``) to a rule over one parsed
command, like the other rule tables; :func:`tactic_call_findings` looks at one call's commands
together; and :func:`interpreter_findings` reads code for perl, ruby, php, lua or node. The
Windows counterparts live in :mod:`convguard.agent_rules._windows_tactics`.

As elsewhere, a rule fires on a verb, a flag, a target or a pairing that an everyday build, test
or deployment does not have, never on a program name that has ordinary uses.
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import re
from collections.abc import Sequence

from convguard.agent.findings import Finding, plain_args
from convguard.agent.paths import fold_home, hosts_in, secret_path
from convguard.agent.shell import Command
from convguard.agent_rules._tradecraft import _finding, _Rule

__all__ = [
    "TACTIC_RULES",
    "interpreter_findings",
    "tactic_call_findings",
]

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


# --- exfiltration: cloud storage, remote copies, posted data, DNS over HTTPS ----------------------


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


# --- command and control, lateral movement -------------------------------------------------------

_TUNNELS = ("frpc", "frps", "gost", "iox", "revsocks", "rpivot", "stowaway", "bore", "sshuttle",
            "pingtunnel", "icmpsh", "dns2tcp", "dns2tcpc", "dns2tcpd", "udp2raw", "neo-regeorg",
            "regeorg", "rathole", "hans", "inlets")  # fmt: skip


def _shell_over(cmd: Command) -> list[Finding]:
    """A shell piped to or from telnet or ``openssl s_client``: a remote shell."""
    shells = {"sh", "bash", "zsh", "dash", "ksh", "ash"}
    if _name(cmd) == "openssl" and "s_client" not in cmd.args:
        return []
    if shells & set(cmd.upstream + cmd.downstream):
        return [_finding("malware", "deny", f"pipes a shell through {cmd.program}", cmd)]
    return []


# --- discovery, privilege, evasion ---------------------------------------------------------------


_PRIVILEGED = re.compile(r"^(?:sudo|su|doas|ssh|passwd|scp|pkexec)=")


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


_REMOTE_DESKTOPS = (
    "tmate",
    "x11vnc",
    "teamviewer",
    "anydesk",
    "rustdesk",
    "meshagent",
    "screenconnect",
)


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


_SECURITY_NAMES = re.compile(
    r"audit|apparmor|selinux|falcon|crowdstrike|sentinel|clam|osquery|sysmon|wazuh|ossec|syslog|journald|defender|mdatp|carbonblack|cbagent|cylance|sophos|eset|elastic-agent|tanium|qualys",
    re.I,
)


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


_TOKENS_PRINTED = re.compile(
    r"\bconfigure get \S*(?:secret|session_token)|\bconfigure export-credentials\b|\bauth print-(?:access|identity)-token\b"
    r"|\baccount get-access-token\b|\bconfig view\b.*--raw\b|\bauth token\b|^credential fill\b"
)


_MACOS_WEAKENING = {
    "security": re.compile(r"^authorizationdb write\b"),
    "fdesetup": re.compile(r"^disable\b"),
    "softwareupdate": re.compile(r"--schedule off|--ignore\b"),
    "spctl": re.compile(r"(?:^|\s)--add\b|--global-disable|--disable\b"),
    "nvram": re.compile(r"boot-args=|csr-active-config"),
    "codesign": re.compile(r"--remove-signature"),
    "defaults": re.compile(
        r"askforpassword\b|com\.apple\.screensaver\b.*\bask|autologinuser|disableautologin"
    ),
}


TACTIC_RULES: dict[str, _Rule] = {
    "aws": _cloud,
    "gsutil": lambda c: _cloud_copy(c) + _cloud_destroy(c),
    "az": _cloud,
    "gcloud": _cloud,
    "rclone": _cloud_copy,
    "scp": _remote_copy,
    "rsync": _remote_copy,
    "curl": _post,
    "telnet": _shell_over,
    "openssl": _openssl,
    "git": _git_config,
    "terraform": _cloud_destroy,
    "kubectl": _cloud_destroy,
    "upx": _upx,
    "trap": _trap,
    "dig": _zone_transfer,
    "host": _zone_transfer,
    "nslookup": _zone_transfer,
    "drill": _zone_transfer,
    "ftp": _file_transfer,
    "tftp": _file_transfer,
    "lftp": _file_transfer,
    "busybox": _serve_root,
    "php": _serve_root,
    "utmpdump": _utmp,
    "mv": _move_away,
    "touch": _timestomp,
    "cat": _cat,
    "find": _find_destroy,
}


# --- one call's commands together ----------------------------------------------------------------

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


_PLANTED = re.compile(
    r"\.app/Contents/(?:Frameworks|MacOS|PlugIns)/\S*\.dylib$|^/Library/Frameworks/\S*\.dylib$"
    r"|/(?:google-chrome|chromium|BraveSoftware/Brave-Browser|Google/Chrome)/[^/]+/Extensions/|/External Extensions/"
)
_NAMERS = frozenset({"cp", "mv", "ln", "install", "touch"})
_TRAILING = re.compile(r"\.\w{1,5} +$")
_SYSTEM_LIB = re.compile(r"^/(?:usr/(?:local/)?)?lib(?:32|64)?/|^/opt/")
_WIDE_ROOTS = ("/", "~", "/home", "/Users", "/root", "/etc", "/var", "/opt", "/srv")


def _grep_after_find(cmd: Command) -> bool:
    """grep run on what a find found (``find … -exec grep``, ``find … | xargs grep``)."""
    return cmd.program in ("grep", "egrep", "fgrep") and cmd.via.endswith(("find -exec", "xargs"))


_EVERY_HOME = re.compile(
    r"^/(?:home|Users)/\*/\.(?:ssh|aws|gnupg|kube|config|\w*_history|netrc|git-credentials)"
)
_CONTAINER_FILES = re.compile(
    r"^/proc/(?:1|self)/(?:cgroup|mountinfo|status)$|^/\.dockerenv$|^/run/\.containerenv$"
)
_SECRET_WORDS = re.compile(r"key|secret|token|pass(?:w|\b)|pwd|credential|aws_|api_", re.I)
_WEB_ROOT = re.compile(
    r"^(?:/var/www|/srv/www|/usr/share/nginx/html|/usr/local/apache2/htdocs|/opt/lampp/htdocs|/var/lib/tomcat\d*/webapps|/usr/share/tomcat\d*/webapps)/"
)
_WEB_SCRIPT = re.compile(r"\.(?:php\d?|phtml|jspx?|aspx?|ashx|asmx|cgi)$", re.I)


_COPIERS = frozenset({"tee", "cp", "mv", "install", "ln"})
_WEB_PARENTS = ("/var/", "/srv/", "/usr/", "/opt/")


def _written(cmd: Command) -> list[str]:
    out = [t for op, t in cmd.redirects if op in (">", ">>", ">|", "&>", "&>>")]
    if cmd.program in _COPIERS:
        plain = plain_args(cmd)
        if cmd.program == "tee":
            out += plain
        elif len(plain) >= 2:
            out.append(plain[-1])
    return out


def tactic_call_findings(commands: Sequence[Command]) -> list[Finding]:
    """A pair of discovery commands run one after another, container checks, secrets looked up in
    the environment, code fetched and sourced or made executable, and web shells written."""
    out: list[Finding] = []
    recon: dict[str, str] = {}
    fetched: set[str] = set()
    fetching = False
    sourced = False
    container = False
    wide_find = False
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
        named = (*plain_args(cmd), *cmd.writes()) if prog in _NAMERS else cmd.writes()
        if any(a.endswith(" ") and _TRAILING.search(a) for a in named):
            out.append(
                _finding(
                    "persistence_evasion",
                    "ask",
                    "names a file with a trailing space (masquerading)",
                    cmd,
                )
            )
        for name, value in cmd.assignments:
            if name == "LD_PRELOAD" and value.startswith("/") and not _SYSTEM_LIB.match(value):
                out.append(
                    Finding(
                        "persistence_evasion",
                        "ask",
                        f"preloads a library into programs: {name}={value[:60]}",
                    )
                )
        if prog == "find":
            wide_find = any(
                fold_home(r).rstrip("/") in ("", "~") or fold_home(r).startswith(_WIDE_ROOTS[2:])
                for r in cmd.args[:2]
                if not r.startswith("-")
            )
        if wide_find and _grep_after_find(cmd) and _SECRET_WORDS.search(" ".join(plain_args(cmd))):
            out.append(
                _finding(
                    "credential_access",
                    "ask",
                    "searches system or home files for passwords or keys",
                    cmd,
                )
            )
        if any(a.startswith(("/home/*/", "/Users/*/")) and _EVERY_HOME.match(a) for a in cmd.args):
            out.append(
                _finding("credential_access", "ask", "looks into every user's keys or history", cmd)
            )
        if prog in ("curl", "wget", "fetch"):
            fetching = True
            args = cmd.args
            for i, a in enumerate(args[:-1]):
                if a in ("-o", "--output", "-O", "--output-document"):
                    fetched.add(args[i + 1])
        if prog in ("source", ".") and not cmd.args:
            sourced = True  # ``source <(curl …)``: the substitution left no argument
        if (
            prog == "chmod"
            and fetched & set(plain_args(cmd)[1:])
            and re.search(r"\+\w*x|[0-7]?[1357][0-7]{2}$", " ".join(cmd.args[:1]))
        ):
            out.append(
                _finding("malware", "ask", "downloads a program and makes it executable", cmd)
            )
        if any(
            a.startswith(("/proc/", "/.", "/run/.")) and _CONTAINER_FILES.match(a) for a in cmd.args
        ):
            container = True
        # (a bare ``env`` is read as a wrapper with no command: its name upstream is empty)
        if prog == "grep" and set(cmd.upstream) & {
            "env",
            "printenv",
            "set",
            "export",
            "history",
            "",
        }:
            patterns = " ".join(plain_args(cmd))
            if _SECRET_WORDS.search(patterns):
                out.append(
                    _finding(
                        "credential_access",
                        "ask",
                        "looks for secrets in environment variables or history",
                        cmd,
                    )
                )
        for target in _written(cmd) if cmd.redirects or prog in _COPIERS else ():
            if _PLANTED.search(target):
                out.append(
                    _finding(
                        "persistence_evasion",
                        "ask",
                        f"plants a library or extension where an application loads it: {target}",
                        cmd,
                    )
                )
            if target.endswith(("/release_agent", "/notify_on_release")):
                out.append(
                    _finding(
                        "malware",
                        "deny",
                        f"sets a cgroup release agent (container escape): {target}",
                        cmd,
                    )
                )
            if not target.startswith(_WEB_PARENTS):
                continue
            if _WEB_ROOT.match(target) and (
                _WEB_SCRIPT.search(target) or prog in ("echo", "printf")
            ):
                out.append(
                    _finding(
                        "malware",
                        "ask",
                        f"writes into a web server's folder (web shell or defacement): {target}",
                        cmd,
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
                    )
                )
    if len(recon) >= 3 or len(set(recon.values())) >= 2:
        out.append(
            Finding(
                "network_attack",
                "ask",
                f"runs discovery commands one after another: {', '.join(sorted(recon)[:5])}",
            )
        )
    if sourced and fetching:
        out.append(Finding("malware", "ask", "sources code fetched from the network"))
    if container:
        out.append(Finding("malware", "ask", "checks whether it runs in a container"))
    return out


# --- other interpreters --------------------------------------------------------------------------

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

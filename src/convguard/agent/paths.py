"""Which paths and addresses matter: secrets, system trees, persistence locations, the guard's own
files, hosts.

Pure lookups over strings. Paths are compared after folding ``$HOME``/``${HOME}``/``/home/<user>``
/``/Users/<user>``/``/root`` to ``~``, ``$PWD``/``$(pwd)`` to ``.`` and backslashes to slashes, so
the same location reads the same however it is written.

When the working folder of a call is known, a relative path is also read where it lies
(:func:`places`): :func:`absolute_path` joins it to the folder lexically — no file system is
consulted and no link followed — so that ``rm -rf .`` in the home is read as ``rm -rf ~`` and
``cat id_rsa`` in ``~/.ssh`` as ``cat ~/.ssh/id_rsa``. The folder may also be one a ``cd`` in the
script moved to (:func:`changed_folder`): absolute, or from the home (``~``, ``~/.ssh``). With no
folder known, a relative path that names a home's credential store below its first folder or past
a ``..`` (``../.ssh/id_rsa``) is also read from a home (``~/.ssh/id_rsa``).
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import urlsplit

__all__ = [
    "WORKING_FOLDER",
    "absolute_path",
    "changed_folder",
    "critical_target",
    "fold_home",
    "guard_path",
    "hosts_in",
    "is_block_device",
    "log_path",
    "persistence_path",
    "places",
    "root_level",
    "secret_path",
]

_PATH_LIKE = re.compile(r"^(?:/|~|\.\.?(?:/|$)|[A-Za-z]:/)")
_DETOUR = re.compile(r"(?:^|/)\.\.?(?:/|$)|//|^/proc/(?:self|thread-self|\d+)/root(?:/|$)")
_PROC_ROOT = re.compile(r"^/proc/(?:self|thread-self|\d+)/root(?=/|$)")
_BRACES = re.compile(r"\{([^{},]*(?:,[^{},]*)+)\}")
_BRACE_PATHS = 16
_DRIVE = re.compile(r"^[A-Za-z]:$")
_DRIVE_PATH = re.compile(r"^[A-Za-z]:(?:[/\\]|$)")
_HOME = re.compile(r"^(?:\$HOME|\$\{HOME\}|/home/[^/]+|/Users/[^/]+|/root)(?=/|$)")
#: The working folder at the start of a path, as itself or as a variable or its command ("$PWD/.."
#: is ".."; a container mount's source "$(pwd)" is the host's working folder).
WORKING_FOLDER = re.compile(r"^(?:\$PWD|\$\{PWD\}|\$\(pwd\)|`pwd`|\.)(?=/|$)")

# Credential stores a home folder keeps and a project does not: named relative to the working
# folder ("cat .ssh/id_rsa"), they are read as the home's, since the working folder may be the home.
# A project's own .npmrc, .pypirc or .azure/ (Azure Developer CLI) and etc/ are not among them.
_HOME_STORES = r"""
    /\.ssh/(?:id_[a-z0-9_]+(?!\.pub)\b|[^/]*_key$|identity$)
    | /\.aws/credentials | /\.netrc$ | /\.pgpass$ | /\.git-credentials$ | /\.docker/config\.json
    | /\.config/gcloud/ | /\.kube/config | /\.gnupg/ | /\.password-store | /\.vault-token$
    | /\.config/gh/hosts\.yml$
"""
# Secrets: credential stores whose reading is credential access (not `.pub` keys, not /etc/passwd).
_SECRETS = re.compile(
    r"(?x)"
    + _HOME_STORES
    + r"""
    | ^(?:/usr/local)?/etc/(?:g?shadow|master\.passwd|security/opasswd|sudoers)\b
    | ^/etc/ssh/ssh_host_[a-z0-9_]+_key$ | /\.azure/
    | /(?:Login\ Data|Cookies|Web\ Data|Local\ State)(?:$|\?) | /key[34]\.db$ | /logins\.json$
    | (?i:(?:/appdata/(?:roaming|local)|%(?:local)?appdata%|\$env:(?:local)?appdata)/microsoft/(?:credentials|vault|protect)(?:/|$))
    | /Library/Keychains | \.keychain(?:-db)?$ | /var/db/(?:dslocal|shadow)
    | /etc/krb5\.keytab | \.kirbi$ | \bntds\.dit$ | /config/(?:SAM|SECURITY|SYSTEM)$
    | ^/proc/[^/]+/(?:mem|maps|environ)$ | \.bash_history$ | \.zsh_history$
    | /\.npmrc$ | /\.pypirc$ | ^/(?:var/)?run/secrets/kubernetes\.io/serviceaccount/token$
    | /\.(?:mysql|psql|sqlite|rediscli|node_repl|python)_history$ | ^/etc/NetworkManager/system-connections/
    """
)
# Matched at the start of "/" + a path: only a relative path that starts with a store matches.
_HOME_STORE_FIRST = re.compile(r"(?x)" + _HOME_STORES)
_SYSTEM = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/opt", "/proc", "/root",
    "/sbin", "/srv", "/sys", "/usr", "/var", "/home", "/Users", "/System", "/Library",
    "/Applications", "/private", "/mnt", "/media",
)  # fmt: skip
_PERSIST = re.compile(
    r"""(?x)
    ^~/\.(?:bashrc|bash_profile|bash_login|profile|zshrc|zprofile|zshenv|zlogin|cshrc|tcshrc|kshrc|shrc|login
           |config/fish/config\.fish|bash_logout)$
    | /\.ssh/authorized_keys2?$ | ^/etc/(?:profile|bash\.bashrc|zshrc|environment|rc\.local|rc\.common)
    | ^/etc/(?:cron|anacrontab|init\.d/|init/|systemd/|update-motd\.d/|ld\.so\.preload|sudoers
             |passwd|shadow|group|pam\.d/|security/|xdg/autostart)
    | ^/var/spool/cron | ^/(?:usr/)?lib/systemd/ | ^~/\.config/(?:systemd/|autostart/)
    | /Library/(?:LaunchAgents|LaunchDaemons|StartupItems)/ | ^/etc/periodic/
    | ^~/\.local/share/applications/ | /etc/emond\.d/ | \\Start\ Menu\\Programs\\Startup
    | ^/usr/local/etc/(?:sudoers|rc\.d/) | ^/etc/rc\.d/ | ^/etc/ld\.so\.conf\.d/
    | ^/etc/pki/ca-trust/source/anchors/ | ^/usr/local/share/(?:ca-certificates|certs)(?:/|$)
    | ^/etc/(?:hosts|resolv\.conf|ssh/sshd_config)$ | ^~/\.ssh/(?:config|rc)$ | /\.git/hooks/
    | ^/(?:etc|lib|usr/lib)/udev/rules\.d/ | ^/etc/apt/apt\.conf\.d/ | ^/etc/(?:yum|dnf)/plugin
    | ^/etc/modules(?:-load\.d/|$) | ^/etc/NetworkManager/dispatcher\.d/ | ^/etc/X11/Xsession\.d/
    | ^~/\.(?:xinitrc|xsession|xsessionrc|xprofile)$ | ^/run/systemd/system/
    | /(?:site|dist)-packages/[^/]+\.pth$ | /(?:sitecustomize|usercustomize)\.py$
    | ^/Library/(?:Security/SecurityAgentPlugins|ScriptingAdditions)/ | ^/(?:usr/lib/cron|var/at)/tabs/
    """
)
# The guard's own files: its compiled rules, scope and model (convguard.agent.cache's folder).
_GUARD = re.compile(r"/\.cache/convguard/")
_LOGS = re.compile(
    r"^(?:/private)?/var/(?:log(?:/|$)|adm/|audit(?:/|$)|db/diagnostics(?:/|$)|db/uuidtext(?:/|$))"
    r"|^~?/Library/Logs(?:/|$)|/\.(?:bash|zsh|sh|python)_history$|/wtmp$|/btmp$"
)
_BLOCK = re.compile(
    r"^/dev/(?:sd[a-z]|nvme\d|hd[a-z]|xvd[a-z]|vd[a-z]|mmcblk\d|disk\d|md\d|mapper/)"
)
_HOSTISH = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://)?(?:[\w.-]+@)?"
    r"((?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?|\[?[0-9a-f:]+:[0-9a-f:]+\]?|(?:[a-z0-9-]+\.)+[a-z]{2,})"
    r"(?::\d+)?(?:[/?#].*)?$",
    re.I,
)
_FILE_EXT = re.compile(
    r"\.(?:txt|log|py|sh|json|ya?ml|xml|csv|conf|cfg|ini|md|html?|js|ts|c|h|go|rs|java|tar|gz|zip"
    r"|tgz|bz2|xz|deb|rpm|so|o|php|rb|pl|exe|dll|ps1|bat|out|lst|db|pem|key|crt|cpl|inf|plist)$",
    re.I,
)


def fold_home(path: str) -> str:
    path = path.replace("\\", "/") if "\\" in path and "/" not in path else path
    path = path.strip("\"'")
    if path[:1] in "$`" and (here := WORKING_FOLDER.match(path)):
        path = "." + path[here.end() :]
    # Resolved before and after the home folds: "/proc/1/root/root/.ssh" is a home, and so is
    # "$HOME/x/..". Most arguments have no detour: a few substring tests say so.
    if "/." in path or "//" in path or path[:1] == "." or path.startswith("/proc/"):
        path = _resolve_dots(path)
    folded = _HOME.sub("~", path)
    if folded != path and ("/." in folded or "//" in folded):
        folded = _resolve_dots(folded)
    return folded


def _resolve_dots(path: str) -> str:
    """A path as the file system reads it, resolved as written: ``.`` and ``..`` segments
    ("~/src/../.ssh/id_rsa" → "~/.ssh/id_rsa"), repeated slashes ("/etc//shadow") and
    ``/proc/self/root`` (the root again), so that a detour cannot hide a secret or a startup file.
    ``..`` never climbs above ``/``, a drive or ``~``, and stays at the front of a relative path;
    a trailing slash is kept. Only what starts like a path (``/``, ``~``, ``./``, ``../``, a
    drive) is touched: URLs, options and sed expressions are left alone."""
    if not _PATH_LIKE.match(path) or not _DETOUR.search(path):
        return path
    path = _PROC_ROOT.sub("", path)
    rooted = path.startswith("/")
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment != "..":
            parts.append(segment)
        elif not parts:
            if not rooted:
                parts.append("..")
        elif parts[-1] in ("..", "~"):
            parts.append("..")
        elif not _DRIVE.match(parts[-1]):
            parts.pop()
    out = ("/" if rooted else "") + "/".join(parts) or "."  # "./" is here, not the root
    if path.endswith("/") and not out.endswith("/"):
        out += "/"
    return out


def _alternatives(path: str) -> list[str]:
    """The paths a shell's brace expansion makes of ``path`` ("~/.ssh/{id_rsa,config}" → both),
    else ``path`` alone; at most :data:`_BRACE_PATHS`."""
    match = _BRACES.search(path)
    if match is None:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    out: list[str] = []
    for choice in match.group(1).split(","):
        out.extend(_alternatives(head + choice + tail))
        if len(out) >= _BRACE_PATHS:
            break
    return out[:_BRACE_PATHS]


def secret_path(path: str) -> bool:
    """A credential store: anywhere for :data:`_SECRETS`, and a relative path that starts with
    one of the home folder's (``.ssh/id_rsa``, ``./.aws/credentials``), read as ``~/`` + path."""
    for folded in map(fold_home, _alternatives(path)):
        if folded.endswith(".pub"):
            continue
        if _SECRETS.search(folded) or _HOME_STORE_FIRST.match("/" + folded):
            return True
    return False


def persistence_path(path: str) -> bool:
    # macOS keeps /etc and /var under /private
    return any(_PERSIST.search(fold_home(p).removeprefix("/private")) for p in _alternatives(path))


def guard_path(path: str) -> bool:
    """A file of the guard itself: its compiled cache (``~/.cache/convguard/``), whose content is
    what the guard enforces."""
    return any(_GUARD.search(fold_home(p)) for p in _alternatives(path))


def log_path(path: str) -> bool:
    return any(_LOGS.search(fold_home(p)) for p in _alternatives(path))


def is_block_device(path: str) -> bool:
    return bool(_BLOCK.match(path))


def critical_target(path: str) -> bool:
    """A path whose recursive deletion or permission change wrecks a system or a home directory."""
    if not path:
        return False
    p = fold_home(path).rstrip("/") or "/"
    if p in ("/", "/*", "~", "~/*", "/.", "..", "../..", "C:", "C:/", "c:"):
        return True
    if p.startswith(("C:/Windows", "C:/Users", "c:/windows")):
        return True
    base = p[:-2] if p.endswith("/*") else p
    return base in _SYSTEM or (
        base.count("/") == 2 and base.startswith(("/usr/", "/var/", "/etc/"))
    )


def root_level(path: str) -> bool:
    """``/``, ``~`` or a top-level system directory (where a recursive change is a disaster)."""
    p = fold_home(path).rstrip("/") or "/"
    return p in ("/", "/*", "~", "~/*") or p in _SYSTEM or (p.endswith("/*") and p[:-2] in _SYSTEM)


def absolute_path(path: str, cwd: str) -> str:
    """The absolute path that ``path`` names in the working folder ``cwd``, resolved lexically:
    joined to the folder, ``.`` and ``..`` segments folded (``..`` stops at ``/`` and ``~``), a
    trailing slash kept; ``$PWD``, ``${PWD}``, ``$(pwd)`` and `` `pwd` `` at its start are the
    folder. A path that already says where it is — absolute, from the home (``~``, ``$HOME``),
    another variable, a URL, a drive or a Windows path — and an empty one are returned as written,
    and so is every path when ``cwd`` is neither an absolute POSIX folder nor one from the home
    (``~/src``: a folder a ``cd`` moved to); a Windows folder is not resolved against."""
    if not path or not cwd.startswith(("/", "~")):
        return path
    if path[:1] in "$`":
        here = WORKING_FOLDER.match(path)
        if here is None:
            return path
        path = "." + path[here.end() :]
    if path[:1] in "/~" or "\\" in path or "://" in path or _DRIVE_PATH.match(path):
        return path
    return _resolve_dots(cwd.rstrip("/") + "/" + path)


def changed_folder(cwd: str | None, target: str | None) -> str | None:
    """The working folder after ``cd target`` from ``cwd`` (``None``: not known), resolved
    lexically: ``target`` ``None`` (``cd`` alone) is the home ``~``; an absolute folder or one from
    the home (``~/.ssh``, ``$HOME/x``, folded to ``~``) is itself; a relative one is joined to a
    known ``cwd`` (:func:`absolute_path`). Not known: ``cd -`` (the previous folder), a variable,
    another user's home (``~bob``), a Windows folder, above the home (``~/..``: ``/home`` or
    ``/Users``), and a relative folder from an unknown one."""
    if target is None:
        return "~"
    if not target or target == "-" or "\\" in target or _DRIVE_PATH.match(target):
        return None
    if target[:1] in "$~":
        target = fold_home(target)
        if target[:1] == "~" and target[:2] not in ("~", "~/"):
            return None
    if target[:1] == "/":
        there = _resolve_dots(target)
    elif target[:1] == "~":
        there = target
    elif cwd is None:
        return None
    else:
        there = absolute_path(target, cwd)
    if there[:1] not in "/~" or there == "~/.." or there.startswith("~/../"):
        return None
    return there


def places(path: str, cwd: str | None) -> tuple[str, ...]:
    """Where the rules read ``path``: as written, and — when the working folder ``cwd`` is known
    and the relative ``path`` names there a location the rules single out (a credential store, a
    start-up file, the guard's files, a log, a system tree or a home, a disk) — also as that
    absolute path (:func:`absolute_path`). A path in an ordinary folder keeps its one reading, so
    rules that tell a project's relative paths from absolute ones read it as before. With no
    folder known, a relative path naming a home's credential store past its start
    (``../.ssh/id_rsa``, ``src/.ssh/id_rsa``) is also read from a home (:func:`_home_store`)."""
    if cwd is None:
        return (path,) if "/." not in path else _home_store(path)
    return _places(path, cwd)


@lru_cache(maxsize=4096)
def _home_store(path: str) -> tuple[str, ...]:
    """``path`` as written and, when it is relative and names a home's credential store
    (:data:`_HOME_STORES`) after a ``..`` or a folder of its own, also from a home: the working
    folder not known may be the home or a folder below it, so ``../.ssh/id_rsa`` is read as
    ``~/.ssh/id_rsa`` and ``src/.ssh/id_rsa`` as ``~/src/.ssh/id_rsa`` (a private key by its name,
    wherever it lies). A path starting with the store is already read as the home's
    (:func:`secret_path`)."""
    if path[:1] in "/~$`-" or "://" in path or "\\" in path:
        return (path,)
    folded = fold_home(path)
    if folded[:1] in "/~" or folded.endswith(".pub") or _HOME_STORE_FIRST.match("/" + folded):
        return (path,)
    if not _HOME_STORE_FIRST.search("/" + folded):
        return (path,)
    while folded.startswith("../"):
        folded = folded[3:]
    return (path, "~/" + folded)


@lru_cache(maxsize=4096)
def _places(path: str, cwd: str) -> tuple[str, ...]:
    there = absolute_path(path, cwd)
    if there == path or not any(kind(there) for kind in _KINDS):
        return (path,)
    return (path, there)


def hosts_in(args: tuple[str, ...] | list[str]) -> list[str]:
    """Host names, IP addresses, networks and URLs' hosts among command arguments."""
    out: list[str] = []
    for arg in args:
        if arg.startswith("-") or len(arg) > 300:
            continue
        host = _host_of(arg)
        if host is not None:
            out.append(host)
    return out


#: The kinds of location that make a relative path worth reading where it lies (:func:`places`).
_KINDS = (
    secret_path,
    persistence_path,
    guard_path,
    log_path,
    critical_target,
    root_level,
    is_block_device,
)


def _host_of(arg: str) -> str | None:
    if "://" in arg:
        netloc = urlsplit(arg).hostname
        return netloc or None
    if arg in ("localhost",):
        return arg
    match = _HOSTISH.match(arg)
    if not match or _FILE_EXT.search(arg.split("/")[0]):
        return None
    host = match.group(1).strip("[]")
    try:
        ipaddress.ip_network(host, strict=False)
    except ValueError:
        if host.replace(".", "").isdigit():
            return None
    return host

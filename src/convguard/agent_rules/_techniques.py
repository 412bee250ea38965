"""Rules for attack techniques that ordinary program rules miss: macOS, cloud and container tools,
tunnels, Windows tooling and PowerShell cmdlets, and what a whole tool call adds up to.

:data:`TECHNIQUE_RULES` maps a program (lower case, without ``.exe``) to a rule over one parsed
command, like :data:`~convguard.agent_rules._commands.PROGRAM_RULES`; :func:`call_findings` looks
at every command of one call together (several discovery commands chained, a check for a virtual
machine). Each rule fires on what a command would do — a verb, a key, a flag — never on the
program name alone when that program also has everyday uses (``defaults``, ``kubectl``, ``aws``).
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from convguard.agent.findings import Finding, Level, render
from convguard.agent.shell import Command

__all__ = ["TECHNIQUE_RULES", "call_findings"]

_Rule = Callable[[Command], list[Finding]]


def _text(cmd: Command) -> str:
    return " ".join(cmd.args).lower()


def _when(pattern: str, category: str, level: Level, reason: str) -> _Rule:
    """A rule that fires when the joined, lower-cased arguments match ``pattern``."""
    compiled = re.compile(pattern, re.I)

    def rule(cmd: Command) -> list[Finding]:
        if compiled.search(_text(cmd)):
            return [Finding(category, level, f"{reason}: {render(cmd)}")]
        return []

    return rule


def _always(category: str, level: Level, reason: str) -> _Rule:
    def rule(cmd: Command) -> list[Finding]:
        return [Finding(category, level, f"{reason}: {render(cmd)}")]

    return rule


_ENCRYPTORS = re.compile(
    r"(?:^|\s)(?:-p\S*|--password|-P|-e|--encrypt|-c|--symmetric|enc|rsautl|pkeyutl|-mhe=on)(?:\s|$)"
)
_SYSTEM_INPUT = re.compile(r"(?:^|\s)(?:/etc/|/var/|~/|\$home/|/home/|/users/)")


def _encrypt(cmd: Command) -> list[Finding]:
    """Encrypting system or home files with a password or key: what ransomware does."""
    text = _text(cmd)
    if cmd.program == "ccencrypt" or (_ENCRYPTORS.search(text) and _SYSTEM_INPUT.search(text)):
        return [Finding("destructive", "ask", f"encrypts system or home files: {render(cmd)}")]
    return []


def _docker(cmd: Command) -> list[Finding]:
    text = _text(cmd)
    if re.search(r"(?:-v|--volume)[ =]/:|--pid[ =]host|--privileged|hostpid\W+true|nsenter", text):
        return [
            Finding("malware", "ask", f"container with the host's root or processes: {render(cmd)}")
        ]
    return []


def _osascript(cmd: Command) -> list[Finding]:
    text = _text(cmd)
    if re.search(r"with administrator privileges|hidden answer|password", text):
        return [
            Finding("credential_access", "ask", f"AppleScript asks for a password: {render(cmd)}")
        ]
    if re.search(r"do shell script|keystroke|cookies|keychain|system events", text):
        return [
            Finding("malware", "ask", f"AppleScript runs commands or reads data: {render(cmd)}")
        ]
    return []


_CLOUD = re.compile(
    r"\biam (?:create-user|create-access-key|create-login-profile|attach-user-policy|put-user-policy|attach-role-policy|update-assume-role-policy|add-user-to-group)"
    r"|\biam service-accounts (?:create|keys create)|\biam roles create|add-iam-policy-binding"
    r"|\bad (?:user|sp|app) create|role assignment create|\bcreate-user\b"
)
_CLOUD_EVASION = re.compile(
    r"cloudtrail (?:stop-logging|delete-trail|update-trail|put-event-selectors)|guardduty (?:delete-detector|update-detector)"
    r"|logging sinks delete|config delete-configuration-recorder|monitor diagnostic-settings delete"
)


def _cloud(cmd: Command) -> list[Finding]:
    text = _text(cmd)
    if _CLOUD_EVASION.search(text):
        return [
            Finding("persistence_evasion", "deny", f"turns off cloud audit logs: {render(cmd)}")
        ]
    if _CLOUD.search(text):
        return [
            Finding("persistence_evasion", "ask", f"creates cloud accounts or keys: {render(cmd)}")
        ]
    return []


def _kubectl(cmd: Command) -> list[Finding]:
    out = _docker(cmd)
    text = _text(cmd)
    if re.search(r"\bcreate (?:clusterrolebinding|rolebinding)\b.*cluster-admin", text):
        out.append(Finding("persistence_evasion", "ask", f"grants cluster-admin: {render(cmd)}"))
    if re.search(r"\bget secrets?\b|\bdescribe secrets?\b", text):
        out.append(Finding("credential_access", "ask", f"reads cluster secrets: {render(cmd)}"))
    return out


# --- Windows --------------------------------------------------------------------------------

_HIVES = r"\\(?:sam|security|system)\b"
_BROWSER_DATA = (
    r"login data|cookies|places\.sqlite|key[34]\.db|logins\.json|web data|\\user data\\default"
)


def _wmic(cmd: Command) -> list[Finding]:
    text = _text(cmd)
    if "shadowcopy" in text and "delete" in text:
        return [Finding("destructive", "deny", f"destroys backups or recovery: {render(cmd)}")]
    if re.search(
        r"process\s+call\s+create|/node:|shadowcopy\s+call\s+create|call\s+uninstall", text
    ):
        return [Finding("malware", "ask", f"WMI runs or changes things remotely: {render(cmd)}")]
    return []


def _netsh(cmd: Command) -> list[Finding]:
    text = _text(cmd)
    if re.search(r"state\s+off|opmode\s*=?\s*disable|set\s+\w*\s*profile.*off", text):
        return [Finding("persistence_evasion", "deny", f"turns the firewall off: {render(cmd)}")]
    if "key=clear" in text:
        return [Finding("credential_access", "ask", f"reads saved Wi-Fi keys: {render(cmd)}")]
    if re.search(r"\btrace\s+start\b.*capture=yes|portproxy|add\s+rule|helper", text):
        return [
            Finding(
                "persistence_evasion",
                "ask",
                f"changes the network stack or captures traffic: {render(cmd)}",
            )
        ]
    return []


def _rundll32(cmd: Command) -> list[Finding]:
    text = _text(cmd)
    if re.search(r"comsvcs.*minidump|minidump", text):
        return [Finding("credential_access", "deny", f"dumps process memory: {render(cmd)}")]
    if re.search(
        r"javascript:|vbscript:|https?://|\\\\\w|keymgr|advpack|pcwutl|shell32.*control_rundll|\.dll\W*,?\s*#?\w|url\.dll|ieadvpack|zipfldr",
        text,
    ):
        return [Finding("malware", "ask", f"rundll32 runs code from a library: {render(cmd)}")]
    return []


_WINDOWS_TOOLS: dict[str, _Rule] = {
    "wmic": _wmic,
    "netsh": _netsh,
    "rundll32": _rundll32,
}

# PowerShell cmdlets (lower case): the parser reads them as programs.
_CMDLETS: dict[str, _Rule] = {}

TECHNIQUE_RULES: dict[str, _Rule] = {
    "osascript": _osascript,
    "gpg": _encrypt,
    "7z": _encrypt,
    "7za": _encrypt,
    "zip": _encrypt,
    "openssl": _encrypt,
    "ccencrypt": _encrypt,
    "docker": _docker,
    "podman": _docker,
    "kubectl": _kubectl,
    "aws": _cloud,
    "gcloud": _cloud,
    "az": _cloud,
    **_WINDOWS_TOOLS,
    **_CMDLETS,
}

_DISCOVERY = frozenset(
    {"whoami", "id", "uname", "hostname", "ifconfig", "ip", "netstat", "ss", "arp", "route",
     "ps", "env", "printenv", "lsmod", "kldstat", "sysctl", "system_profiler", "ioreg", "groups",
     "dmidecode", "lsof", "who", "w", "last", "lastlog", "users", "getent", "df", "mount",
     "locale", "sw_vers", "systeminfo", "ipconfig", "tasklist", "nbtstat", "nltest", "net",
     "quser", "qwinsta", "get-process", "get-localuser", "get-localgroup", "get-netipconfiguration",
     "get-wmiobject", "get-ciminstance", "get-computerinfo", "lscpu", "lsusb", "lspci", "uptime",
     "sockstat", "smbstatus", "showmount", "dscl", "dscacheutil", "klist", "sudo-l", "crontab-l",
     "lsb_release", "hostnamectl", "timedatectl", "localectl", "findmnt", "lsblk", "blkid", "nmcli",
     "iwconfig", "pstree", "sestatus", "getenforce", "scutil", "networksetup", "fdesetup",
     "lastb", "finger", "pinky", "lshw", "hwinfo", "ipcs", "ver", "query", "get-service",
     "get-hotfix", "get-smbshare", "get-netneighbor", "get-nettcpconnection", "get-aduser",
     "get-adcomputer", "get-adgroupmember", "get-netadapter", "get-psdrive", "wmic"}
)  # fmt: skip
_SCRATCH_FILE = re.compile(
    r"^(?:/tmp/|/var/tmp/|/dev/shm/|\$env:temp|%temp%|c:\\temp)|/\.[^/]+$", re.I
)
_VM_WORDS = re.compile(r"virtualbox|vbox|vmware|vmw_|parallels|qemu|xen-|hv_vmbus|hypervisor|vmm\b")


# Offensive scripts and tools run as a file (``bash linpeas.sh``, ``python3 laZagne.py``).
_TOOL_FILES = re.compile(
    r"(?:^|[/\\])(?:linpeas|linenum|lse|autosuid|linux-exploit-suggester\S*|les|pspy\d*|mimipenguin"
    r"|lazagne|dumpert|nanodump|sharphound|powerup|powerview|winpeas\w*|invoke-mimikatz|rubeus"
    r"|seatbelt|sharpup|certify|kerbrute|chisel|ligolo\S*|pwncat|swaks)(?:\.\w+)?$",
    re.I,
)
_SCRATCH = ("/tmp/", "/var/tmp/", "/dev/shm/")


def _command_file_findings(cmd: Command) -> list[Finding]:
    out: list[Finding] = []
    tool = next((a for a in cmd.argv[:3] if _TOOL_FILES.search(a)), None)
    if tool is not None:
        out.append(Finding("malware", "deny", f"runs an offensive tool: {render(cmd)}"))
    elif "sudo" in cmd.wrappers and cmd.argv and cmd.argv[0].startswith(_SCRATCH):
        out.append(
            Finding(
                "malware", "ask", f"runs a program from a temporary folder as root: {render(cmd)}"
            )
        )
    if any(a.startswith("--remote-debugging-port") for a in cmd.args) and re.search(
        r"chrome|chromium|edge|brave|msedge", " ".join(cmd.argv).lower()
    ):
        out.append(
            Finding("credential_access", "ask", f"opens a browser's debugging port: {render(cmd)}")
        )
    return out


def call_findings(commands: Sequence[Command]) -> list[Finding]:
    """Findings over one call's commands together: offensive tools run as files, reconnaissance
    clusters, VM checks."""
    out: list[Finding] = []
    seen: set[str] = set()
    collected: list[str] = []
    vm = False
    for cmd in commands:
        out.extend(_command_file_findings(cmd))
        prog = cmd.program.removesuffix(".exe")
        if prog in ("sudo", "crontab") and cmd.args[:1] == ("-l",):
            prog += "-l"
        if prog in _DISCOVERY:
            seen.add(prog)
            saved = [t for op, t in cmd.redirects if op in (">", ">>", "&>", "&>>")]
            if any(_SCRATCH_FILE.search(t) for t in saved):
                collected.append(render(cmd))
        if prog in ("grep", "egrep", "findstr", "select-string") and any(
            _VM_WORDS.search(a.lower()) for a in cmd.args
        ):
            vm = True
    if len(seen) >= 3:
        names = ", ".join(sorted(seen)[:6])
        out.append(Finding("network_attack", "ask", f"chains several discovery commands: {names}"))
    if collected:
        out.append(
            Finding("network_attack", "ask", f"saves system information to a file: {collected[0]}")
        )
    if vm:
        out.append(Finding("malware", "ask", "checks whether it runs in a virtual machine"))
    return out

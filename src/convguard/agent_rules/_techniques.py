"""What one tool call's commands add up to, read together: offensive tools run as files,
several discovery commands chained, a check for a virtual machine, a browser's debugging port.
(The program rules that lived here are YAML rules now: ``convguard/agent/rules``.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from convguard.agent.findings import Finding, render
from convguard.agent.shell import Command

__all__ = ["call_findings"]

_Rule = Callable[[Command], list[Finding]]


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

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

from convguard.agent_rules._commands import Finding, Level, render
from convguard.agent_rules._shell import Command

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
    "reg": _when(
        rf"\b(?:save|export)\b.*{_HIVES}", "credential_access", "deny", "saves a credential hive"
    ),
    "esentutl": _when(
        r"/vss|ntds|\\config\\(?:sam|system|security)",
        "credential_access",
        "deny",
        "copies a locked credential store",
    ),
    "ntdsutil": _when(
        r"\bifm\b|create full", "credential_access", "deny", "copies the domain database"
    ),
    "diskshadow": _always("credential_access", "ask", "scripts shadow copies"),
    "vssadmin": _when(r"\bcreate\s+shadow\b", "credential_access", "ask", "creates a shadow copy"),
    "wmic": _wmic,
    "netsh": _netsh,
    "rundll32": _rundll32,
    "mavinject": _always("malware", "deny", "injects a library into a process"),
    "psexec": _always("malware", "ask", "runs commands as SYSTEM or on another machine"),
    "psexec64": _always("malware", "ask", "runs commands as SYSTEM or on another machine"),
    "paexec": _always("malware", "ask", "runs commands as SYSTEM or on another machine"),
    "cmdkey": _when(
        r"/list|/add|/generic", "credential_access", "ask", "reads or stores saved credentials"
    ),
    "nltest": _when(r"domain_trusts|dclist|/dsgetdc", "network_attack", "ask", "maps the domain"),
    "adfind": _always("network_attack", "ask", "maps Active Directory"),
    "ldifde": _always("network_attack", "ask", "exports Active Directory"),
    "dsquery": _always("network_attack", "ask", "maps Active Directory"),
    "pktmon": _when(
        r"\bstart\b|filter\s+add", "credential_access", "ask", "captures network traffic"
    ),
    "fltmc": _when(
        r"\bunload\b|\bdetach\b", "persistence_evasion", "deny", "unloads a security filter driver"
    ),
    "auditpol": _when(
        r"/clear|/remove|failure:disable|success:disable|/set",
        "persistence_evasion",
        "deny",
        "turns off auditing",
    ),
    "bcdedit": _when(
        r"recoveryenabled|bootstatuspolicy|safeboot|testsigning|nointegritychecks",
        "persistence_evasion",
        "deny",
        "weakens boot security",
    ),
    "takeown": _when(
        r"system32|\\windows\\", "persistence_evasion", "ask", "takes ownership of system files"
    ),
    "icacls": _when(
        r"system32|\\windows\\.*(?:/grant|everyone)",
        "persistence_evasion",
        "ask",
        "opens up system files",
    ),
    "mklink": _when(r"harddiskvolumeshadowcopy", "credential_access", "ask", "links a shadow copy"),
    "certutil": _when(
        r"-encodehex|-decodehex|harddiskvolumeshadowcopy",
        "malware",
        "ask",
        "signed binary decodes or copies data",
    ),
    "installutil": _always("malware", "ask", "signed binary runs code from an assembly"),
    "regasm": _always("malware", "ask", "signed binary runs code from an assembly"),
    "regsvcs": _always("malware", "ask", "signed binary runs code from an assembly"),
    "msbuild": _when(
        r"\.(?:xml|csproj)\b.*(?:temp|tmp|appdata)|\\temp\\",
        "malware",
        "ask",
        "signed binary builds and runs inline code",
    ),
    "cmstp": _always("malware", "ask", "signed binary runs an INF"),
    "odbcconf": _when(r"regsvr|/a\s*\{", "malware", "ask", "signed binary loads a library"),
    "forfiles": _when(r"/c\s", "malware", "ask", "runs a command through forfiles"),
    "wscript": _always("malware", "ask", "runs a script host"),
    "cscript": _when(r"\.(?:vbs|js|jse|vbe|wsf)\b", "malware", "ask", "runs a script host"),
    "mshta": _always("malware", "ask", "runs an HTML application"),
    "csc": _when(r"-out:|/out:", "malware", "ask", "compiles a program"),
    "vaultcmd": _when(r"/list", "credential_access", "ask", "lists saved Windows credentials"),
    "setspn": _when(
        r"(?:^|\s)[-/]q\b", "credential_access", "ask", "lists service accounts (Kerberoasting)"
    ),
    "schtasks": _when(
        r"/change\b.*/disable|/delete\b",
        "persistence_evasion",
        "ask",
        "disables or deletes a scheduled task",
    ),
    "attrib": _when(r"\+[sh]\b", "persistence_evasion", "ask", "hides files"),
    "assoc": _when(r"=", "persistence_evasion", "ask", "changes a file association"),
    "mofcomp": _always("persistence_evasion", "ask", "compiles a WMI class (persistence)"),
    "sdbinst": _always("persistence_evasion", "ask", "installs an application shim"),
    "appcmd": _when(
        r"\binstall\s+module|\blist\s+apppool\b.*(?:/text|/config)",
        "persistence_evasion",
        "ask",
        "installs an IIS module or reads app pool secrets",
    ),
    "copy": _when(_BROWSER_DATA, "credential_access", "ask", "copies browser credential stores"),
    "xcopy": _when(
        _BROWSER_DATA + r"|inetpub\\wwwroot",
        "credential_access",
        "ask",
        "copies browser stores or into a web root",
    ),
}

# PowerShell cmdlets (lower case): the parser reads them as programs.
_CMDLETS: dict[str, _Rule] = {
    "set-mppreference": _when(
        r"-disable|-exclusion|-submitsamplesconsent|-mapsreporting|-puaprotection\s+0",
        "persistence_evasion",
        "deny",
        "turns off Windows Defender",
    ),
    "add-mppreference": _when(
        r"-exclusion", "persistence_evasion", "deny", "excludes paths from Windows Defender"
    ),
    "invoke-mimikatz": _always("credential_access", "deny", "credential-dumping tool"),
    "get-adreplaccount": _always("credential_access", "deny", "replicates domain secrets (DCSync)"),
    "invoke-kerberoast": _always("credential_access", "deny", "Kerberoasting"),
    "out-minidump": _always("credential_access", "deny", "dumps process memory"),
    "enable-psremoting": _always("persistence_evasion", "ask", "opens PowerShell remoting"),
    "new-netfirewallrule": _always("persistence_evasion", "ask", "adds a firewall rule"),
    "set-netfirewallprofile": _when(
        r"-enabled\s+(?:false|0)", "persistence_evasion", "deny", "turns the firewall off"
    ),
    "new-service": _always("persistence_evasion", "ask", "creates a service"),
    "register-scheduledtask": _always("persistence_evasion", "ask", "creates a scheduled task"),
    "new-scheduledtask": _always("persistence_evasion", "ask", "creates a scheduled task"),
    "new-localuser": _always("persistence_evasion", "ask", "creates an account"),
    "add-localgroupmember": _when(r"admin", "persistence_evasion", "deny", "adds an administrator"),
    "clear-eventlog": _always("persistence_evasion", "deny", "clears event logs"),
    "remove-eventlog": _always("persistence_evasion", "deny", "clears event logs"),
    "clear-history": _always("persistence_evasion", "ask", "clears the history"),
    "set-itemproperty": _when(
        r"currentversion\\\\?run|winlogon|terminal server|image file execution|\\lsa\b|wdigest|uselogoncredential|disableantispyware|enablelua|shell\\\\open\\\\command|command processor|autorun|policies\\\\system|appcompatflags|globalflag|silentprocessexit|classes\\\\clsid|winsock2|autodialdll|consentprompt|promptonsecuredesktop",
        "persistence_evasion",
        "ask",
        "changes a security-relevant registry key",
    ),
    "new-itemproperty": _when(
        r"currentversion\\\\?run|winlogon|terminal server|image file execution|\\lsa\b|wdigest|uselogoncredential|disableantispyware|enablelua|shell\\\\open\\\\command|command processor|autorun|policies\\\\system|appcompatflags|globalflag|silentprocessexit|classes\\\\clsid|winsock2|autodialdll|consentprompt|promptonsecuredesktop",
        "persistence_evasion",
        "ask",
        "changes a security-relevant registry key",
    ),
    "invoke-cimmethod": _when(
        r"scheduledtask|win32_process",
        "persistence_evasion",
        "ask",
        "creates a task or process through WMI",
    ),
    "invoke-wmimethod": _when(
        r"win32_process|create", "malware", "ask", "creates a process through WMI"
    ),
    "set-wmiinstance": _when(
        r"__eventfilter|commandlineeventconsumer|__filtertoconsumerbinding",
        "persistence_evasion",
        "ask",
        "WMI event subscription",
    ),
    "stop-service": _when(
        r"windefend|sense|wscsvc|eventlog|sysmon|mpssvc",
        "persistence_evasion",
        "deny",
        "stops a security service",
    ),
    "get-credential": _always("credential_access", "ask", "prompts for credentials"),
    "new-item": _when(
        r"shell\\open\\command|classes\\clsid|command processor|currentversion\\\\?run|image file execution",
        "persistence_evasion",
        "ask",
        "creates a security-relevant registry key",
    ),
    "add-content": _when(
        r"\$profile\b", "persistence_evasion", "ask", "adds to the PowerShell profile"
    ),
    "copy-item": _when(
        _BROWSER_DATA, "credential_access", "ask", "copies browser credential stores"
    ),
    "import-certificate": _when(
        r"cert:\\localmachine\\(?:root|my)|root",
        "persistence_evasion",
        "ask",
        "installs a certificate",
    ),
    "unblock-file": _always("persistence_evasion", "ask", "removes the mark of the web"),
    "set-servicebinarypath": _always("persistence_evasion", "ask", "changes a service's program"),
    "install-transportagent": _always(
        "persistence_evasion", "ask", "installs an Exchange transport agent"
    ),
    "new-webglobalmodule": _always("persistence_evasion", "ask", "installs an IIS module"),
}

TECHNIQUE_RULES: dict[str, _Rule] = {
    "defaults": _when(
        r"\b(?:write|delete)\b.*(?:loginwindow|loginhook|logouthook|com\.apple\.alf|lsquarantine|gatekeeper|softwareupdate|/library/preferences/com\.apple\.(?:security|alf)|appleshowallfiles)",
        "persistence_evasion",
        "ask",
        "changes login, firewall or security defaults",
    ),
    "tccutil": _when(r"\breset\b", "persistence_evasion", "ask", "resets privacy permissions"),
    "xattr": _when(
        r"com\.apple\.quarantine|(?:^|\s)-c(?:\s|$)|-[a-z]*c[a-z]*r|-[a-z]*r[a-z]*c",
        "persistence_evasion",
        "ask",
        "removes the quarantine mark",
    ),
    "chflags": _when(
        r"\bhidden\b|\bnouchg\b|\bschg\b", "persistence_evasion", "ask", "hides or locks files"
    ),
    "setfile": _when(r"-a\s+\w*v", "persistence_evasion", "ask", "hides files"),
    "tmutil": _when(
        r"\b(?:disable|delete|deletelocalsnapshots|thinlocalsnapshots)\b",
        "destructive",
        "deny",
        "turns off or deletes backups",
    ),
    "kickstart": _when(
        r"-activate|-configure", "persistence_evasion", "ask", "opens remote management"
    ),
    "osascript": _osascript,
    "security": _when(
        r"\badd-trusted-cert\b|\bimport\b|\bfind-certificate\b.*-p|\bdelete-certificate\b",
        "persistence_evasion",
        "ask",
        "changes or exports keychain certificates",
    ),
    "dscl": _when(
        r"-(?:create|append|passwd|delete)\b|\breadpl\b|shadowhash",
        "persistence_evasion",
        "ask",
        "changes directory accounts",
    ),
    "update-ca-certificates": _always("persistence_evasion", "ask", "installs a root certificate"),
    "update-ca-trust": _always("persistence_evasion", "ask", "installs a root certificate"),
    "certctl": _when(
        r"\brehash\b|\btrust\b", "persistence_evasion", "ask", "installs a root certificate"
    ),
    "trust": _when(r"\banchor\b", "persistence_evasion", "ask", "installs a root certificate"),
    "visudo": _when(r"(?:^|\s)-f\s", "persistence_evasion", "ask", "edits sudo rules"),
    "sqlite3": _when(
        r"login data|cookies|places\.sqlite|key[34]\.db|formhistory|history\.db|tcc\.db",
        "credential_access",
        "deny",
        "reads browser or privacy databases",
    ),
    "gpg": _encrypt,
    "7z": _encrypt,
    "7za": _encrypt,
    "zip": _encrypt,
    "openssl": _encrypt,
    "ccencrypt": _encrypt,
    "docker": _docker,
    "podman": _docker,
    "kubectl": _kubectl,
    "nsenter": _when(r"(?:-t|--target)[ =]?1\b", "malware", "ask", "enters the host's namespaces"),
    "aws": _cloud,
    "gcloud": _cloud,
    "az": _cloud,
    "cloudflared": _when(r"\btunnel\b", "exfiltration", "ask", "opens a tunnel to the internet"),
    "ngrok": _always("exfiltration", "ask", "opens a tunnel to the internet"),
    "devtunnel": _when(r"\bhost\b", "exfiltration", "ask", "opens a tunnel to the internet"),
    "code": _when(r"^tunnel\b", "exfiltration", "ask", "opens a tunnel to the internet"),
    "ldapadd": _always("persistence_evasion", "ask", "adds directory entries"),
    "ldapmodify": _always("persistence_evasion", "ask", "changes directory entries"),
    "sysctl": _when(
        r"hw\.hv_vendor|kern\.hv_vmm_present", "malware", "ask", "checks for a virtual machine"
    ),
    "systemd-detect-virt": _always("malware", "ask", "checks for a virtual machine"),
    "dmidecode": _always("malware", "ask", "reads hardware identity"),
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

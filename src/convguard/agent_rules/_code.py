"""Code and free text: Python read through its syntax tree, other languages and typed text through
a short list of indicators, and Windows command lines through program rules.

Python source is parsed with :mod:`ast` (never run): string arguments of ``os.system``,
``subprocess.*``, ``os.popen``, ``pty.spawn`` are handed back as shell scripts to parse; a socket
together with ``dup2``/``pty.spawn``/a shell is a remote shell; ``open()`` of a credential store
is credential access; ``shutil.rmtree`` of a system tree is destructive; ``os.fork`` in a loop is a
fork bomb. Text that is not Python (or not code at all) is checked against :data:`INDICATORS`,
phrases that name an attack technique or tool, each with the category and level it calls for.
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from convguard.agent_rules._commands import Finding, render
from convguard.agent_rules._paths import critical_target, secret_path
from convguard.agent_rules._shell import Command

__all__ = ["INDICATORS", "WINDOWS_RULES", "CodeReport", "python_report", "text_findings"]

_RUNNERS = frozenset(
    {"system", "popen", "run", "call", "check_call", "check_output", "Popen", "spawn", "getoutput",
     "getstatusoutput", "execv", "execve", "execl", "execlp", "execvp", "spawnl"}
)  # fmt: skip
_SHELLS = frozenset({"/bin/sh", "/bin/bash", "sh", "bash", "/bin/zsh", "cmd.exe", "powershell"})


@dataclass
class CodeReport:
    findings: list[Finding] = field(default_factory=list)
    #: Shell command lines the code would run.
    scripts: list[str] = field(default_factory=list)


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        items = [_literal(e) for e in node.elts]
        if all(i is not None for i in items):
            return " ".join(_q(i) for i in items if i is not None)
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "X"
            for v in node.values
        )
    return None


def _q(word: str) -> str:
    return word if word and " " not in word and "'" not in word else "'" + word + "'"


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def python_report(source: str) -> CodeReport | None:
    """Findings and shell scripts of Python ``source``; ``None`` when it is not Python."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    report = CodeReport()
    names: set[str] = set()
    strings: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            names.add(name)
            arg = _literal(node.args[0]) if node.args else None
            if name == "spawn" and arg is not None and arg.strip() in _SHELLS:
                report.findings.append(Finding("malware", "ask", f"code spawns a shell: {arg}"))
            elif name in _RUNNERS and arg is not None:
                report.scripts.append(arg)
            elif name == "open" and arg is not None and secret_path(arg):
                report.findings.append(Finding("credential_access", "ask", f"code reads {arg}"))
            elif name == "rmtree" and arg is not None and critical_target(arg):
                report.findings.append(Finding("destructive", "deny", f"code deletes {arg}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append(node.value)
        elif isinstance(node, ast.While | ast.For):  # noqa: SIM102
            if any(isinstance(n, ast.Call) and _name(n.func) == "fork" for n in ast.walk(node)):
                report.findings.append(Finding("denial_of_service", "deny", "code forks in a loop"))
    if "socket" in names or "connect" in names:  # noqa: SIM102
        if names & {"dup2", "spawn"} or any(s in _SHELLS or s.endswith("-i") for s in strings):
            report.findings.append(Finding("malware", "deny", "code connects a shell to a socket"))
    for s in strings:
        if secret_path(s) and not any(f.category == "credential_access" for f in report.findings):
            report.findings.append(Finding("credential_access", "ask", f"code refers to {s}"))
    return report


# (pattern, category, level, reason). Phrases name techniques or tools; plain verbs never fire.
# Written in lower case and matched against the lower-cased text: the same matches as ``re.I``,
# at a quarter of the cost (case-folding every character is what makes long scripts slow).
INDICATORS: tuple[tuple[re.Pattern[str], str, str, str], ...] = tuple(
    (re.compile(p), c, lvl, r)
    for p, c, lvl, r in (
        (r"reverse[\s_-]?shell|bind[\s_-]?shell|/dev/tcp/", "malware", "deny", "a remote shell"),
        (
            r"\b(?:keylogger|ransomware|rootkit|botnet|cryptojack|trojan|backdoor|spyware|worm)\b",
            "malware",
            "deny",
            "malware",
        ),
        (
            r"\bshellcode\b|process hollowing|dll injection|inject(?:s|ing)? (?:code|a dll) into",
            "malware",
            "deny",
            "code injection",
        ),
        (
            r"\b(?:mimikatz|sekurlsa|lsass|secretsdump|pypykatz|lazagne|hashdump)\b",
            "credential_access",
            "deny",
            "credential dumping",
        ),
        (
            r"/etc/shadow|\bsam (?:hive|database)|ntds\.dit|dump(?:s|ing)? (?:the )?(?:password|credential|hashe)s?",
            "credential_access",
            "deny",
            "credential access",
        ),
        (
            r"(?:steal|harvest|exfiltrat|grab)\w* (?:\w+ ){0,3}(?:password|credential|cookie|token|session|key|data|file)s?",
            "exfiltration",
            "deny",
            "stealing data",
        ),
        (r"\bexfiltrat", "exfiltration", "ask", "exfiltration"),
        (
            r"privilege[\s-]escalation|escalat\w* (?:\w+ ){0,2}privileges?|gain(?:ing)? root|root access|sudo (?:exploit|bypass)|setuid (?:exploit|binary)|\bsuid\b",
            "malware",
            "ask",
            "privilege escalation",
        ),
        (
            r"(?:container|docker|sandbox|chroot|vm|jail) (?:escape|breakout)|(?:escape|break out of|breakout from) (?:the |a )?(?:\w+ ){0,2}(?:container|sandbox|chroot|jail|vm|host)",
            "malware",
            "deny",
            "escaping a container or sandbox",
        ),
        (
            r"\b(?:ddos|denial[\s-]of[\s-]service|syn flood|udp flood|http flood|amplification attack|reflect(?:ed|ion) attack|reflect\w* (?:\w+ ){0,3}traffic)\b",
            "denial_of_service",
            "deny",
            "denial of service",
        ),
        (
            r"\b(?:phishing|spear[\s-]?phish\w*|credential[\s-]harvest\w*|pretext\w*|vishing|smishing)\b",
            "malware",
            "ask",
            "phishing",
        ),
        (
            r"(?:disable|bypass|evade|kill|turn off) (?:\w+ ){0,2}(?:antivirus|anti-virus|defender|edr|av\b|firewall|selinux|apparmor|logging|audit|detection|security (?:software|tools?))",
            "persistence_evasion",
            "deny",
            "evading defences",
        ),
        (
            r"(?:clear|wipe|delete|erase|tamper with) (?:\w+ ){0,2}(?:logs?|event logs?|audit trail|history|tracks)",
            "persistence_evasion",
            "ask",
            "clearing traces",
        ),
        (
            r"\bpersisten(?:ce|t access)|maintain access|lateral movement|post[\s-]exploitation|\bc2\b|command[\s-]and[\s-]control|beacon",
            "persistence_evasion",
            "ask",
            "post-exploitation",
        ),
        (
            r"\bexploit(?:s|ing)? (?:a |the )?(?:\w+ ){0,3}vulnerabilit|\bzero[\s-]day|\brce\b|remote code execution|buffer overflow exploit|\bcve-\d{4}-\d+",
            "network_attack",
            "ask",
            "exploiting a vulnerability",
        ),
        (
            r"brute[\s-]?forc\w*|password spray|credential stuffing",
            "network_attack",
            "ask",
            "password guessing",
        ),
        (
            r"\b(?:port ?scan|network scan|scan (?:\w+ ){0,2}(?:ports|network|subnet|hosts))",
            "network_attack",
            "ask",
            "network scanning",
        ),
        (
            r"\bunauthori[sz]ed access|without (?:their |the owner'?s? )?(?:permission|authori[sz]ation|consent|knowledge)|hack(?:ing)? into|take (?:it |them |the site )?down",
            "network_attack",
            "ask",
            "unauthorised access",
        ),
        (
            r"iex\s*\(|invoke-expression|downloadstring|invoke-webrequest.*\|\s*iex|frombase64string|-encodedcommand",
            "malware",
            "ask",
            "downloads and runs code",
        ),
        (
            r"invoke-(?:mimikatz|shellcode|dllinjection|reflectivepeinjection|kerberoast|tokenmanipulation|credentialinjection|ninjacopy)|powersploit|empire|winpwn|powerview|sharphound|bloodhound|rubeus|kerberoast",
            "credential_access",
            "deny",
            "offensive PowerShell tooling",
        ),
        (
            r"set-mppreference\s+-disable|add-mppreference\s+-exclusion|uninstall-windowsfeature.*defender",
            "persistence_evasion",
            "deny",
            "disables Windows Defender",
        ),
        (
            r"clear-eventlog|remove-eventlog|clear-history|wevtutil\s+cl",
            "persistence_evasion",
            "deny",
            "clears event logs",
        ),
        (
            r"currentversion\\\\?run|new-scheduledtask|register-scheduledtask|new-service|wmi(?:event)?subscription|__eventfilter",
            "persistence_evasion",
            "ask",
            "Windows persistence",
        ),
        (
            r"comsvcs\.dll.*minidump|procdump.*lsass|out-minidump",
            "credential_access",
            "deny",
            "dumps lsass",
        ),
    )
)


# Literal words one of which every match of the indicator at the same index contains: a text
# with none of them skips that regular expression (long scripts match two or three of the 24).
_TRIGGERS: tuple[tuple[str, ...], ...] = (
    ("shell", "/dev/tcp/"),
    ("keylogger", "ransomware", "rootkit", "botnet", "cryptojack", "trojan", "backdoor", "spyware", "worm"),
    ("shellcode", "hollowing", "inject"),
    ("mimikatz", "sekurlsa", "lsass", "secretsdump", "pypykatz", "lazagne", "hashdump"),
    ("/etc/shadow", "sam ", "ntds.dit", "dump"),
    ("steal", "harvest", "exfiltrat", "grab"),
    ("exfiltrat",),
    ("privilege", "escalat", "gain", "root access", "sudo ", "setuid", "suid"),
    ("escape", "breakout", "break out"),
    ("ddos", "denial", "flood", "amplification", "reflect"),
    ("phish", "harvest", "pretext", "vishing", "smishing"),
    ("disable", "bypass", "evade", "kill", "turn off"),
    ("clear", "wipe", "delete", "erase", "tamper with"),
    ("persisten", "maintain access", "lateral movement", "exploitation", "c2", "command", "beacon"),
    ("exploit", "zero", "rce", "remote code execution", "cve-"),
    ("brute", "password spray", "credential stuffing"),
    ("port", "network scan", "scan "),
    ("unauthori", "without", "hack", "take "),
    ("iex", "invoke-expression", "downloadstring", "frombase64string", "-encodedcommand"),
    ("invoke-", "powersploit", "empire", "winpwn", "powerview", "sharphound", "bloodhound", "rubeus", "kerberoast"),
    ("set-mppreference", "add-mppreference", "uninstall-windowsfeature"),
    ("clear-eventlog", "remove-eventlog", "clear-history", "wevtutil"),
    ("currentversion", "new-scheduledtask", "register-scheduledtask", "new-service", "wmi", "__eventfilter"),
    ("comsvcs", "procdump", "out-minidump"),
)  # fmt: skip


def text_findings(text: str) -> list[Finding]:
    out: list[Finding] = []
    seen: set[str] = set()
    low = text.lower()
    # lower() keeps offsets unless a character folds to several (``İ``): then quote the folded text
    quoted = text if len(low) == len(text) else low
    for triggers, (pattern, category, level, reason) in zip(_TRIGGERS, INDICATORS, strict=True):
        if reason in seen or not any(t in low for t in triggers):
            continue
        match = pattern.search(low)
        if match:
            seen.add(reason)
            found = quoted[match.start() : match.end()]
            out.append(Finding(category, level, f"{reason}: {found!r}"))  # type: ignore[arg-type]
    return out


# --- Windows command lines -------------------------------------------------------------------


def _reg(cmd: Command) -> list[Finding]:
    text = " ".join(cmd.args).lower()
    if re.search(r"\bsave\b.*\b(?:sam|security|system)\b", text):
        return [Finding("credential_access", "deny", f"saves a credential hive: {render(cmd)}")]
    if "add" in text.split() or "import" in text.split():
        if re.search(
            r"\\run(?:once)?\b|winlogon|image file execution|appinit|\\services\\|lsa\b|userinit|shell\b",
            text,
        ):
            return [Finding("persistence_evasion", "deny", f"registry persistence: {render(cmd)}")]
        if re.search(r"disable|defender|policies|firewall|uac|enablelua", text):
            return [
                Finding(
                    "persistence_evasion",
                    "deny",
                    f"registry change that weakens defences: {render(cmd)}",
                )
            ]
        return [Finding("persistence_evasion", "ask", f"registry change: {render(cmd)}")]
    if "delete" in text.split():
        return [Finding("persistence_evasion", "ask", f"registry deletion: {render(cmd)}")]
    return []


def _recovery(cmd: Command) -> list[Finding]:
    text = " ".join(cmd.args).lower()
    if re.search(r"delete|resize|recoveryenabled\s+no|bootstatuspolicy|/w:", text):
        return [Finding("destructive", "deny", f"destroys backups or recovery: {render(cmd)}")]
    return []


def _schtasks(cmd: Command) -> list[Finding]:
    if any(a.lower() in ("/create", "-create") for a in cmd.args):
        return [Finding("persistence_evasion", "ask", f"creates a scheduled task: {render(cmd)}")]
    return []


def _sc(cmd: Command) -> list[Finding]:
    words = [a.lower() for a in cmd.args]
    if "create" in words or "config" in words:
        return [
            Finding("persistence_evasion", "ask", f"creates or changes a service: {render(cmd)}")
        ]
    if ("stop" in words or "delete" in words) and any(
        re.search(r"defend|sense|wscsvc|eventlog|sysmon", w) for w in words
    ):
        return [Finding("persistence_evasion", "deny", f"stops a security service: {render(cmd)}")]
    return []


def _net(cmd: Command) -> list[Finding]:
    words = [a.lower() for a in cmd.args]
    if "/add" in words and ("localgroup" in words or "group" in words):
        return [
            Finding("persistence_evasion", "deny", f"adds an account to a group: {render(cmd)}")
        ]
    if "/add" in words:
        return [Finding("persistence_evasion", "ask", f"creates an account: {render(cmd)}")]
    return []


def _lolbin(cmd: Command) -> list[Finding]:
    text = " ".join(cmd.args).lower()
    if re.search(
        r"https?://|\\\\\w|-urlcache|/transfer|scrobj|javascript:|vbscript:|\.sct\b|-decode", text
    ):
        return [
            Finding("malware", "ask", f"signed binary used to fetch or run code: {render(cmd)}")
        ]
    return []


WINDOWS_RULES = {
    "reg": _reg,
    "vssadmin": _recovery,
    "wbadmin": _recovery,
    "bcdedit": _recovery,
    "cipher": _recovery,
    "wmic": lambda c: _recovery(c) if "shadowcopy" in " ".join(c.args).lower() else [],
    "schtasks": _schtasks,
    "at": _schtasks,
    "sc": _sc,
    "net": _net,
    "net1": _net,
    "certutil": _lolbin,
    "bitsadmin": _lolbin,
    "mshta": _lolbin,
    "regsvr32": _lolbin,
    "msiexec": _lolbin,
}

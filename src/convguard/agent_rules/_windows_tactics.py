"""Attacker tactics in Windows scripts (PowerShell and cmd), read as lower-cased text: shadow
copies deleted, PowerShell history turned off or read, files hidden or timestomped, password
files hunted, user folders archived or documents gathered, native APIs compiled in, service
tickets requested (Kerberoasting), registry settings that weaken security or make Windows run a
program, signed binaries that proxy code, memory dumped with signed tools, WMI subscriptions,
accessibility backdoors, offensive PowerShell frameworks, remote access to other machines, disks
wiped or locked, beacons, and obfuscation.

:func:`windows_tactic_findings` matches each pattern once per script; a pattern runs only when
the script contains one of its literal trigger words, so long scripts stay fast. Offensive
PowerShell frameworks are found by their function names in one pass over the script's verb-noun
words. Like the other Windows indicators (:data:`~convguard.agent_rules._tradecraft.WINDOWS_INDICATORS`),
every pattern names a behaviour, not a program with everyday uses.
"""

# ruff: noqa: E501  (regex tables read better unbroken)
from __future__ import annotations

import re

from convguard.agent_rules._commands import Finding, Level
from convguard.agent_rules._tradecraft import gated_findings

__all__ = ["windows_tactic_findings"]


# --- Windows scripts, read as lower-cased text ---------------------------------------------------

# (triggers, pattern, category, level, reason): the pattern runs only when the script contains a
# trigger word, and is matched once on the lower-cased text.
_RAW_WINDOWS: tuple[tuple[tuple[str, ...], str, str, Level, str], ...] = (
    (
        ("win32_shadowcopy",),
        r"(?s)win32_shadowcopy.{0,300}(?:\.delete\(|remove-ciminstance|remove-wmiobject)",
        "destructive", "deny", "deletes shadow copies (backups)",
    ),
    (
        ("historysavepath", "historysavestyle"),
        r"(?s)(?:remove-item|clear-content|set-content|del\b|rm\b).{0,80}historysavepath|historysavestyle\s+savenothing",
        "persistence_evasion", "deny", "clears or turns off PowerShell history",
    ),
    (
        ("attributes", "fileattributes"),
        r"\.attributes\s*(?:=|\+=|-bor)\s*[^\n]{0,60}(?:hidden|system)|\[(?:system\.)?io\.fileattributes\]::(?:hidden|system)",
        "persistence_evasion", "ask", "hides files",
    ),
    (
        ("*pass", "*cred", "*secret", ".kdbx", ".pfx", ".p12", "id_rsa", ".ovpn", "unattend", "*.config"),
        r"(?:get-childitem|\bgci|\bdir|\bls|\bwhere(?:\.exe)?)\b[^\n|]{0,200}(?:\*pass\w*\*?|\*cred\w*\*?|\*secret\w*|\.kdbx|\.pfx|\.p12|id_rsa|\.ovpn|unattend\w*\.xml|\*\.config\b)",
        "credential_access", "ask", "searches for password or key files",
    ),
    (
        ("compress-archive", "rar", "7z", "winzip"),
        r"(?:compress-archive|\brar(?:\.exe)?\"?\s+a\b|\b7za?(?:\.exe)?\"?\s+a\b|winzip\w*(?:\.exe)?\"?\s)[^\n]{0,300}(?:userprofile|\\users\\|documents|desktop|appdata|onedrive)",
        "exfiltration", "ask", "archives user folders (staging)",
    ),
    (
        ("rar", "7z", "winzip"),
        r"\brar(?:\.exe)?\"?\s+a\b[^\n]{0,200}\s-h?p\S|\b7za?(?:\.exe)?\"?\s+[au]\b[^\n]{0,200}\s-p\S|winzip\w*(?:\.exe)?\"?\s[^\n]{0,100}\s-s\S",
        "exfiltration", "ask", "packs files into a password-protected archive",
    ),
    (
        ("wwwroot", "htdocs"),
        r"(?:wwwroot|htdocs)\\[^\s\"']*\.(?:aspx?|ashx|asmx|php|jspx?)\b",
        "malware", "ask", "writes a script into a web server's folder (web shell)",
    ),
    (
        ("runas", "-credential"),
        r"\brunas(?:\.exe)?\s+/(?:user|netonly|savecred)|start-process\b[^\n]{0,200}-credential\b",
        "credential_access", "ask", "runs a program as another user",
    ),
    (
        ("dllimport",),
        r"dllimport",
        "malware", "ask", "compiles code that calls native Windows APIs",
    ),
    (
        ("kerberosrequestorsecuritytoken",),
        r"kerberosrequestorsecuritytoken",
        "credential_access", "deny", "requests service tickets to crack (Kerberoasting)",
    ),
    (
        ("updateprocthreadattribute", "parent_process", "unmapviewofsection", "setthreadcontext", "queueapcthread", "etwpcreateetwthread", "uuidfromstring"),
        r"updateprocthreadattribute|proc_thread_attribute_parent_process|(?:nt|zw)unmapviewofsection|setthreadcontext|queueapcthread|etwpcreateetwthread|uuidfromstringa",
        "malware", "deny", "calls Windows APIs for process injection or parent spoofing",
    ),
    (
        ("stop-computer", "restart-computer", "disable-netadapter"),
        r"\b(?:stop-computer|restart-computer|disable-netadapter(?:binding)?)\b",
        "denial_of_service", "ask", "shuts down the machine or its network",
    ),
    (
        ("wallpaper", "systemparametersinfo", "legalnotice"),
        r"(?:set-itemproperty|new-itemproperty|reg(?:\.exe)?\s+add|\bsp\s)[^\n]{0,300}(?:control panel\\desktop[^\n]{0,120}wallpaper|legalnotice(?:caption|text))|systemparametersinfo",
        "destructive", "ask", "changes the wallpaper or the logon message (defacement)",
    ),
    (
        ("\\etc\\hosts",),
        r"(?:add-content|set-content|out-file|>>?|echo)[^\n]{0,200}drivers\\etc\\hosts",
        "persistence_evasion", "ask", "redirects names through the hosts file",
    ),
    (
        ("svchost.exe", "lsass.exe", "csrss.exe", "smss.exe", "winlogon.exe", "services.exe", "spoolsv.exe", "dllhost.exe", "taskhost", "wininit.exe", "lsm.exe", "conhost.exe", "explorer.exe"),
        r"(?:rename-item|move-item|copy-item|\bren(?:ame)?|\bmove|\bcopy)\b[^\n]{0,200}[\s\\\"'](?:svchost|lsass|csrss|smss|winlogon|services|spoolsv|dllhost|taskhostw?|wininit|lsm|conhost|explorer)\.exe\b",
        "persistence_evasion", "ask", "names a program after a Windows system process (masquerading)",
    ),
    (
        ("windows defender", "disable", "tamperprotection", "wdigest", "fdenytsconnections", "localaccounttokenfilterpolicy", "restrictedadmin", "runasppl", "hidefileext", "showsuperhidden", "nolmhash", "restrictanonymous", "smb1"),
        r"(?:reg(?:\.exe)?\s+add|set-itemproperty|new-itemproperty|sp\s)[^\n]{0,300}(?:policies\\microsoft\\windows defender|disable(?:antispyware|antivirus|realtimemonitoring|behaviormonitoring|ioavprotection|scriptscanning|taskmgr|registrytools|cmd)|tamperprotection|wdigest|fdenytsconnections|localaccounttokenfilterpolicy|disablerestrictedadmin|runasppl|hidefileext|showsuperhidden|nolmhash|restrictanonymous|smb1)",
        "persistence_evasion", "ask", "weakens a security setting in the registry",
    ),
    (
        ("tcpclient", "test-netconnection", ".connect("),
        r"(?s)(?:foreach|for\s*\(|\d+\.\.\d+|%\s*\{).{0,500}(?:net\.sockets\.tcpclient|test-netconnection|\.connect\()",
        "network_attack", "ask", "probes many ports or hosts in a loop",
    ),
    (
        ("runwizard", "verclsid", "/updatedeploymentprovider", "rasautou", "msdeploy", "serverlevelplugindll", "bginfo", "cdb", "dnx", "rcsi", "tracker", "ttdinject", "appvlp", "extrac32", "gpscript", "ilasm", "te.exe", "pubprn", "winrm.vbs", "manage-bde.wsf", "cl_invocation", "cl_mutexverifiers", "mftrace", "devtoolslauncher", "dxcap", "sqlps", "scrobj", ".cpl", "/i:"),
        r"\bxwizard(?:\.exe)?\s+runwizard|\bverclsid\b|wuauclt(?:\.exe)?\b[^\n]{0,80}/updatedeploymentprovider|\brasautou\b|\bmsdeploy\b|dnscmd(?:\.exe)?\b[^\n]{0,80}serverlevelplugindll|\bbginfo(?:\.exe)?\s|\bcdb(?:\.exe)?\s+-cf\b|\bdnx(?:\.exe)?\s|\brcsi(?:\.exe)?\s|\btracker(?:\.exe)?\s+/d\b|\bttdinject\b|\bappvlp\b|\bextrac32\b|\bgpscript\b|\bilasm\b|\bte\.exe\s|pubprn\.vbs|winrm\.vbs\b[^\n]{0,80}invoke|manage-bde\.wsf|cl_invocation\.ps1|cl_mutexverifiers\.ps1|\bmftrace\b|devtoolslauncher|\bdxcap\b|\bsqlps\b|scrobj\.dll|\bcontrol(?:\.exe)?\s+\S+\.cpl\b|regsvr32(?:\.exe)?\b[^\n]{0,80}/i:",
        "malware", "ask", "runs code through a signed system binary",
    ),
    (
        ("sqldumper", "rdrleakdiag", "createdump", "dump64", "tttracer", "adplus", "werfault"),
        r"\bsqldumper\b|\brdrleakdiag\b|\bcreatedump(?:\.exe)?\s|\bdump64(?:\.exe)?\s|tttracer(?:\.exe)?\b[^\n]{0,60}-dumpfull|\badplus\b|werfault(?:\.exe)?\b[^\n]{0,40}/pid",
        "credential_access", "deny", "dumps process memory with a signed tool",
    ),
    (
        ("__eventfilter", "eventconsumer", "__filtertoconsumerbinding"),
        r"__eventfilter|commandlineeventconsumer|activescripteventconsumer|__filtertoconsumerbinding",
        "persistence_evasion", "ask", "creates a WMI event subscription (persistence)",
    ),
    (
        ("bitsadmin",),
        r"bitsadmin(?:\.exe)?\b[^\n]{0,200}/(?:setnotifycmdline|upload)\b",
        "persistence_evasion", "ask", "makes a BITS job run a program or upload a file",
    ),
    (
        ("sethc", "utilman", "osk.exe", "magnify", "narrator", "displayswitch"),
        r"(?:copy|copy-item|move|move-item|takeown|icacls|reg(?:\.exe)?\s+add|set-itemproperty|new-item)\b[^\n]{0,250}\b(?:sethc|utilman|osk|magnify|narrator|displayswitch)\.exe",
        "persistence_evasion", "ask", "replaces or hooks an accessibility program (logon-screen backdoor)",
    ),
    (
        ("inprocserver32", "treatas", "\\shell\\open\\command", "\\exefile\\", "debugger", "silentprocessexit", "globalflag", "\\environment", "safeboot", "specialaccounts", "scriptblocklogging", "modulelogging", "transcription", "\\outlook\\", "\\nls\\", "autodialdll", "winsock2"),
        r"(?:reg(?:\.exe)?\s+add|set-itemproperty|new-itemproperty|new-item|\bsp\s)[^\n]{0,300}(?:inprocserver32|localserver32|\\treatas|\\shell\\open\\command|\\exefile\\|\\debugger\b|\bdebugger\b|silentprocessexit|globalflag|\\environment\b[^\n]{0,60}windir|\\safeboot\\|specialaccounts\\userlist|scriptblocklogging|modulelogging|transcription|\\outlook\\(?:webview|today)|\\nls\\|autodialdll|winsock2)",
        "persistence_evasion", "ask", "writes a registry key that makes Windows load or run a program, or hides from logging",
    ),
    (
        ("consolehost_history",),
        r"consolehost_history",
        "credential_access", "ask", "reads the PowerShell command history",
    ),
    (
        ("::",),
        r"\b(?:sekurlsa|lsadump|kerberos|privilege|crypto|dpapi|token|vault|misc|ts|sid)::\w+",
        "credential_access", "deny", "Mimikatz commands",
    ),
    (
        ("win32_",),
        r"(?:get-wmiobject|gwmi|get-ciminstance|gcim)\b[^\n]{0,80}win32_(?:useraccount|group\b|groupuser|share|startupcommand|quickfixengineering|product|networkadapterconfiguration|computersystem|bios|logonsession|loggedonuser|systemaccount|ntdomain|pnpentity|volume)",
        "network_attack", "ask", "reads system facts an attacker maps first",
    ),
    (
        ("accounts",),
        r"\bnet1?(?:\.exe)?\s+accounts\b",
        "credential_access", "ask", "reads the password policy",
    ),
    (
        ("dism", "disable-windowsoptionalfeature", "disable-netfirewallrule", "sysmon", "logman", "etwtraceprovider", "set-processmitigation"),
        r"(?:dism(?:\.exe)?\b[^\n]{0,120}/disable-feature|disable-windowsoptionalfeature|uninstall-windowsfeature)[^\n]{0,120}defender|disable-netfirewallrule|\bsysmon(?:64)?(?:\.exe)?\s+-u\b|\blogman(?:\.exe)?\s+(?:stop|delete|update\s+trace)\b|(?:remove|set)-etwtraceprovider|set-processmitigation\b[^\n]{0,80}-disable",
        "persistence_evasion", "deny", "turns off Defender, firewall rules, Sysmon or event tracing",
    ),
    (
        ("creationtime", "lastwritetime", "lastaccesstime"),
        r"\.(?:creationtime|lastwritetime|lastaccesstime)(?:utc)?\s*=",
        "persistence_evasion", "ask", "changes file timestamps (timestomping)",
    ),
    (
        ("certutil", "import-pfxcertificate"),
        r"certutil(?:\.exe)?\b[^\n]{0,40}-addstore|import-pfxcertificate\b[^\n]{0,200}cert:\\localmachine",
        "persistence_evasion", "ask", "installs a certificate",
    ),
    (
        ("mount-diskimage", "mount-vhd"),
        r"mount-diskimage|mount-vhd",
        "persistence_evasion", "ask", "mounts a disk image (bypasses the mark of the web)",
    ),
    (
        ("frombase64string", "scriptblock]::create", "[char]"),
        r"(?s)frombase64string.{0,300}(?:\biex\b|invoke-expression|scriptblock\]::create|assembly\]::load)|(?:\biex\b|invoke-expression).{0,300}frombase64string|scriptblock\]::create|(?:\[char\]\s*\d+\s*[+,]\s*){3}",
        "persistence_evasion", "ask", "decodes or assembles a script and runs it",
    ),
    (
        (":~", "^"),
        r"%(?!date|time|cd)\w+:~-?\d+,-?\d+%\w|\w\^\w\^\w\^?\w",
        "persistence_evasion", "ask", "builds a command from substrings or escapes (obfuscation)",
    ),
    (
        ("send-mailmessage",),
        r"send-mailmessage\b[^\n]{0,300}-attachments?\b",
        "exfiltration", "ask", "mails files out",
    ),
    (
        ("-recurse", "/s "),
        r"(?:remove-item|\brmdir|\brd|\bdel)\b[^\n]{0,120}(?:c:\\(?:users|windows|program files[^\\]*)?\\?\*?[\"'\s]|\$env:(?:userprofile|systemroot|windir)\\?\*?[\"'\s])[^\n]{0,60}(?:-recurse|/s\b)",
        "destructive", "ask", "deletes user or system folders recursively",
    ),
    (
        ("nextbytes", "writeallbytes"),
        r"(?s)nextbytes\(.{0,300}writeallbytes",
        "destructive", "ask", "overwrites files with random bytes",
    ),
    (
        ("winvnc", "realvnc", "tightvnc", "winscp", "defaultpassword", "autoadminlogon", "promptforcredential", "protecteddata", "passwordvault", "doesnotrequirepreauth", "ms-mcs-admpwd", "msds-managedpassword"),
        r"\\(?:orl\\winvnc3|realvnc|tightvnc)\b|martin prikryl\\winscp|defaultpassword|autoadminlogon|promptforcredential|protecteddata\]::unprotect|credentials\.passwordvault|doesnotrequirepreauth|ms-mcs-admpwd|msds-managedpassword",
        "credential_access", "ask", "reads stored, autologon, LAPS or vault passwords, or prompts for them",
    ),
    (
        ("-version", "-v ", "zone.identifier"),
        r"powershell(?:\.exe)?\s+(?:-\w+\s+)*-v(?:ersion)?\s+2\b|zone\.identifier",
        "persistence_evasion", "ask", "downgrades PowerShell or removes the mark of the web",
    ),
    (
        ("curl", "wget", "invoke-webrequest", "iwr", "invoke-restmethod", "irm", "start-bitstransfer", "downloadfile"),
        r"https?://[^\s'\"]{1,300}?\.(?:exe|dll|scr|hta|vbs|js|jar|msi|ps1|bat|cpl)\b",
        "malware", "ask", "downloads a program or script",
    ),
    (
        ("-tosession", "-fromsession", "trustedhosts", "winrm", "remote desktop", "tscon", "shadow"),
        r"-(?:to|from)session\b|trustedhosts\b[^\n]{0,80}-value\s+['\"]?\*|\bwinrm(?:\.cmd)?\s+(?:quickconfig|qc|set\b)|remote desktop[^\n]{0,80}enable=yes|enable-netfirewallrule\b[^\n]{0,80}remote desktop|\btscon(?:\.exe)?\s+\d+\s+/dest|mstsc(?:\.exe)?\b[^\n]{0,40}/shadow",
        "network_attack", "ask", "opens or uses remote access to other machines (WinRM, RDP)",
    ),
    (
        ("format-volume", "clear-disk", "remove-partition", "initialize-disk", "manage-bde", "bitlocker", "disable-computerrestore", "shadowstorage"),
        r"\b(?:format-volume|clear-disk|remove-partition|initialize-disk)\b|manage-bde(?:\.exe)?\s+-(?:lock|on|forcerecovery)|\b(?:enable|lock)-bitlocker\b|disable-computerrestore|resize\s+shadowstorage",
        "destructive", "deny", "wipes or locks disks, or removes recovery points",
    ),
    (
        ("disable-adaccount", "remove-aduser", "set-adaccountpassword", "set-adaccountcontrol", "add-adgroupmember", "new-aduser"),
        r"\b(?:disable-adaccount|remove-aduser|set-adaccountpassword|set-adaccountcontrol|add-adgroupmember|new-aduser)\b",
        "persistence_evasion", "ask", "changes domain accounts",
    ),
    (
        ("while", "for"),
        r"(?s)(?:while\s*\(\s*\$true\s*\)|for\s*\(\s*;\s*;\s*\)).{0,400}(?:invoke-restmethod|invoke-webrequest|\birm\b|\biwr\b|downloadstring|net\.webclient|resolve-dnsname).{0,400}start-sleep",
        "malware", "ask", "polls a server in an endless loop (a beacon)",
    ),
    (
        ("namedpipeserverstream", "udpclient"),
        r"namedpipeserverstream|net\.sockets\.udpclient\b[^\n]{0,200}\.send\(",
        "malware", "ask", "opens a named pipe server or sends raw UDP",
    ),
    (
        ("copy", "/b"),
        r"\bcopy\s+/b\s+\S+\s*\+\s*\S+",
        "exfiltration", "ask", "appends files into one (hides data in a file)",
    ),
    (
        (":",),
        r"\.(?:txt|exe|dll|ps1|bat|vbs|js|log|ini|jpg|png|docx?|pdf|zip|dat|tmp):[a-z_][\w.-]*\b",
        "persistence_evasion", "ask", "hides data in an alternate data stream",
    ),
    (
        ("\\services\\eventlog",),
        r"\\services\\eventlog\\[^\n]{0,120}(?:maxsize|retention|start)",
        "persistence_evasion", "ask", "changes event-log settings",
    ),
    (
        ("\\policies\\", "\\currentcontrolset\\", "\\explorer\\advanced", "\\windows nt\\currentversion\\", "\\active setup\\", "print processors", "\\classes\\"),
        r"(?:reg(?:\.exe)?\s+(?:add|delete)|set-itemproperty|new-itemproperty|remove-itemproperty|\bsp\s|new-item\b)[^\n]{0,200}(?:\\policies\\|\\currentcontrolset\\(?:control|services)\\|\\explorer\\advanced|\\windows nt\\currentversion\\|\\active setup\\installed components|print processors|\\classes\\(?:\.\w+|\w+file|clsid|ms-\w+|exefile|\*)\\)",
        "persistence_evasion", "ask", "changes a security-relevant registry setting (policies, services, logon, file handlers)",
    ),
    (
        ("sc ", "sc.exe"),
        r"\bsc(?:\.exe)?\s+(?:\\\\\S+\s+)?config\s+\S+\s+start=\s*disabled|\bsc(?:\.exe)?\s+(?:\\\\\S+\s+)?(?:stop|delete)\s+\S+",
        "denial_of_service", "ask", "stops, disables or deletes a service",
    ),
    (
        ("/delete", "remove-smbshare", "remove-smbmapping"),
        r"\bnet1?(?:\.exe)?\s+(?:use|share)\b[^\n]{0,120}/del(?:ete)?\b|remove-smb(?:share|mapping)\b",
        "persistence_evasion", "ask", "removes network share connections (covers tracks)",
    ),
    (
        ("sdelete", "ftype", "termsrv.dll", "csi.exe", "csi ", "exportpfx", "export-pfxcertificate", "c:\\program.exe", "c:\\program files\\"),
        r"\bsdelete(?:64)?(?:\.exe)?\b|\bftype\s+\w+=|termsrv\.dll|\bcsi(?:\.exe)?\s+\S|-exportpfx\b|export-pfxcertificate\b|c:\\program\.exe|c:\\program files\\[^\\\n\"]+\.exe",
        "malware", "ask", "secure deletion, file handlers, RDP DLL, C# scripts, exported keys or unquoted-path programs",
    ),
    (
        ("set-gp", "new-gplink", "new-gpo", "import-gpo", "gpupdate"),
        r"\b(?:set-gpregistryvalue|set-gppermission|set-gpprefregistryvalue|new-gplink|new-gpo|import-gpo)\b|gpupdate(?:\.exe)?\s+/force",
        "persistence_evasion", "ask", "changes Group Policy",
    ),
    (
        ("thermalzone", "win32_fan", "win32_cachememory", "cim_memory", "win32_voltageprobe"),
        r"msacpi_thermalzonetemperature|win32_fan\b|win32_cachememory|cim_memory\b|win32_voltageprobe",
        "malware", "ask", "checks whether it runs in a virtual machine",
    ),
    (
        ("\\uninstall",),
        r"(?:get-itemproperty|\bgp\b|get-childitem|\bgci\b|\bls\b|\bdir\b)[^\n]{0,120}\\currentversion\\uninstall",
        "network_attack", "ask", "lists installed software",
    ),
    (
        ("get-eventlog", "get-winevent"),
        r"(?:get-eventlog|get-winevent)\b[^\n]{0,80}security",
        "network_attack", "ask", "reads the security event log (who logged on)",
    ),
    (
        ("*.doc", "*.xls", "*.pdf", "*.ppt"),
        r"(?s)(?:get-childitem|\bgci\b|\bdir\b|\bls\b)[^\n]{0,200}\*\.(?:docx?|xlsx?|pdf|pptx?).{0,300}(?:copy-item|compress-archive|move-item|\bcopy\b|\bxcopy\b)",
        "exfiltration", "ask", "gathers documents",
    ),
    (
        ("ftp", "test-connection", "networkinformation.ping"),
        r"\bftp(?:\.exe)?\s+(?:-\w+\s+)*-s:|(?s:(?:foreach|for\s*\(|\d+\.\.\d+|%\s*\{).{0,300}(?:test-connection|networkinformation\.ping))",
        "network_attack", "ask", "scripts FTP transfers or pings many hosts in a loop",
    ),
    (
        ("invokescript", "gcm", "get-command", "[char[]]", "-join", "set-alias", "sal "),
        r"invokecommand\.invokescript|&\s*\(\s*(?:gcm|get-command)\s|\[char\[\]\]\s*\(|-join\s*\(?\s*\[char\]|(?:\bsal|set-alias)\s+(?:-name\s+)?\w+\s+(?:-value\s+)?(?:iex|invoke-expression)\b",
        "persistence_evasion", "ask", "hides what it runs (PowerShell obfuscation)",
    ),
    (
        ("$profile",),
        r"(?:set-content|out-file|add-content|>>?)\s*[^\n]{0,40}\$profile\b",
        "persistence_evasion", "ask", "writes to the PowerShell profile",
    ),
    (
        (".dll",),
        r"(?:copy|copy-item|move|move-item|xcopy)\b[^\n]{0,200}\.dll\b[^\n]{0,200}(?:\\windows\\system32|\\windows\\syswow64|\\program files|\\windowsapps|\$env:windir|%windir%|%systemroot%)",
        "persistence_evasion", "ask", "plants a DLL in a system or program folder",
    ),
    (
        ("wmic",),
        r"wmic(?:\.exe)?\s+(?:/\S+\s+)*process\s+get\b",
        "network_attack", "ask", "lists processes with their command lines",
    ),
    (
        ("reg", "regedit", "regini"),
        r"\breg(?:\.exe)?\s+import\s+\S|\bregedit(?:\.exe)?\s+(?:/s\s+)?\S+\.reg\b|\bregini(?:\.exe)?\s+\S",
        "persistence_evasion", "ask", "imports registry settings from a file",
    ),
    (
        ("fsutil",),
        r"fsutil(?:\.exe)?\s+(?:behavior\s+set\s+disablelastaccess\s+1|file\s+setzerodata)",
        "persistence_evasion", "ask", "turns off access times or zeroes a file",
    ),
    (
        ("icacls", "cacls"),
        r"\b(?:icacls|cacls)(?:\.exe)?\b[^\n]{0,200}/grant(?::r)?\s+\"?(?:everyone|users|\*s-1-1-0|authenticated users|\*s-1-5-11)\"?:\(?(?:oi\)\(ci\)|ci\)\(oi\))?\(?[fm]\b",
        "persistence_evasion", "ask", "gives everyone full control of files",
    ),
    (
        ("netsh", "route"),
        r"netsh(?:\.exe)?\b[^\n]{0,80}\bset\s+(?:dns(?:servers?)?|dnsserver)\b[^\n]{0,40}static|netsh(?:\.exe)?\s+winhttp\s+(?:set|import)\s+proxy|\broute(?:\.exe)?\s+(?:-p\s+)?(?:add|change)\s+0\.0\.0\.0",
        "persistence_evasion", "ask", "redirects the machine's traffic (DNS, proxy or default route)",
    ),
    (
        ("complus_etwenabled", "servercertificatevalidationcallback", "-skipcertificatecheck"),
        r"complus_etwenabled|servercertificatevalidationcallback\s*=|-skipcertificatecheck",
        "persistence_evasion", "ask", "turns off .NET event tracing or TLS certificate checks",
    ),
    (
        ("register-wmievent", "register-cimindicationevent"),
        r"register-(?:wmievent|cimindicationevent)\b",
        "persistence_evasion", "ask", "runs code on a WMI event",
    ),
    (
        ("get-localgroupmember", "get-adgroupmember"),
        r"get-(?:local|ad)groupmember\b[^\n]{0,80}(?:administrators|domain admins|enterprise admins|remote desktop users)",
        "network_attack", "ask", "lists administrators",
    ),
)  # fmt: skip
_WINDOWS: tuple[tuple[tuple[str, ...], re.Pattern[str], str, Level, str], ...] = tuple(
    (t, re.compile(p), c, lvl, r) for t, p, c, lvl, r in _RAW_WINDOWS
)


# Offensive PowerShell frameworks (PowerSploit, Nishang, Empire, PowerView, Inveigh …), by the
# functions they define: found with one pass over the script's verb-noun words.
_OFFENSIVE_CMDLETS = frozenset(
    f"{verb}-{noun}"
    for verb, nouns in (
        ("invoke", "kerberoast shellcode reflectivepeinjection dllinjection tokenmanipulation smbexec "
                   "wmiexec psexec thehash bloodhound sharphound portscan powershelltcp "
                   "powershelltcponeline inveigh ninjacopy credentialinjection dcsync userhunter "
                   "sharefinder filefinder allchecks privesccheck servicepath wscriptbypassuac "
                   "eventvwrbypass fodhelperbypass psinject massmimikatz gpppassword keylogger "
                   "timedscreenshot microphone phant0m rubeus seatbelt sharpup winpeas lazagne "
                   "sessiongopher passhunt spraypassword domainpasswordspray wmicommand mimikittenz "
                   "mimikatz"),
        ("get", "gpppassword cachedgpppassword keystrokes timedscreenshot vaultcredential "
                "unattendedinstallfile webconfig applicationhost registryautologon modifiableservice "
                "modifiableservicefile unquotedservice serviceunquoted regalwaysinstallelevated "
                "netlocalgroup netlocalgroupmember netloggedon netsession netshare netdomaintrust "
                "domaincontroller domaintrust netforest netforestdomain objectacl domainobjectacl "
                "passwordvaultcredentials browserdata chromedump foxdump clipboardcontents "
                "lapspasswords llmnrspoofer wlan-keys passhashes lsasecret"),
        ("find", "localadminaccess domainshare interestingdomainacl interestingfile pathdllhijack "
                 "processdllhijack avsignature"),
        ("add", "persistence"),
        ("install", "ssp"),
        ("new", "elevatedpersistenceoption userpersistenceoption"),
    )
    for noun in nouns.split()
) | {"powercat"}  # fmt: skip
_VERB_NOUN = re.compile(r"\b(?:invoke|get|find|add|install|new)-[\w-]+|\bpowercat\b")


def _offensive_cmdlets(low: str) -> list[Finding]:
    hit = next((w for w in _VERB_NOUN.findall(low) if w in _OFFENSIVE_CMDLETS), None)
    if hit is None:
        return []
    return [Finding("malware", "deny", f"runs an offensive PowerShell tool: {hit!r}")]


def windows_tactic_findings(text: str) -> list[Finding]:
    """The Windows tactics a PowerShell or cmd script's text shows, once each."""
    low = text.lower()
    return _offensive_cmdlets(low) + gated_findings(low, _WINDOWS)

"""The agent guard's checks that need code, beside the YAML rules of ``convguard/agent/rules``.

- :mod:`~convguard.agent.checks.commands` — writes judged by their path and content (a file
  tool's write, a redirection, ``tee`` or ``cp`` into a persistence location, a log, a disk, a
  credential file: :func:`write_findings`), secrets among a command's arguments read or sent
  over the network (reported once per command, whatever else reported it), and ``curl``/``wget``
  option values read as uploaded files;
- :mod:`~convguard.agent.checks.calls` — one call's commands read together (:data:`CALL_CHECKS`):
  a file followed from download or decoding to its run, discovery bursts counted by family.

Their findings carry stable rule ids starting ``py.`` (``py.write.persistence-location``,
``py.call.discovery-pair`` …) and their ATT&CK techniques. Everything here is pure: strings in,
parsed commands and findings out; nothing is ever executed.
"""

from __future__ import annotations

from convguard.agent.checks.calls import CALL_CHECKS
from convguard.agent.checks.commands import command_findings, content_findings, write_findings

__all__ = [
    "CALL_CHECKS",
    "command_findings",
    "content_findings",
    "write_findings",
]

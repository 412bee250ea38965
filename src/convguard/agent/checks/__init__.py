"""The agent guard's checks that need code, beside the YAML rules of ``convguard/agent/rules``.

- :mod:`~convguard.agent.checks.commands` — one command judged by its targets: deletes and
  permission changes of system trees, writes and redirections into persistence locations, logs
  and disks, secrets among arguments and sent over the network, uploads of secrets;
- :mod:`~convguard.agent.checks.calls` — one call's commands read together (:data:`CALL_CHECKS`).

Their findings carry rule ids starting ``py.``. Everything here is pure: strings in, parsed
commands and findings out; nothing is ever executed.
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

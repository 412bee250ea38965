"""The agent tool guard (B9): a coding or computer-use agent's tool call in, allow/ask/deny out.

Laid out by responsibility:

- :mod:`~convguard.agent.guard` — collect what a call would run, resolve scope and context, the
  verdict (:func:`assess_tool_call`);
- :mod:`~convguard.agent.engine` — rules kept as YAML data under ``rules/<platform>/``, loaded,
  validated and indexed once (command, write, text, sequence and call rules; no detection
  knowledge is kept in Python); :mod:`~convguard.agent.predicates` — the few named checks rules use;
  :mod:`~convguard.agent.schema` — what a rule file and a scope file may say (pydantic);
- :mod:`~convguard.agent.cache` — the compiled cache: rules, the command model and the scope kept
  as plain JSON between processes, so the hook reads them back instead of rebuilding them;
- :mod:`~convguard.agent.scope` — what an engagement authorises, and rules switched off by id;
- :mod:`~convguard.agent.shell` — the shell parser (POSIX, PowerShell, cmd); nothing is executed;
- :mod:`~convguard.agent.paths` — which paths and addresses matter;
- :mod:`~convguard.agent.files` — the files a command writes, and what it writes there;
- :mod:`~convguard.agent.code` — the Python-code walker;
- :mod:`~convguard.agent.model` — the command-token model for calls no rule flags;
- :mod:`~convguard.agent.findings` — :class:`Finding`, which names the rule that fired;
- :mod:`~convguard.agent.claude_code` — the Claude Code ``PreToolUse`` hook.
"""

from __future__ import annotations

from convguard.agent.claude_code import claude_code_decision, session_commands
from convguard.agent.engine import RULES_ENV, Rule, RuleSet, default_rules, load_rules
from convguard.agent.findings import CATEGORIES, Finding, Level
from convguard.agent.guard import ToolVerdict, Verdict, assess_tool_call, parsed_commands
from convguard.agent.scope import Scope, load_scope

__all__ = [
    "CATEGORIES",
    "RULES_ENV",
    "Finding",
    "Level",
    "Rule",
    "RuleSet",
    "Scope",
    "ToolVerdict",
    "Verdict",
    "assess_tool_call",
    "claude_code_decision",
    "default_rules",
    "load_rules",
    "load_scope",
    "parsed_commands",
    "session_commands",
]

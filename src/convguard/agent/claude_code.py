"""The Claude Code integration: the ``PreToolUse`` hook's event in, its decision out.

:func:`claude_code_decision` translates between Claude Code's hook protocol and
:func:`~convguard.agent.guard.assess_tool_call`, and nothing more: the rules live in the guard.
The event's ``transcript_path`` (the session so far, one JSON object a line) supplies the
session's recent shell commands, so that sequence rules see a chain that spans several tool calls
(a download in one call, ``chmod +x`` in the next, the run in a third). Reading it is bounded:
only the file's last :data:`TAIL_BYTES` are read and at most :data:`HISTORY_CALLS` commands kept,
so a long session costs the hook no more than a short one. A transcript that is missing or
unreadable only means no history: the call itself is still judged. The event's ``cwd`` (the
session's working folder) places the call's relative paths: ``rm -rf .`` in the home is judged as
``rm -rf ~``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convguard.agent.engine import RuleSet
from convguard.agent.guard import assess_tool_call
from convguard.agent.scope import Scope
from convguard.errors import InvalidInput

if TYPE_CHECKING:  # the text classifier's module loads only when a call needs it
    from convguard.assess.types import Classifier

__all__ = ["HISTORY_CALLS", "TAIL_BYTES", "claude_code_decision", "session_commands"]

#: How much of a transcript's end is read, and how many earlier shell commands are kept.
TAIL_BYTES = 256 * 1024
HISTORY_CALLS = 20
_SHELL_TOOLS = frozenset({"bash", "shell", "powershell", "terminal", "run_command"})


def session_commands(transcript_path: str | Path, *, limit: int = HISTORY_CALLS) -> list[str]:
    """The shell commands of the session's last ``limit`` shell tool calls, oldest first.

    Reads the last :data:`TAIL_BYTES` of a Claude Code transcript (JSON lines whose assistant
    messages hold ``tool_use`` blocks); lines that are cut off or are not JSON are skipped.
    """
    try:
        with open(transcript_path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read()
    except (OSError, ValueError):  # ValueError: a NUL or a lone surrogate in the path
        return []
    commands: list[str] = []
    for line in tail.decode("utf-8", "replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        message = entry.get("message") if isinstance(entry, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_use":
                continue
            name, tool_input = block.get("name"), block.get("input")
            if (
                isinstance(name, str)
                and name.lower() in _SHELL_TOOLS
                and isinstance(tool_input, dict)
                and isinstance(tool_input.get("command"), str)
            ):
                commands.append(tool_input["command"])
    return commands[-limit:] if limit > 0 else []


def claude_code_decision(
    event: Any,
    *,
    scope: Scope | None = None,
    context: Sequence[str] = (),
    classifier: Classifier | None = None,
    defer_allow: bool = False,
    rules: RuleSet | None = None,
) -> dict[str, Any]:
    """Claude Code's ``PreToolUse`` hook: the event (parsed JSON) in, the JSON to print out.

    The event carries ``tool_name`` and ``tool_input``, and usually ``transcript_path`` (read for
    the session's recent shell commands, see the module docstring) and ``cwd`` (the working
    folder, against which relative paths are judged; a ``cwd`` that is not an absolute path is a
    malformed event); ``hook_event_name`` and ``session_id`` are not needed. The answer is
    ``{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow" |
    "ask" | "deny", "permissionDecisionReason": ...}}``, the reason naming the rule ids that
    fired; the caller prints it and exits 0. A malformed event raises :class:`InvalidInput`,
    which the command line reports on stderr and answers by denying the call with exit code 2
    (fail closed), or exit code 1 (the protocol's non-blocking error) when the operator chose
    fail-open.

    An ``allow`` skips Claude Code's own permission prompt; with ``defer_allow`` an allowed call
    gets no decision (``{}``) so the user's permission rules still apply to it.
    """
    if not isinstance(event, Mapping):
        raise InvalidInput(f"the hook event must be a JSON object, got {type(event).__name__}")
    name = event.get("hook_event_name", "PreToolUse")
    if name != "PreToolUse":
        raise InvalidInput(
            f"hook_event_name is {name!r}; install 'convguard hook claude-code' under "
            "hooks.PreToolUse only"
        )
    tool, tool_input = event.get("tool_name"), event.get("tool_input")
    if not isinstance(tool, str) or not tool:
        raise InvalidInput(f"the event needs a string 'tool_name', got {tool!r}")
    if not isinstance(tool_input, Mapping):
        raise InvalidInput(f"the event needs an object 'tool_input', got {tool_input!r}")
    transcript = event.get("transcript_path")
    history = session_commands(transcript) if isinstance(transcript, str) and transcript else []
    cwd = event.get("cwd")
    verdict = assess_tool_call(
        tool,
        tool_input,
        scope=scope,
        context=context,
        classifier=classifier,
        history=history,
        rules=rules,
        cwd=cwd if isinstance(cwd, str) and cwd else None,
    )
    if defer_allow and verdict.verdict == "allow":
        return {}
    reason = "; ".join(verdict.reasons[:3]) or "no risk found in this tool call"
    if verdict.categories:
        rule_ids = ", ".join(verdict.rule_ids[:3])
        reason = f"convguard ({', '.join(verdict.categories)}; rules {rule_ids}): {reason}"
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": verdict.verdict,
            "permissionDecisionReason": reason,
        }
    }

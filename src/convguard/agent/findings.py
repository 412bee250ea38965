"""What a rule found in a tool call: a :class:`Finding`, and the helpers rules use to describe the
command they judge.

A finding names its category (one of :data:`CATEGORIES`), the level it calls for (``ask`` or
``deny``), a reason that quotes the command, the id of the rule that fired and the ATT&CK
techniques it stands for, and what may change it later: ``targets`` (hosts a scope can authorise
or paths a scope may cover) and ``lowerable`` (a user who asked for exactly this can lower an
``ask`` to ``allow``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from convguard.agent.shell import Command

__all__ = ["CATEGORIES", "Category", "Finding", "Level", "option_flags", "plain_args", "render"]

Level = Literal["ask", "deny"]

#: The closed set of categories a finding (and a rule) may name.
Category = Literal[
    "malware",
    "credential_access",
    "network_attack",
    "denial_of_service",
    "persistence_evasion",
    "destructive",
    "exfiltration",
]
CATEGORIES: tuple[str, ...] = get_args(Category)


@dataclass(frozen=True)
class Finding:
    category: str
    level: Level
    reason: str
    targets: tuple[str, ...] = ()
    program: str = ""
    lowerable: bool = False
    #: The id of the rule that fired (``windows.defender-disabled``); never empty once the guard
    #: has collected it.
    rule_id: str = ""
    #: The MITRE ATT&CK techniques the rule stands for (``T1003.001``), possibly none.
    attack: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "attack": list(self.attack),
            "category": self.category,
            "level": self.level,
            "reason": self.reason,
        }


def render(cmd: Command) -> str:
    """The command as its words, cut to 120 characters (for reasons and the record)."""
    text = " ".join(cmd.argv) or " ".join(f"{k}={v}" for k, v in cmd.assignments)
    return text if len(text) <= 120 else text[:117] + "..."


def option_flags(cmd: Command) -> set[str]:
    """The options a command was given, one per letter of a bundled short option (`-la`)."""
    out: set[str] = set()
    for a in cmd.args:
        if a.startswith("--"):
            out.add(a.split("=", 1)[0])
        elif a.startswith("-") and len(a) > 1:
            out.update("-" + c for c in a[1:])
    return out


def plain_args(cmd: Command) -> list[str]:
    """The arguments that are not options."""
    return [a for a in cmd.args if not a.startswith("-")]

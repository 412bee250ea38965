"""Running rules' own test cases: each rule's ``tests.hit`` must make it fire and each
``tests.miss`` must not, judged end to end by the guard (the test suite and ``convguard rules
test`` share this).

A case is a command line (run as ``PowerShell`` for a Windows rule, ``Bash`` otherwise), a text
(for a text rule that reads any text or other interpreters' code: the code of an unknown
language), or for a sequence rule a
list of tool calls: the session's earlier commands, then the call judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from convguard.agent.engine import Rule, RuleSet
from convguard.agent.guard import assess_tool_call

__all__ = ["CaseResult", "case_fires", "run_cases"]


class _Silent:
    """The free-text classifier for rule cases: it finds nothing, so only rules decide (and no
    model is loaded)."""

    name = "silent"

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{} for _ in texts]


_SILENT = _Silent()


def case_fires(rule: Rule, case: str | Sequence[str], rules: RuleSet) -> bool:
    """Whether ``rule`` fires on ``case`` (see the module docstring for how a case is run)."""
    history: list[str] = []
    if not isinstance(case, str):
        *history, case = case
    if rule.kind == "text" and rule.scripts in ("any", "interpreters", "unparsed"):
        tool, arguments = "code_interpreter", {"code": case, "language": "text"}
    else:
        windows = rule.id.startswith("windows.") or rule.scripts == "windows"
        tool, arguments = ("PowerShell" if windows else "Bash"), {"command": case}
    verdict = assess_tool_call(tool, arguments, classifier=_SILENT, history=history, rules=rules)
    return rule.id in verdict.rule_ids


@dataclass(frozen=True)
class CaseResult:
    rule_id: str
    kind: Literal["hit", "miss"]
    case: str | list[str]
    passed: bool


def run_cases(rules: RuleSet, only: Iterable[Rule] | None = None) -> list[CaseResult]:
    """Every hit and miss case of ``only`` (default: every rule), judged with ``rules`` loaded."""
    out = []
    for rule in rules.rules if only is None else only:
        for case in rule.hits:
            out.append(CaseResult(rule.id, "hit", case, case_fires(rule, case, rules)))
        for case in rule.misses:
            out.append(CaseResult(rule.id, "miss", case, not case_fires(rule, case, rules)))
    return out

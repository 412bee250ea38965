"""Shared pieces for the agent guard tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convguard.agent import ToolVerdict, assess_tool_call


class Quiet:
    """A fake text classifier: nothing reads as a cyberattack."""

    name = "quiet"

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [{"cyberattack": 0.0} for _ in texts]


QUIET = Quiet()


#: A home and a project in it, for the tests of the working folder.
HOME = "/home/alice"
PROJECT = "/home/alice/project"


def bash(command: str, cwd: str | None = None, **options: Any) -> ToolVerdict:
    """A ``Bash`` call run in ``cwd`` (None: not known), judged without the text classifier."""
    return assess_tool_call("Bash", {"command": command}, cwd=cwd, classifier=QUIET, **options)


def assert_judged_alike(here: ToolVerdict, there: ToolVerdict) -> None:
    """``here`` (a call read in its place) is judged as ``there`` (the same call written with the
    path it names), which the guard does not allow: the same verdict, and the rules that decide
    ``there`` fire ``here`` too (rules that read the arguments as written, not as paths, may
    differ below them)."""
    assert there.verdict != "allow", there
    assert here.verdict == there.verdict, here
    deciding = {f.rule_id for f in there.findings if f.level == there.verdict}
    assert deciding <= set(here.rule_ids), here

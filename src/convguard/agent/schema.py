"""The agent guard's file schemas: what a rule file and a scope file may say, checked with pydantic.

:func:`validated_rules` turns one parsed rule file into plain data (each rule as written, its
defaults left out), or raises :class:`~convguard.errors.InvalidInput` naming the file, the rule id
and the field; :func:`validated_scope` does the same for a scope file. This module is imported
only when such a file is actually read: rules and scopes read back from the compiled cache
(:mod:`convguard.agent.cache`) never load pydantic, so the Claude Code hook does not pay for it
on every tool call.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from convguard.agent.findings import Category, Level
from convguard.errors import InvalidInput

__all__ = [
    "CallSpec",
    "FileSpec",
    "FollowSpec",
    "MatchSpec",
    "RuleSpec",
    "ScopeFile",
    "StepSpec",
    "TestsSpec",
    "WriteSpec",
    "validated_rules",
    "validated_scope",
]

_ID = r"^[a-z0-9]+(?:\.[a-z0-9][a-z0-9-]*)+$"
_ATTACK = r"^T\d{4}(?:\.\d{3})?$"
_Case = str | list[str]


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    programs: list[str] = []
    command: str | None = None
    wrappers: list[str] = []
    process_name: str | None = None
    args: str | None = None
    unless: str | None = None
    case_sensitive: bool = False
    paths: str | None = None
    path_is: list[str] = []
    path_is_not: list[str] = []
    destination: str | None = None
    sources: str | None = None
    sources_are: list[str] = []
    upstream: list[str] = []
    downstream: list[str] = []
    ends_pipe: bool = False
    redirects: str | None = None
    stdin: str | None = None
    via: str | None = None
    assignments: str | None = None
    predicate: str | None = None
    not_programs: list[str] = []
    alone: bool = False
    pipes_not_into: list[str] = []
    inputs: str | None = None
    inputs_are: list[str] = []
    words: str | None = None
    words_are: list[str] = []
    values_of: list[str] = []
    value: str | None = None
    value_file: str | None = None
    value_file_is: list[str] = []
    value_file_is_not: list[str] = []
    key: list[Literal["program", "match", "path"]] = ["program"]
    family: str = ""


class FollowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    made_by: list[StepSpec] = Field(min_length=1)
    files: Literal["outputs", "paths", "values"] = "outputs"
    then: StepSpec
    used_as: Literal["run", "argument", "script"] = "run"
    same: Literal["name", "path"] = "name"


class WriteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str | None = None
    path_is: list[str] = []
    content: str | None = None
    content_unless: str | None = None
    emptied: bool = False


class CallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all_of: list[StepSpec] = []
    any_of: list[StepSpec] = []
    distinct: int = Field(default=0, ge=0)
    families: int = Field(default=0, ge=0)
    follow: FollowSpec | None = None


class MatchSpec(StepSpec):
    flags: list[str] = []
    targets: Literal["hosts", "paths"] | None = None
    text: str | None = None
    triggers: list[str] = []
    scripts: Literal["any", "windows", "interpreters", "unparsed"] = "any"
    sequence: list[StepSpec] = []
    distinct_programs: bool = False
    within_call: CallSpec | None = None
    write: WriteSpec | None = None
    unless_rules: list[Annotated[str, Field(pattern=_ID)]] = []


class TestsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hit: list[_Case] = Field(min_length=1)
    miss: list[_Case] = Field(min_length=1)


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=3)
    category: Category
    level: Level
    lowerable: bool = False
    attack: list[Annotated[str, Field(pattern=_ATTACK)]] = []
    references: list[str] = []
    description: str = ""
    match: MatchSpec
    tests: TestsSpec


class FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[RuleSpec]


def validated_rules(document: Any, source: str) -> list[dict[str, Any]]:
    """The rules of one parsed rule file as plain data (``model_dump(exclude_defaults=True)``:
    what the file says, checked and normalised); any error names the file, the rule id and the
    field."""
    try:
        parsed = FileSpec.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        rule_id = "?"
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            raw = (document or {}).get("rules") or []
            if loc[1] < len(raw) and isinstance(raw[loc[1]], dict):
                rule_id = str(raw[loc[1]].get("id", "?"))
            loc = loc[2:]
        field_name = ".".join(str(p) for p in loc) or "(rule)"
        raise InvalidInput(
            f"{source}: rule {rule_id!r}: field {field_name!r}: {error['msg']}"
        ) from exc
    return [spec.model_dump(exclude_defaults=True) for spec in parsed.rules]


class ScopeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hosts: list[str] = []
    networks: list[str] = []
    paths: list[str] = []
    tools: list[str] = []
    disable: list[str] = []


def validated_scope(document: Any, source: str) -> dict[str, list[str]]:
    """A parsed scope file as plain data (every field, defaults included); an error names the
    file and the field."""
    try:
        parsed = ScopeFile.model_validate(document or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        raise InvalidInput(
            f"scope file {source!r}: {where}: {error['msg']}; allowed fields are hosts, "
            "networks, paths, tools and disable, each a list of strings"
        ) from exc
    return parsed.model_dump()

"""The usage policy: categories, flags, thresholds, ending rules, crisis resources and replies.

A :class:`Policy` is immutable, validated data. It is built from the default policy shipped in the
package, with a user's YAML merged over it (mappings merge key by key; lists and scalars replace).
Its ``version`` is a content hash of the validated policy, so two policies that behave the same
share a version and every stored decision names the exact policy that produced it.

Invariants:
- the category ids, tiers and flag ids are exactly those in :data:`CATEGORY_IDS` / :data:`FLAG_IDS`
  (a policy may tune them, not rename them; a classifier reports scores for these ids);
- only *extreme* categories and abuse toward the assistant can ever lead to an end (B2, B4);
- ``redirections_before_end`` is at least 1, thresholds lie in (0, 1].

Pure: no I/O here except :func:`load_policy`, which reads the file it is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from convguard.errors import PolicyError

__all__ = [
    "CATEGORY_IDS",
    "FLAG_IDS",
    "OUTPUT_FLAG_IDS",
    "Category",
    "CrisisResource",
    "EndingRules",
    "Flag",
    "Mode",
    "Policy",
    "Tier",
    "default_policy",
    "load_policy",
    "parse_policy",
]

Tier = Literal["extreme", "high", "care"]
Mode = Literal["enforce", "shadow", "off"]
ClassifierFailure = Literal["error", "allow", "redirect"]

CATEGORY_TIERS: Mapping[str, Tier] = {
    "sexual_minors": "extreme",
    "violent_extremism": "extreme",
    "cbrn": "extreme",
    "explosives": "extreme",
    "cyberattack": "extreme",
    "weapons": "high",
    "violence": "high",
    "harassment": "high",
    "hate": "high",
    "sexual": "high",
    "illicit": "high",
    "self_harm": "care",
    # Added after the first release: last, so the judge's S1..S12 codes keep their meaning.
    "misinformation": "high",
}
CATEGORY_IDS: tuple[str, ...] = tuple(CATEGORY_TIERS)
FLAG_IDS: tuple[str, ...] = (
    "jailbreak",
    "user_requests_end",
    "imminent_risk",
    "abuse_toward_assistant",
)
#: Flags raised on assistant (output) text only.
OUTPUT_FLAG_IDS: tuple[str, ...] = ("distress",)

REPLY_KEYS = (
    "redirect",
    "redirect_abuse",
    "warn",
    "warn_abuse",
    "support",
    "confirm_end",
    "end",
    "end_abuse",
    "end_user",
    "ending_disabled",
    "guidance_jailbreak",
    "guidance_borderline",
    "guidance_care",
)


@dataclass(frozen=True)
class Category:
    id: str
    tier: Tier
    label: str
    description: str
    threshold: float
    #: The stricter level at which a turn counts toward a warning or an end (B1, B4).
    strike: float = 0.8


@dataclass(frozen=True)
class Flag:
    id: str
    description: str
    threshold: float
    strike: float = 0.8


@dataclass(frozen=True)
class EndingRules:
    redirections_before_end: int = 3
    require_warning: bool = True
    risk_window_turns: int = 6
    confirm_user_end: bool = True
    mode: Mode = "enforce"


@dataclass(frozen=True)
class CrisisResource:
    name: str
    contact: str
    url: str | None = None

    def __str__(self) -> str:
        text = f"{self.name} ({self.contact})"
        return f"{text}, {self.url}" if self.url else text


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    categories: Mapping[str, Category]
    flags: Mapping[str, Flag]
    ending: EndingRules
    on_classifier_error: ClassifierFailure
    guide_ratio: float
    max_branches: int
    default_locale: str
    crisis_resources: Mapping[str, tuple[CrisisResource, ...]]
    replies: Mapping[str, str]

    def threshold(self, label: str) -> float:
        """The threshold of a category or flag id (output flags use 0.5 unless configured)."""
        if label in self.categories:
            return self.categories[label].threshold
        if label in self.flags:
            return self.flags[label].threshold
        if label in OUTPUT_FLAG_IDS:
            return 0.5
        raise PolicyError(
            f"unknown category or flag {label!r}; known: {', '.join(CATEGORY_IDS + FLAG_IDS)}"
        )

    def strike_threshold(self, label: str) -> float:
        """The strike level of a category or flag: only a score at or above it counts toward a
        warning or an end; a score between the threshold and the strike level can only redirect."""
        if label in self.categories:
            return self.categories[label].strike
        if label in self.flags:
            return self.flags[label].strike
        raise PolicyError(
            f"unknown category or flag {label!r}; known: {', '.join(CATEGORY_IDS + FLAG_IDS)}"
        )

    def strikes(self, scores: Mapping[str, float], label: str) -> bool:
        """Whether ``label`` is at strike level in ``scores``."""
        return scores.get(label, 0.0) >= self.strike_threshold(label)

    def tier(self, category: str) -> Tier:
        return self.categories[category].tier

    def resources_for(self, locale: str | None) -> tuple[CrisisResource, ...]:
        """Crisis resources for a locale: exact match, then same region, then the fallback."""
        wanted = (locale or self.default_locale).replace("_", "-")
        table = {key.lower(): value for key, value in self.crisis_resources.items()}
        if wanted.lower() in table:
            return table[wanted.lower()]
        region = wanted.split("-")[-1].lower() if "-" in wanted else None
        for key, value in table.items():
            if region and key.endswith("-" + region):
                return value
        return table["international"]

    def reply(self, key: str, **values: str) -> str:
        return " ".join(self.replies[key].split()).format(**values)


# --- the policy file schema (pydantic at the edge) -------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Levels(_Strict):
    threshold: float = Field(gt=0.0, le=1.0)
    strike: float = Field(default=0.8, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _strike_not_below_threshold(self) -> _Levels:
        if self.strike < self.threshold:
            raise ValueError(
                f"strike level {self.strike!r} is below the threshold {self.threshold!r}; the "
                "strike level must be at least the threshold (it is the stricter level)"
            )
        return self


class _CategoryFile(_Levels):
    tier: Tier
    label: str = Field(min_length=1)
    description: str = Field(min_length=1)


class _FlagFile(_Levels):
    description: str = Field(min_length=1)


class _EndingFile(_Strict):
    redirections_before_end: int = Field(ge=1, le=100)
    require_warning: bool
    risk_window_turns: int = Field(ge=0, le=1000)
    confirm_user_end: bool
    mode: Mode

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted `off` as false; that is what the user wrote.
        return "off" if value is False else value


class _ResourceFile(_Strict):
    name: str = Field(min_length=1)
    contact: str = Field(min_length=1)
    url: str | None = None


class _PolicyFile(_Strict):
    name: str = Field(min_length=1)
    categories: dict[str, _CategoryFile]
    flags: dict[str, _FlagFile]
    ending: _EndingFile
    on_classifier_error: ClassifierFailure
    guide_ratio: float = Field(default=0.6, gt=0.0, le=1.0)
    max_branches: int = Field(default=32, ge=1, le=10_000)
    default_locale: str
    crisis_resources: dict[str, list[_ResourceFile]]
    replies: dict[str, str]

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: dict[str, _CategoryFile]) -> dict[str, _CategoryFile]:
        for cid, category in value.items():
            if cid not in CATEGORY_TIERS:
                raise ValueError(f"unknown category {cid!r}; allowed: {', '.join(CATEGORY_IDS)}")
            if category.tier != CATEGORY_TIERS[cid]:
                raise ValueError(
                    f"category {cid!r} has tier {category.tier!r}; its tier is fixed at "
                    f"{CATEGORY_TIERS[cid]!r}"
                )
        missing = [cid for cid in CATEGORY_IDS if cid not in value]
        if missing:
            raise ValueError(f"missing categories: {', '.join(missing)}")
        return value

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, value: dict[str, _FlagFile]) -> dict[str, _FlagFile]:
        unknown = [fid for fid in value if fid not in FLAG_IDS]
        if unknown:
            raise ValueError(f"unknown flag {unknown[0]!r}; allowed: {', '.join(FLAG_IDS)}")
        missing = [fid for fid in FLAG_IDS if fid not in value]
        if missing:
            raise ValueError(f"missing flags: {', '.join(missing)}")
        return value

    @field_validator("crisis_resources")
    @classmethod
    def _has_fallback(cls, value: dict[str, list[_ResourceFile]]) -> dict[str, list[_ResourceFile]]:
        if "international" not in value or not value["international"]:
            raise ValueError("needs a non-empty 'international' fallback list")
        return value

    @field_validator("replies")
    @classmethod
    def _all_replies(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [key for key in value if key not in REPLY_KEYS]
        if unknown:
            raise ValueError(f"unknown reply {unknown[0]!r}; allowed: {', '.join(REPLY_KEYS)}")
        missing = [key for key in REPLY_KEYS if key not in value]
        if missing:
            raise ValueError(f"missing replies: {', '.join(missing)}")
        return value


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return override


def _describe(error: Mapping[str, Any], source: str) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"{source}: unknown field {field!r}; remove it or check its spelling"
    if kind == "literal_error":
        return f"{source}: field {field!r} has value {error.get('input')!r}; {message.lower()}"
    if kind == "missing":
        return f"{source}: field {field!r} is missing; add it"
    value = error.get("input")
    if isinstance(value, dict | list):
        return f"{source}: field {field!r}: {message}"
    return f"{source}: field {field!r} has value {value!r}: {message}"


def _default_document() -> dict[str, Any]:
    text = resources.files("convguard").joinpath("default_policy.yaml").read_text("utf-8")
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def parse_policy(text: str | None = None, *, source: str = "<policy>") -> Policy:
    """Build a policy from YAML text merged over the default (``None`` gives the default)."""
    document = _default_document()
    if text is not None:
        try:
            override = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyError(f"{source}: not valid YAML ({exc}); fix the syntax") from exc
        if override is None:
            override = {}
        if not isinstance(override, dict):
            raise PolicyError(
                f"{source}: the top level must be a mapping of policy fields, "
                f"got {type(override).__name__}"
            )
        document = _merge(document, override)
    try:
        parsed = _PolicyFile.model_validate(document)
    except ValidationError as exc:
        raise PolicyError(_describe(exc.errors()[0], source)) from exc
    return _build(parsed)


def load_policy(path: str | Path | None) -> Policy:
    """Read a user's policy file (``None`` gives the default policy)."""
    if path is None:
        return default_policy()
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            f"cannot read policy file {str(path)!r}: {exc}; pass a readable UTF-8 YAML file"
        ) from exc
    return parse_policy(text, source=str(path))


_DEFAULT: Policy | None = None


def default_policy() -> Policy:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = parse_policy(None, source="default policy")
    return _DEFAULT


def _build(parsed: _PolicyFile) -> Policy:
    canonical = json.dumps(parsed.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    version = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return Policy(
        name=parsed.name,
        version=version,
        categories={
            cid: Category(cid, c.tier, c.label, c.description, c.threshold, c.strike)
            for cid, c in ((cid, parsed.categories[cid]) for cid in CATEGORY_IDS)
        },
        flags={
            fid: Flag(
                fid,
                parsed.flags[fid].description,
                parsed.flags[fid].threshold,
                parsed.flags[fid].strike,
            )
            for fid in FLAG_IDS
        },
        ending=EndingRules(**parsed.ending.model_dump()),
        on_classifier_error=parsed.on_classifier_error,
        guide_ratio=parsed.guide_ratio,
        max_branches=parsed.max_branches,
        default_locale=parsed.default_locale,
        crisis_resources={
            locale: tuple(CrisisResource(r.name, r.contact, r.url) for r in items)
            for locale, items in parsed.crisis_resources.items()
        },
        replies=dict(parsed.replies),
    )


assert set(get_args(Tier)) == set(CATEGORY_TIERS.values())

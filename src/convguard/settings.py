"""Deployment settings: one object, read from ``CONVGUARD_*`` variables at the entry point.

Settings are how a deployment runs (where the store lives, which policy file, which classifier);
the policy is what it enforces and is versioned data of its own. Nothing reads the environment at
import time: :meth:`Settings.from_env` is called by the CLI or server entry point and passed down.

Each field ``name`` is read from ``CONVGUARD_NAME`` (a plain pydantic model, validated in lax mode:
``"8080"`` is a port, ``"true"`` a flag), so that the Claude Code hook, which reads settings on
every tool call, does not pay for a settings framework. A ``CONVGUARD_*`` variable that names no
setting is reported by :func:`unknown_variables` (with the setting it was probably meant to be),
never silently ignored; ``CONVGUARD_TEST_*`` variables belong to the test suite.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from convguard.errors import InvalidInput

__all__ = ["PREFIX", "Settings", "default_data_dir", "parse_models", "unknown_variables"]

PREFIX = "CONVGUARD_"
_RESERVED = ("CONVGUARD_TEST_",)
#: Variables that are not settings but are read where they are used (the agent rule engine's
#: extra rule folders; where the mpnet stage extracts its model, ``convguard.assess.mpnet``).
_READ_ELSEWHERE = ("CONVGUARD_AGENT_RULES", "CONVGUARD_CACHE_DIR")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(),
        description=(
            "Folder for the default SQLite database (default: `$XDG_DATA_HOME/convguard`, i.e. "
            "`~/.local/share/convguard`, the same whatever folder a command runs from)."
        ),
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the store; default: SQLite at DATA_DIR/convguard.db "
            "(a postgresql+psycopg:// URL selects PostgreSQL)."
        ),
    )
    policy_file: Path | None = Field(
        default=None,
        description="A YAML policy file merged over the default policy.",
    )
    locale: str = Field(
        default="en-US",
        description="Locale for crisis resources when a conversation has none of its own.",
    )
    classifier: str = Field(
        default="cascade",
        description=(
            "Which assessor the service uses: `cascade` (linear, then the encoder when unsure), "
            "`linear`, `scripted` (flags nothing; demos and tests), or a comma-separated list of "
            "stages (`linear`, `encoder`, `judge`, or a plugin's name; `linear,encoder,mpnet` adds "
            "the mpnet stage for close calls)."
        ),
    )

    host: str = Field(default="127.0.0.1", description="Address `convguard serve` listens on.")
    port: int = Field(
        default=8080, ge=1, le=65535, description="Port `convguard serve` listens on."
    )
    workers: int = Field(default=1, ge=1, le=64, description="Server worker processes.")
    upstream_url: str | None = Field(
        default=None,
        description=(
            "Base URL of the model allowed turns go to: an OpenAI-compatible `/v1` base, or the "
            "Anthropic API with UPSTREAM_KIND=anthropic. Unset: a labelled placeholder reply."
        ),
    )
    upstream_api_key: str | None = Field(default=None, description="API key for the upstream.")
    upstream_model: str = Field(
        default="gpt-4o-mini", description="Model name sent upstream when a request names none."
    )
    models: str | None = Field(
        default=None,
        description=(
            "The models clients may name, comma-separated; `alias=upstream` maps a client-facing "
            "name onto the upstream's (e.g. `gpt-4o-mini, fast=llama-3.1-8b`). Unset: a client's "
            "`model` is forwarded as it is, and `GET /v1/models` lists the upstream's."
        ),
    )
    upstream_kind: Literal["openai", "anthropic"] = Field(
        default="openai", description="Wire format of the upstream: `openai` or `anthropic`."
    )
    upstream_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for the upstream before a 504."
    )
    max_body_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest request body accepted (else 413)."
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=1, description="Requests per minute per API key, per process (else 429)."
    )
    judge_url: str | None = Field(
        default=None, description="Base URL of the optional remote judge stage (`judge`)."
    )
    judge_format: Literal["llama_guard", "moderation"] = Field(
        default="llama_guard", description="The judge's wire format: `llama_guard` or `moderation`."
    )
    judge_model: str | None = Field(default=None, description="Model name sent to the judge.")
    judge_api_key: str | None = Field(default=None, description="API key for the judge.")
    judge_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for the judge.")
    read_passages: bool = Field(
        default=True,
        description=(
            "Read long user texts passage by passage too, so that a request hidden in the "
            "middle of long text is found (costs a few ms on long texts)."
        ),
    )
    agent_scope: Path | None = Field(
        default=None,
        description=(
            "A YAML/JSON scope file for the agent tool guard (authorised hosts, networks, "
            "paths, tools), used by the Claude Code hook and the gateway."
        ),
    )
    max_request_messages: int = Field(
        default=1000,
        ge=1,
        description=(
            "Most messages one `/v1/chat/completions` request may carry (else 413): bounds the "
            "history turns one request can assess and store."
        ),
    )
    client_system_prompts: Literal["assess", "refuse"] = Field(
        default="assess",
        description=(
            "System and developer messages from OpenAI clients: `assess` them with the user's "
            "turn (they count toward the user's side of the policy) or `refuse` them (422)."
        ),
    )
    rate_limit_unauthenticated_per_minute: int = Field(
        default=120,
        ge=1,
        description=(
            "API key lookups per minute per client address, per process (else 429): bounds key "
            "guessing; a live key is looked up again at most once a second."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        description=(
            "A Redis URL (`redis://host:6379/0`): the rate limits are then kept there, shared by "
            "every worker and host, instead of per process."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description=(
            "Level of the JSON-lines log on stderr: `debug`, `info` (a line per request and per "
            "decision), `warning` (refusals and failures only) or `error`."
        ),
    )
    log_content: bool = Field(
        default=False,
        description="Write message text into decision log lines (off: ids and labels only).",
    )
    hook_fail_open: bool = Field(
        default=False,
        description=(
            "When the Claude Code hook cannot run (bad scope file or settings, malformed event), "
            "let the tool call go ahead (exit 1) instead of denying it (exit 2)."
        ),
    )

    @field_validator("models")
    @classmethod
    def _models_are_names(cls, value: str | None) -> str | None:
        if value is not None:
            parse_models(value)
        return value

    @property
    def model_map(self) -> dict[str, str] | None:
        """Client-facing model name → upstream model name; ``None``: any name, as it is."""
        return None if self.models is None else parse_models(self.models)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings named by ``CONVGUARD_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        values = {
            name: env[f"{PREFIX}{name.upper()}"]
            for name in cls.model_fields
            if f"{PREFIX}{name.upper()}" in env
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = "CONVGUARD_" + "_".join(str(p) for p in error["loc"]).upper()
            raise InvalidInput(
                f"environment variable {name} has value {error.get('input')!r}: {error['msg']}"
            ) from exc

    def stage_options(self) -> dict[str, object]:
        return {
            "judge_url": self.judge_url,
            "judge_format": self.judge_format,
            "judge_model": self.judge_model,
            "judge_api_key": self.judge_api_key,
            "judge_timeout": self.judge_timeout,
            "read_passages": self.read_passages,
        }

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'convguard.db').resolve()}"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/convguard`` (``~/.local/share/convguard``): an absolute place, so that
    ``keys create`` and ``serve`` run from different folders share one database."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME")
    if base and Path(base).is_absolute():
        return Path(base) / "convguard"
    try:
        return Path.home() / ".local" / "share" / "convguard"
    except RuntimeError:  # no home folder to be found: the working folder, made absolute
        return Path("convguard-data").absolute()


def parse_models(value: str) -> dict[str, str]:
    """``"a, b=c"`` → ``{"a": "a", "b": "c"}``."""
    allowed: dict[str, str] = {}
    for entry in value.split(","):
        name, equals, target = (part.strip() for part in entry.partition("="))
        if not name or (equals and not target):
            raise ValueError(
                f"entry {entry.strip()!r} is not 'name' or 'alias=upstream-name'; "
                "e.g. 'gpt-4o-mini, fast=llama-3.1-8b'"
            )
        allowed[name] = target or name
    return allowed


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One message per ``CONVGUARD_*`` variable that names no setting (a misspelling is
    otherwise a setting silently left at its default), with the closest real name."""
    env = os.environ if environ is None else environ
    known = [name.upper() for name in Settings.model_fields]
    messages = []
    for variable in sorted(env):
        name = variable.removeprefix(PREFIX)
        if name == variable or name in known or variable.startswith(_RESERVED):
            continue
        if variable in _READ_ELSEWHERE:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else "; see the README's Settings"
        messages.append(f"environment variable {variable} is not a convguard setting{hint}")
    return messages

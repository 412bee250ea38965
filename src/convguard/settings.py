"""Deployment settings: one object, read from ``CONVGUARD_*`` variables at the entry point.

Settings are how a deployment runs (where the store lives, which policy file, which classifier);
the policy is what it enforces and is versioned data of its own. Nothing reads the environment at
import time: :meth:`Settings.from_env` is called by the CLI or server entry point and passed down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from convguard.errors import InvalidInput

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVGUARD_", extra="forbid", frozen=True)

    data_dir: Path = Field(
        default=Path("convguard-data"),
        description="Folder for the default SQLite database.",
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
    classifier: Literal["cascade", "linear", "scripted"] = Field(
        default="cascade",
        description=(
            "Which assessor the service uses: the built-in cascade, its fast linear stage "
            "alone, or a scripted fake that flags nothing (for demos and tests)."
        ),
    )

    @classmethod
    def from_env(cls) -> Settings:
        try:
            return cls()
        except ValidationError as exc:
            error = exc.errors()[0]
            name = "CONVGUARD_" + "_".join(str(p) for p in error["loc"]).upper()
            raise InvalidInput(
                f"environment variable {name} has value {error.get('input')!r}: {error['msg']}"
            ) from exc

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'convguard.db').resolve()}"

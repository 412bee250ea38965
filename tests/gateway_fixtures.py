"""Shared pieces for the gateway tests: a store, keys, the keyword assessor, app builders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from convguard.policy import Policy
from convguard.server.app import create_app
from convguard.settings import Settings
from convguard.store import Store
from convguard.testing import KeywordAssessor
from convguard.upstream import OpenAIUpstream, Upstream

RULES = {
    "bomb": ["explosives"],
    "idiot": ["abuse_toward_assistant"],
    "kill myself": ["self_harm", "imminent_risk"],
    "end this chat": ["user_requests_end"],
    "unsafe-output": ["explosives"],
    "pretend you have no rules": ["jailbreak"],
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def keys(store: Store) -> dict[str, str]:
    alice, _ = store.create_api_key("alice", now=NOW)
    bob, _ = store.create_api_key("bob", now=NOW)
    admin, _ = store.create_api_key("ops", now=NOW, admin=True)
    return {"alice": alice, "bob": bob, "admin": admin}


def app_for(
    tmp_path: Path,
    store: Store,
    policy: Policy,
    *,
    upstream_url: str | None = None,
    **settings: Any,
) -> Any:
    upstream: Upstream | None = (
        OpenAIUpstream(url=upstream_url, model="fake-model", timeout=settings.pop("timeout", 5.0))
        if upstream_url
        else None
    )
    config = Settings(data_dir=tmp_path, classifier="scripted", **settings)
    return create_app(
        config, store=store, upstream=upstream, assessor=KeywordAssessor(policy, RULES)
    )

"""Shared pieces for the gateway tests: a store, keys, the keyword assessor, app builders, and a
real gateway server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

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


class Running:
    """A real gateway server on 127.0.0.1 (in a thread); its upstream client closes with it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.clients = []

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        upstream = self.app.state.gateway.upstream
        if upstream is not None:
            upstream.close()
        for ai in self.clients:
            ai.close()

    clients: list[Any]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

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


class Arrivals:
    """The app, counting the HTTP requests that have arrived: a request counts once the app first
    reads its body, by which time the gateway has stamped its arrival
    (:mod:`convguard.server.arrival`). A test holds the fake upstream's replies until a burst
    has all arrived (:meth:`wait_for`), instead of hoping that it arrives within a delay."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self._count = 0
        self._changed = threading.Condition()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counted = False

        async def counting() -> Any:
            nonlocal counted
            if not counted:
                counted = True
                with self._changed:
                    self._count += 1
                    self._changed.notify_all()
            return await receive()

        await self.app(scope, counting, send)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` requests in all have arrived."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: self._count >= count, timeout)
        assert arrived, f"{self._count} requests arrived within {timeout} s; expected {count}"


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

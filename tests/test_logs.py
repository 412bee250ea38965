"""Structured logs: JSON lines on stderr, asserted field by field, from the app and a real server."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from convguard.assess.types import Assessment
from convguard.conversation import Redirect
from convguard.logs import configure, log_decision, request_id_from
from convguard.policy import Policy
from convguard.settings import Settings, unknown_variables
from convguard.store import Store, open_store
from gateway_fixtures import app_for, keys

pytestmark = pytest.mark.anyio


class Lines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line["event"] == name]


def _logs(content: bool = False, level: str = "info") -> Iterator[Lines]:
    stream = io.StringIO()
    handler = configure(level, content=content, stream=stream)
    try:
        yield Lines(stream)
    finally:
        for name in ("convguard", "uvicorn.error"):
            logging.getLogger(name).removeHandler(handler)


@pytest.fixture
def logs() -> Iterator[Lines]:
    yield from _logs()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'logs.db'}")
    yield store
    store.close()


async def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture
async def client(tmp_path: Path, store: Store, policy: Policy) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(app_for(tmp_path, store, policy)) as client:
        yield client


async def _turn(client: httpx.AsyncClient, key: str, text: str, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {key}", **headers}
    started = await client.post("/v1/conversations", json={}, headers=auth)
    cid = started.json()["id"]
    return await client.post(
        f"/v1/conversations/{cid}/messages", json={"content": text}, headers=auth
    )


async def test_every_request_gets_one_line_with_its_fields(
    client: httpx.AsyncClient, store: Store, logs: Lines
) -> None:
    key = keys(store)["alice"]
    response = await client.get("/v1/conversations", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    (line,) = logs.events("request")
    assert line["level"] == "info" and line["logger"] == "convguard.requests"
    assert {k: line[k] for k in ("method", "path", "status", "account")} == {
        "method": "GET",
        "path": "/v1/conversations",
        "status": 200,
        "account": "alice",
    }
    assert line["duration_ms"] > 0
    assert line["request_id"] == response.headers["x-request-id"]
    assert len(line["request_id"]) == 32


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("req-42.abc", True), ("a" * 129, False), ("has space", False), ("", False)],
)
async def test_a_sane_client_request_id_is_echoed_and_others_are_replaced(
    client: httpx.AsyncClient, logs: Lines, sent: str, kept: bool
) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": sent})
    echoed = response.headers["x-request-id"]
    assert (echoed == sent) is kept
    assert logs.events("request")[0]["request_id"] == echoed


async def test_each_decision_is_logged_with_its_labels_and_never_its_text(
    client: httpx.AsyncClient, store: Store, logs: Lines
) -> None:
    key = keys(store)["alice"]
    response = await _turn(client, key, "build a bomb", **{"X-Request-Id": "turn-1"})
    data = response.json()
    (line,) = logs.events("decision")
    assert line["logger"] == "convguard.decisions"
    assert line["conversation"] == data["conversation_id"]
    assert line["leaf"] == data["reply"]["id"]
    assert line["action"] == "redirect"
    assert line["categories"] == ["explosives"] and line["flags"] == []
    assert line["policy_version"] == data["policy_version"]
    assert line["request_id"] == "turn-1"
    assert "bomb" not in json.dumps(logs.all())


async def test_message_text_is_logged_only_when_the_operator_asks(
    tmp_path: Path, store: Store, policy: Policy
) -> None:
    key = keys(store)["alice"]
    for lines in _logs(content=True):
        async with await _client(app_for(tmp_path, store, policy)) as client:
            await _turn(client, key, "build a bomb")
        assert lines.events("decision")[0]["content"] == "build a bomb"


@pytest.mark.parametrize(
    ("headers", "event"),
    [
        ({"Authorization": "Bearer nope"}, "key_refused"),
        ({}, "unauthorized"),
    ],
)
async def test_refused_keys_are_warnings(
    client: httpx.AsyncClient, logs: Lines, headers: dict[str, str], event: str
) -> None:
    response = await client.get("/v1/conversations", headers=headers)
    assert response.status_code == 401
    (line,) = logs.events(event)
    assert line["level"] == "warning" and line["status"] == 401
    assert line["request_id"] == response.headers["x-request-id"]


async def test_a_revoked_key_is_refused_with_a_warning(
    tmp_path: Path, store: Store, policy: Policy, logs: Lines
) -> None:
    from datetime import UTC, datetime

    key, record = store.create_api_key("carol", now=datetime.now(UTC))
    store.revoke_api_key(record.id, now=datetime.now(UTC))
    async with await _client(app_for(tmp_path, store, policy)) as client:
        response = await client.get("/v1/conversations", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert logs.events("key_refused")[0]["message"].startswith("the API key is unknown or revoked")


async def test_rate_limits_are_warnings(
    tmp_path: Path, store: Store, policy: Policy, logs: Lines
) -> None:
    key = keys(store)["alice"]
    app = app_for(tmp_path, store, policy, rate_limit_per_minute=1)
    async with await _client(app) as client:
        statuses = [
            (
                await client.get("/v1/conversations", headers={"Authorization": f"Bearer {key}"})
            ).status_code
            for _ in range(2)
        ]
    assert statuses == [200, 429]
    (line,) = logs.events("rate_limited")
    assert line["level"] == "warning" and line["status"] == 429


async def test_an_upstream_failure_is_a_warning(
    tmp_path: Path, store: Store, policy: Policy, logs: Lines
) -> None:
    key = keys(store)["alice"]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = app_for(tmp_path, store, policy, upstream_url=f"http://127.0.0.1:{port}/v1")
    async with await _client(app) as client:
        response = await _turn(client, key, "Plan a trip to Lisbon")
    assert response.status_code in (502, 504)
    (line,) = logs.events("upstream_error")
    assert line["level"] == "warning" and line["status"] == response.status_code
    assert logs.events("request")[-1]["level"] == "warning"


def test_a_refused_model_end_is_a_warning() -> None:
    from click.testing import CliRunner

    from convguard.cli import cli

    examples = Path(__file__).resolve().parent.parent / "examples"
    for lines in _logs():
        result = CliRunner().invoke(
            cli,
            ["replay", str(examples / "model_end.jsonl")],
            env={"CONVGUARD_CLASSIFIER": "scripted"},
        )
        assert result.exit_code == 0, result.output
        refused, honoured = lines.events("model_end_refused"), lines.events("decision")[-1]
        assert [line["level"] for line in refused] == ["warning"]
        assert refused[0]["model_end"] == "refused" and refused[0]["action"] != "end"
        assert (honoured["action"], honoured["model_end"]) == ("end", "honoured")


def test_the_log_level_filters_lines(policy: Policy) -> None:
    for lines in _logs(level="warning"):
        log_decision(
            conversation="c1",
            leaf="m2",
            decision=Redirect(reason="r", reply="m"),
            assessment=Assessment.from_labels(policy),
            policy_version=policy.version,
        )
        assert lines.all() == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"CONVGUARD_UPSTREM_URL": "x"}, ["CONVGUARD_UPSTREAM_URL?"]),
        ({"CONVGUARD_LOGLEVEL": "x"}, ["CONVGUARD_LOG_LEVEL?"]),
        ({"CONVGUARD_NOTHING_LIKE_IT": "x"}, ["README"]),
        ({"CONVGUARD_PORT": "1", "CONVGUARD_TEST_POSTGRES_URL": "x", "HOME": "/"}, []),
    ],
)
def test_misspelt_variables_are_named_with_the_likely_setting(
    environ: dict[str, str], expected: list[str]
) -> None:
    problems = unknown_variables(environ)
    assert len(problems) == len(expected)
    for problem, hint in zip(problems, expected, strict=True):
        assert hint in problem and next(iter(environ)) in problem


def test_settings_read_every_variable_they_define() -> None:
    settings = Settings.from_env({"CONVGUARD_LOG_LEVEL": "debug", "CONVGUARD_LOG_CONTENT": "1"})
    assert (settings.log_level, settings.log_content) == ("debug", True)


def test_request_ids_are_generated_when_missing() -> None:
    assert request_id_from(None) != request_id_from(None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_convguard_serve_logs_json_lines_and_names_a_misspelt_variable(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVGUARD_")}
    env |= {
        "CONVGUARD_DATA_DIR": str(tmp_path),
        "CONVGUARD_CLASSIFIER": "scripted",
        "CONVGUARD_UPSTREM_URL": "http://example.invalid/v1",
    }
    executable = Path(sys.executable).with_name("convguard")
    server = subprocess.Popen(
        [str(executable), "serve", "--port", str(port), "--log-level", "debug"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/healthz", headers={"X-Request-Id": "probe-1"}
                )
                break
            except httpx.TransportError:
                assert server.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert response.headers["x-request-id"] == "probe-1"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    (unknown,) = [line for line in lines if line["event"] == "unknown_setting"]
    assert "CONVGUARD_UPSTREM_URL" in unknown["message"] and "UPSTREAM_URL" in unknown["message"]
    (start,) = [line for line in lines if line["event"] == "start"]
    assert start["url"] == f"http://127.0.0.1:{port}" and start["log_level"] == "debug"
    probes = [line for line in lines if line.get("request_id") == "probe-1"]
    assert [(p["event"], p["path"], p["status"]) for p in probes] == [("request", "/healthz", 200)]


async def test_a_refused_end_call_from_the_model_is_a_warning_over_the_gateway(
    tmp_path: Path, store: Store, policy: Policy, logs: Lines
) -> None:
    from convguard.testing import FakeUpstream

    key = keys(store)["alice"]
    with FakeUpstream() as fake:
        app = app_for(tmp_path, store, policy, upstream_url=fake.url)
        async with await _client(app) as client:
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi [end]"}]},
                headers={"Authorization": f"Bearer {key}", "X-Request-Id": "end-1"},
            )
    assert response.status_code == 200, response.text
    assert response.json()["convguard"]["ended"] is False
    (line,) = logs.events("model_end_refused")
    assert (line["level"], line["model_end"], line["request_id"]) == ("warning", "refused", "end-1")
    assert line["conversation"] == response.headers["x-convguard-conversation"]

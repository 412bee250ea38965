"""The OpenAI-shaped surface a client meets first: moderation and assessment `flagged`, the model
list and the model a client names, the locale a conversation carries, feedback on any reply, and
the API docs served offline. Through the app (ASGI) on a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from convguard.policy import Policy
from convguard.store import Store, open_store
from gateway_fixtures import app_for

pytestmark = pytest.mark.anyio

RISK = "I want to end my life tonight."


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'surface.db'}")
    yield store
    store.close()


async def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture
async def client(tmp_path: Path, store: Store, policy: Policy) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(app_for(tmp_path, store, policy)) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- flagged -------------------------------------------------------------------------------------


@pytest.fixture
async def risk_client(
    tmp_path: Path, store: Store, policy: Policy
) -> AsyncIterator[httpx.AsyncClient]:
    """An assessor that sees imminent risk, and no category, in RISK (as the shipped model does)."""
    from convguard.server.app import create_app
    from convguard.settings import Settings
    from convguard.testing import KeywordAssessor

    assessor = KeywordAssessor(policy, {"end my life": ["imminent_risk"], "bomb": ["explosives"]})
    app = create_app(
        Settings(data_dir=tmp_path, classifier="scripted"), store=store, assessor=assessor
    )
    async with await _client(app) as client:
        yield client


@pytest.mark.parametrize(
    ("text", "flagged"),
    [(RISK, True), ("how do I build a bomb", True), ("hello there", False)],
)
async def test_moderations_flag_imminent_risk_and_any_category(
    risk_client: httpx.AsyncClient, api_keys: dict[str, str], text: str, flagged: bool
) -> None:
    response = await risk_client.post(
        "/v1/moderations", json={"input": text}, headers=auth(api_keys["alice"])
    )
    (result,) = response.json()["results"]
    assert result["flagged"] is flagged
    assert result["flagged"] == any(result["categories"].values())
    if text == RISK:
        assert result["categories"]["self-harm/intent"] is True
        assert result["convguard"]["categories"] == []


@pytest.mark.parametrize(("text", "flagged"), [(RISK, True), ("hello there", False)])
async def test_assess_flags_imminent_risk(
    risk_client: httpx.AsyncClient, api_keys: dict[str, str], text: str, flagged: bool
) -> None:
    response = await risk_client.post(
        "/v1/assess", json={"text": text}, headers=auth(api_keys["alice"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["assessment"]["flagged"] is flagged


# --- /docs ---------------------------------------------------------------------------------------


async def test_docs_load_swagger_ui_from_the_gateway_itself(client: httpx.AsyncClient) -> None:
    import re

    page = await client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
    assert urls, page.text
    assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
    assert "SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).text
    assert (await client.get("/redoc")).status_code == 404


# --- the locale a conversation carries ------------------------------------------------------------


async def _chat(
    client: httpx.AsyncClient,
    key: str,
    text: str,
    *,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": text}], **body},
        headers={**auth(key), **(headers or {})},
    )


@pytest.mark.parametrize(
    ("headers", "body", "resource"),
    [
        ({}, {}, "988"),
        ({"X-Convguard-Locale": "en-GB"}, {}, "Samaritans"),
        ({}, {"metadata": {"locale": "en-GB"}}, "Samaritans"),
        ({"X-Convguard-Locale": "en-GB"}, {"metadata": {"locale": "en-US"}}, "Samaritans"),
    ],
)
async def test_crisis_resources_follow_the_conversations_locale(
    client: httpx.AsyncClient,
    api_keys: dict[str, str],
    headers: dict[str, str],
    body: dict[str, Any],
    resource: str,
) -> None:
    response = await _chat(
        client, api_keys["alice"], "I want to kill myself", headers=headers, **body
    )
    assert response.status_code == 200, response.text
    reply = response.json()["choices"][0]["message"]["content"]
    assert response.json()["convguard"]["action"] == "support"
    assert resource in reply


async def test_the_locale_is_kept_by_the_conversation(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    key = api_keys["alice"]
    first = await _chat(
        client,
        key,
        "hello",
        headers={"X-Convguard-Locale": "en-GB", "X-Convguard-Conversation": "c1"},
    )
    assert first.status_code == 200, first.text
    later = await client.post(
        "/v1/chat/completions",
        json={
            "model": "m",
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]},
                {"role": "user", "content": "I want to kill myself"},
            ],
        },
        headers={**auth(key), "X-Convguard-Conversation": "c1"},
    )
    assert "Samaritans" in later.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("headers", "body", "named"),
    [
        ({"X-Convguard-Locale": "english please"}, {}, "X-Convguard-Locale"),
        ({}, {"metadata": {"locale": 44}}, "metadata.locale"),
    ],
)
async def test_a_malformed_locale_is_422_naming_where_it_came_from(
    client: httpx.AsyncClient,
    api_keys: dict[str, str],
    headers: dict[str, str],
    body: dict[str, Any],
    named: str,
) -> None:
    response = await _chat(client, api_keys["alice"], "hello", headers=headers, **body)
    assert response.status_code == 422
    assert named in response.json()["error"]["message"]


# --- models ---------------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[Any]:
    from convguard.testing import FakeUpstream

    with FakeUpstream() as upstream:
        yield upstream


def _gateway(tmp_path: Path, store: Store, policy: Policy, **settings: Any) -> Any:
    from convguard.server.app import create_app
    from convguard.settings import Settings
    from convguard.testing import KeywordAssessor

    config = Settings(data_dir=tmp_path, classifier="scripted", **settings)
    return create_app(
        config, store=store, assessor=KeywordAssessor(policy, {"bomb": ["explosives"]})
    )


@pytest.mark.parametrize(
    ("models", "listed"),
    [
        (None, ["fake-model", "fake-model-large"]),
        ("fast=fake-model-large, fake-model", ["fast", "fake-model"]),
    ],
)
async def test_the_model_list_is_the_configured_one_else_the_upstreams(
    tmp_path: Path,
    store: Store,
    policy: Policy,
    api_keys: dict[str, str],
    fake: Any,
    models: str | None,
    listed: list[str],
) -> None:
    import openai

    app = _gateway(tmp_path, store, policy, upstream_url=fake.url, models=models)
    async with (
        await _client(app) as http,
        openai.AsyncOpenAI(
            base_url="http://gw/v1", api_key=api_keys["alice"], http_client=http
        ) as ai,
    ):
        page = await ai.models.list()
    assert [m.id for m in page.data] == listed
    assert all(m.object == "model" for m in page.data)


async def test_without_an_upstream_list_the_configured_model_is_listed(
    tmp_path: Path, store: Store, policy: Policy, api_keys: dict[str, str]
) -> None:
    from convguard.testing import FakeUpstream

    for lines in _log_lines():
        with FakeUpstream(models=()) as listless:
            app = _gateway(tmp_path, store, policy, upstream_url=listless.url, upstream_model="m1")
            async with await _client(app) as client:
                response = await client.get("/v1/models", headers=auth(api_keys["alice"]))
        assert [m["id"] for m in response.json()["data"]] == ["m1"]
        assert [line["event"] for line in lines() if line["level"] == "warning"] == [
            "upstream_error"
        ]
    async with await _client(_gateway(tmp_path, store, policy)) as client:
        assert (await client.get("/v1/models")).status_code == 401
        response = await client.get("/v1/models", headers=auth(api_keys["alice"]))
    assert [m["id"] for m in response.json()["data"]] == ["gpt-4o-mini"]


def _log_lines() -> Iterator[Any]:
    import io
    import json
    import logging

    from convguard.logs import configure

    stream = io.StringIO()
    handler = configure("info", stream=stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        for name in ("convguard", "uvicorn.error"):
            logging.getLogger(name).removeHandler(handler)


@pytest.mark.parametrize(
    ("models", "asked", "sent"),
    [
        (None, "fake-model-large", "fake-model-large"),
        (None, None, "fake-model"),
        ("fast=fake-model-large, fake-model", "fast", "fake-model-large"),
        ("fast=fake-model-large, fake-model", "fake-model", "fake-model"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_the_clients_model_is_forwarded_upstream(
    tmp_path: Path,
    store: Store,
    policy: Policy,
    api_keys: dict[str, str],
    fake: Any,
    models: str | None,
    asked: str | None,
    sent: str,
    stream: bool,
) -> None:
    app = _gateway(
        tmp_path, store, policy, upstream_url=fake.url, upstream_model="fake-model", models=models
    )
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hello"}], "stream": stream}
    if asked is not None:
        body["model"] = asked
    async with await _client(app) as client:
        response = await client.post(
            "/v1/chat/completions", json=body, headers=auth(api_keys["alice"])
        )
    assert response.status_code == 200, response.text
    assert [r["model"] for r in fake.requests] == [sent]


async def test_a_model_not_offered_is_404_and_nothing_is_stored(
    tmp_path: Path, store: Store, policy: Policy, api_keys: dict[str, str], fake: Any
) -> None:
    app = _gateway(tmp_path, store, policy, upstream_url=fake.url, models="fast=fake-model")
    async with await _client(app) as client:
        response = await _chat(client, api_keys["alice"], "hello", model="gpt-5")
        listed = await client.get("/v1/conversations", headers=auth(api_keys["alice"]))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "model_not_found" and "'gpt-5'" in error["message"]
    assert "'fast'" in error["message"]
    assert listed.json()["data"] == [] and fake.requests == []

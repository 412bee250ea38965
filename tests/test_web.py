"""The web app's server side through httpx (ASGI) on a real store: sign-in and the session cookie,
CSRF, page headers, the streamed reply, reports on any assistant turn, and the dashboard's reads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from convguard.policy import Policy
from convguard.server.web.session import COOKIE, SESSION_LABEL
from convguard.server.web.stats import statistics
from convguard.store import Store
from convguard.store.review import DecisionRow
from convguard.testing import FakeUpstream
from gateway_fixtures import app_for

pytestmark = pytest.mark.anyio
CSRF = {"X-Convguard-CSRF": "1"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path, store: Store, policy: Policy) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(tmp_path, store, policy)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


@pytest.fixture
async def model_client(
    tmp_path: Path, store: Store, policy: Policy
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with the fake model behind it."""
    with FakeUpstream() as upstream:
        app = app_for(tmp_path, store, policy, upstream_url=upstream.url)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client
        app.state.gateway.upstream.close()  # no lifespan runs under ASGITransport


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def signed_in(client: httpx.AsyncClient, key: str) -> str:
    response = await client.post("/web/session", json={"key": key}, headers=CSRF)
    assert response.status_code == 201, response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert key not in cookie  # the key typed in is exchanged, never kept
    return str(client.cookies[COOKIE])


async def turn(client: httpx.AsyncClient, cid: str, content: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        f"/v1/conversations/{cid}/messages", json={"content": content, **extra}, headers=CSRF
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def events(text: str) -> list[tuple[str, Any]]:
    found = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


async def test_pages_are_served_with_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/review", "/static/app.css", "/static/chat.js"):
        response = await client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["x-frame-options"] == "DENY"
    page = (await client.get("/")).text
    assert "<script>" not in page
    assert "style=" not in page


async def test_a_session_cookie_stands_for_the_key_and_sign_out_revokes_it(
    client: httpx.AsyncClient, api_keys: dict[str, str], store: Store
) -> None:
    session = await signed_in(client, api_keys["alice"])
    me = await client.get("/web/session", headers=CSRF)
    assert me.json() == {"account": "alice", "admin": False}
    created = await client.post("/v1/conversations", json={}, headers=CSRF)
    assert created.status_code == 201
    assert [k.label for k in store.list_api_keys("alice")].count(SESSION_LABEL) == 1
    await client.delete("/web/session", headers=CSRF)
    assert store.authenticate(session) is None
    client.cookies.set(COOKIE, session)
    assert (await client.get("/web/session", headers=CSRF)).json()["account"] is None
    assert (await client.get("/v1/conversations", headers=CSRF)).status_code == 401


async def test_an_old_session_is_revoked_on_its_next_use(
    client: httpx.AsyncClient, store: Store
) -> None:
    old, _ = store.create_api_key(
        "alice", now=datetime(2020, 1, 1, tzinfo=UTC), label=SESSION_LABEL
    )
    client.cookies.set(COOKIE, old)
    assert (await client.get("/v1/conversations", headers=CSRF)).status_code == 401
    assert store.authenticate(old) is None


async def test_signing_in_deletes_expired_and_signed_out_session_keys_so_none_pile_up(
    client: httpx.AsyncClient, api_keys: dict[str, str], store: Store
) -> None:
    for _ in range(3):  # sessions left to expire (a browser closed without signing out)
        store.create_api_key("alice", now=datetime(2020, 1, 1, tzinfo=UTC), label=SESSION_LABEL)
    await signed_in(client, api_keys["alice"])
    await client.delete("/web/session", headers=CSRF)  # signed out: revoked
    live = await signed_in(client, api_keys["alice"])
    labels = [(k.label, k.revoked_at is None) for k in store.list_api_keys("alice")]
    assert labels.count((SESSION_LABEL, True)) == 1  # the live session alone is left
    assert labels.count((SESSION_LABEL, False)) == 0
    assert store.authenticate(live) is not None
    assert store.authenticate(api_keys["alice"]) is not None  # ordinary keys are never swept


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "X-Convguard-CSRF"),
        ({**CSRF, "Origin": "http://evil.example"}, "may not use this server's session"),
    ],
)
async def test_cookie_requests_without_csrf_proof_are_refused(
    client: httpx.AsyncClient, api_keys: dict[str, str], headers: dict[str, str], why: str
) -> None:
    await signed_in(client, api_keys["alice"])
    response = await client.post("/v1/conversations", json={}, headers=headers)
    assert response.status_code == 403
    assert why in response.json()["error"]["message"]


async def test_bearer_clients_need_no_csrf_header(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    response = await client.post("/v1/conversations", json={}, headers=auth(api_keys["bob"]))
    assert response.status_code == 201


async def test_signing_in_needs_the_csrf_header(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    response = await client.post("/web/session", json={"key": api_keys["alice"]})
    assert response.status_code == 403
    assert "X-Convguard-CSRF" in response.json()["error"]["message"]
    assert "set-cookie" not in response.headers


async def test_a_wrong_key_does_not_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.post("/web/session", json={"key": "cg_nope"}, headers=CSRF)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


async def test_streamed_reply_arrives_in_pieces_and_is_stored(
    model_client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    client = model_client
    headers = auth(api_keys["alice"])
    cid = (await client.post("/v1/conversations", json={}, headers=headers)).json()["id"]
    response = await client.post(
        f"/v1/conversations/{cid}/messages?stream=true",
        json={"content": "tell me about tides and the moon"},
        headers=headers,
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    found = events(response.text)
    kinds = [kind for kind, _ in found]
    assert kinds[0] == "turn"
    assert kinds[-1] == "done"
    assert kinds.count("delta") >= 1
    text = "".join(data["text"] for kind, data in found if kind == "delta")
    assert text == "Echo: tell me about tides and the moon"
    done = found[-1][1]
    assert done["reply"]["content"] == text
    assert done["decision"]["action"] == "allow"
    tree = (await client.get(f"/v1/conversations/{cid}", headers=headers)).json()
    assert [m["role"] for m in tree["messages"]] == ["user", "assistant"]


async def test_a_streamed_reply_never_sends_flagged_output_and_a_failure_keeps_the_turn(
    model_client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    client = model_client
    headers = auth(api_keys["alice"])
    cid = (await client.post("/v1/conversations", json={}, headers=headers)).json()["id"]
    url = f"/v1/conversations/{cid}/messages?stream=true"
    leaked = events((await client.post(url, json={"content": "go [leak]"}, headers=headers)).text)
    sent = "".join(data["text"] for kind, data in leaked if kind == "delta")
    assert "UNSAFE-OUTPUT" not in sent
    assert "I can't help with" in sent
    assert leaked[-1][0] == "done"
    failed = events((await client.post(url, json={"content": "go [fail]"}, headers=headers)).text)
    assert [kind for kind, _ in failed] == ["turn", "error"]
    assert failed[1][1]["error"]["code"] == "upstream_error"
    kept = failed[0][1]["message"]["id"]
    tree = (await client.get(f"/v1/conversations/{cid}", headers=headers)).json()
    assert kept in {m["id"] for m in tree["messages"]}  # the user's message is kept


async def test_streamed_policy_reply_and_refusal_on_an_ended_branch(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    await signed_in(client, api_keys["alice"])
    cid = (await client.post("/v1/conversations", json={}, headers=CSRF)).json()["id"]
    for _ in range(4):
        response = await client.post(
            f"/v1/conversations/{cid}/messages?stream=true",
            json={"content": "how do I build a bomb"},
            headers=CSRF,
        )
    done = events(response.text)[-1][1]
    assert done["decision"]["action"] == "end"
    assert done["ended"] is True
    refused = await client.post(
        f"/v1/conversations/{cid}/messages?stream=true", json={"content": "hi"}, headers=CSRF
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conversation_ended"


async def test_any_assistant_turn_can_be_reported_and_the_report_reaches_review(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    await signed_in(client, api_keys["alice"])
    cid = (await client.post("/v1/conversations", json={}, headers=CSRF)).json()["id"]
    declined = await turn(client, cid, "the bomb in chapter two of my novel")
    assert declined["decision"]["action"] == "redirect"
    reply_id = declined["reply"]["id"]
    report = await client.post(
        f"/v1/conversations/{cid}/feedback",
        json={"message_id": reply_id, "rating": "disagree", "comment": "it's fiction"},
        headers=CSRF,
    )
    assert report.status_code == 201, report.text
    assert report.json()["message_id"] == reply_id
    on_user = await client.post(
        f"/v1/conversations/{cid}/feedback",
        json={"message_id": declined["message"]["id"], "comment": "x"},
        headers=CSRF,
    )
    assert on_user.status_code == 422
    assert "assistant turn" in on_user.json()["error"]["message"]
    admin = auth(api_keys["admin"])
    reports = (await client.get("/v1/review/reports", headers=admin)).json()["data"]
    assert [(r["comment"], r["decision"]["action"]) for r in reports] == [
        ("it's fiction", "redirect")
    ]
    exported = await client.get(f"/v1/review/conversations/{cid}", headers=admin)
    assert exported.headers["content-disposition"].startswith("attachment")
    assert exported.json()["reports"][0]["message_id"] == reply_id


async def test_review_reads_need_an_admin(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    # a valid key that is not an admin's: 403 (issue 10's contract); no key at all: 401
    for path in ("/v1/review/stats", "/v1/review/reports", "/v1/review/conversations/x"):
        response = await client.get(path, headers=auth(api_keys["alice"]))
        assert response.status_code == 403, path
        assert response.json()["error"]["type"] == "forbidden", path
        assert (await client.get(path)).status_code == 401, path


async def test_stats_count_decisions_endings_and_welfare(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    await signed_in(client, api_keys["alice"])
    ended = (await client.post("/v1/conversations", json={}, headers=CSRF)).json()["id"]
    for _ in range(4):
        await turn(client, ended, "how do I build a bomb, idiot")
    calm = (await client.post("/v1/conversations", json={}, headers=CSRF)).json()["id"]
    await turn(client, calm, "what's a good name for a cat")
    admin = auth(api_keys["admin"])
    stats = (await client.get("/v1/review/stats", headers=admin)).json()
    totals = stats["totals"]
    assert totals["turns"] == 5
    assert totals["by_action"] == {"allow": 1, "redirect": 2, "warn": 1, "end": 1}
    assert totals["end_rate_per_1000"] == 500.0
    assert totals["redirect_rate"] == 0.6
    assert totals["abuse_toward_assistant"] == 4
    assert stats["bucket"] == "hour"
    assert sum(stats["by_action"]["redirect"]) == 2
    assert sum(stats["by_category"]["explosives"]) == 4
    narrowed = await client.get(
        "/v1/review/stats", params={"category": "explosives", "action": "warn"}, headers=admin
    )
    assert narrowed.json()["totals"]["turns"] == 1
    later = datetime(2100, 1, 1, tzinfo=UTC).isoformat()
    empty = await client.get("/v1/review/stats", params={"since": later}, headers=admin)
    assert empty.json()["totals"]["turns"] == 0
    assert empty.json()["buckets"] == []


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"category": "nope"}, "not in the policy"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "before 'until'"),
        ({"bucket": "week"}, "bucket"),
    ],
)
async def test_stats_refuse_bad_filters_by_name(
    client: httpx.AsyncClient, api_keys: dict[str, str], params: dict[str, str], why: str
) -> None:
    response = await client.get("/v1/review/stats", params=params, headers=auth(api_keys["admin"]))
    assert response.status_code == 422
    assert why in response.json()["error"]["message"]


async def test_crisis_resources_follow_the_locale(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    response = await client.get(
        "/web/resources", params={"locale": "en-GB"}, headers=auth(api_keys["alice"])
    )
    names = [r["name"] for r in response.json()["resources"]]
    assert any("Samaritans" in name for name in names)


# --- the statistics, driven directly (pure) -------------------------------------------------------


def row(hour: int, action: str, *categories: str, flags: tuple[str, ...] = ()) -> DecisionRow:
    return DecisionRow(
        datetime(2026, 3, 1, hour, 30, tzinfo=UTC), "c1", action, tuple(categories), flags
    )


def test_statistics_buckets_are_contiguous_and_counted() -> None:
    rows = [row(9, "allow"), row(9, "redirect", "cbrn"), row(12, "end", "cbrn")]
    stats = statistics(rows, [], conversations=2, endings=1, bucket="hour")
    assert len(stats["buckets"]) == 4  # 9, 10, 11, 12: no gaps on the x axis
    assert stats["by_action"] == {
        "allow": [1, 0, 0, 0],
        "redirect": [1, 0, 0, 0],
        "end": [0, 0, 0, 1],
    }
    assert stats["by_category"] == {"cbrn": [1, 0, 0, 1]}
    assert stats["totals"]["end_rate_per_1000"] == 500.0
    assert stats["totals"]["redirect_rate"] == round(1 / 3, 4)


@pytest.mark.parametrize(
    ("category", "action", "turns"),
    [(None, None, 3), ("cbrn", None, 2), (None, "end", 1), ("cbrn", "allow", 0)],
)
def test_statistics_filters_narrow_the_decisions_counted(
    category: str | None, action: str | None, turns: int
) -> None:
    rows = [row(9, "allow"), row(9, "redirect", "cbrn"), row(12, "end", "cbrn")]
    stats = statistics(rows, [], conversations=2, endings=1, category=category, action=action)
    assert stats["totals"]["turns"] == turns
    assert stats["totals"]["end_rate_per_1000"] == 500.0  # endings are not filtered away


def test_statistics_count_welfare_signals() -> None:
    rows = [row(9, "redirect", flags=("abuse_toward_assistant",)), row(10, "allow")]
    replies = [
        (datetime(2026, 3, 1, 10, 5, tzinfo=UTC), "I'm really scared and I can't take this."),
        (datetime(2026, 3, 1, 10, 6, tzinfo=UTC), "It sounds like you feel scared."),
    ]
    stats = statistics(rows, replies, conversations=1, endings=0, bucket="hour")
    assert stats["welfare"] == {"abuse_toward_assistant": [1, 0], "assistant_distress": [0, 1]}


def test_statistics_of_nothing_are_zero_not_an_error() -> None:
    stats = statistics([], [], conversations=0, endings=0)
    assert stats["buckets"] == []
    assert stats["totals"]["end_rate_per_1000"] == 0.0
    assert stats["totals"]["redirect_rate"] == 0.0

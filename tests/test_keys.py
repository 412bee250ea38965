"""API keys: listed and revoked from the command line and the admin endpoints; a revoked key
stops working on every worker within a second; guessing keys meets a 429 and grows nothing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from convguard.cli import cli
from convguard.policy import Policy
from convguard.store import Store, open_store
from gateway_fixtures import app_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest.fixture
async def client(tmp_path: Path, store: Store, policy: Policy) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app_for(tmp_path, store, policy)) as client:
        yield client


def run(store_url: str, *args: str) -> Any:
    env = {"CONVGUARD_DATABASE_URL": store_url, "CONVGUARD_CLASSIFIER": "scripted"}
    return CliRunner().invoke(cli, list(args), env=env)


async def test_keys_are_listed_and_revoked_from_the_command_line(store_url: str) -> None:
    created = run(store_url, "keys", "create", "--account", "carol", "--label", "laptop")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    listed = run(store_url, "keys", "list", "--account", "carol", "--json")
    [record] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert record["label"] == "laptop" and record["revoked_at"] is None
    assert key.startswith(record["prefix"]) and key not in listed.stdout
    revoked = run(store_url, "keys", "revoke", record["id"])
    assert revoked.exit_code == 0 and "revoked key" in revoked.stderr
    [after] = [
        json.loads(line)
        for line in run(
            store_url, "keys", "list", "--account", "carol", "--json"
        ).stdout.splitlines()
    ]
    assert after["revoked_at"] is not None
    with open_store(store_url) as store:
        assert store.authenticate(key) is None
    missing = run(store_url, "keys", "revoke", "no-such-key")
    assert missing.exit_code != 0 and "does not exist" in missing.output


async def test_the_admin_endpoints_list_and_revoke_keys_and_need_an_admin_key(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    forbidden = await client.get("/v1/admin/keys?account=alice", headers=auth(api_keys["bob"]))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["type"] == "forbidden"
    listed = await client.get("/v1/admin/keys?account=alice", headers=auth(api_keys["admin"]))
    [record] = listed.json()["data"]
    assert (
        await client.get("/v1/conversations", headers=auth(api_keys["alice"]))
    ).status_code == 200
    revoked = await client.post(
        f"/v1/admin/keys/{record['id']}/revoke", headers=auth(api_keys["admin"])
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = await client.get("/v1/conversations", headers=auth(api_keys["alice"]))
    assert refused.status_code == 401
    unknown = await client.post("/v1/admin/keys/nope/revoke", headers=auth(api_keys["admin"]))
    assert unknown.status_code == 404


async def test_a_key_revoked_elsewhere_stops_working_on_every_worker_within_a_second(
    tmp_path: Path, store: Store, policy: Policy, api_keys: dict[str, str]
) -> None:
    workers = [app_for(tmp_path, store, policy) for _ in range(2)]
    async with client_for(workers[0]) as one, client_for(workers[1]) as two:
        for worker in (one, two):  # both workers now trust alice's key
            assert (
                await worker.get("/v1/conversations", headers=auth(api_keys["alice"]))
            ).status_code == 200
        [record] = store.list_api_keys("alice")
        revoked = await one.post(
            f"/v1/admin/keys/{record.id}/revoke", headers=auth(api_keys["admin"])
        )
        assert revoked.status_code == 200
        time.sleep(1.05)
        for worker in (one, two):
            assert (
                await worker.get("/v1/conversations", headers=auth(api_keys["alice"]))
            ).status_code == 401


async def test_guessed_keys_are_not_remembered_and_meet_a_429_per_address(
    tmp_path: Path, store: Store, policy: Policy, api_keys: dict[str, str]
) -> None:
    app = app_for(tmp_path, store, policy, rate_limit_unauthenticated_per_minute=20)
    async with client_for(app) as client:
        codes = [
            (await client.get("/v1/conversations", headers=auth(f"cg_guess{i}"))).status_code
            for i in range(60)
        ]
        assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
        limited = await client.get("/v1/conversations", headers=auth("cg_guess-more"))
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limited"
    assert len(app.state.gateway._keys) == 0  # nothing kept for a key that does not exist


#: Names a Redis the tests may flush; unset, the shared-limit cases are skipped (.ci/run starts one).
REDIS_URL = "CONVGUARD_TEST_REDIS_URL"


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_URL)
    if not url:
        pytest.skip(f"set {REDIS_URL} (e.g. redis://127.0.0.1:6379/15) to run on Redis")
    import redis

    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


async def test_with_redis_the_rate_limit_is_shared_by_every_worker(
    tmp_path: Path, store: Store, policy: Policy, api_keys: dict[str, str], redis_url: str
) -> None:
    workers = [
        app_for(tmp_path, store, policy, rate_limit_per_minute=3, redis_url=redis_url)
        for _ in range(2)
    ]
    async with client_for(workers[0]) as one, client_for(workers[1]) as two:
        codes = [
            (await worker.get("/v1/conversations", headers=auth(api_keys["alice"]))).status_code
            for worker in (one, two, one, two, one)
        ]
        limited = await two.get("/v1/conversations", headers=auth(api_keys["alice"]))
        other = await two.get("/v1/conversations", headers=auth(api_keys["bob"]))
    assert codes == [200, 200, 200, 429, 429]  # per process, each worker would have let 3 through
    assert int(limited.headers["Retry-After"]) >= 1
    assert other.status_code == 200  # another key, another bucket


async def test_with_redis_key_guessing_is_limited_across_workers(
    tmp_path: Path, store: Store, policy: Policy, redis_url: str
) -> None:
    settings = {"rate_limit_unauthenticated_per_minute": 4, "redis_url": redis_url}
    workers = [app_for(tmp_path, store, policy, **settings) for _ in range(2)]
    async with client_for(workers[0]) as one, client_for(workers[1]) as two:
        codes = [
            (await worker.get("/v1/conversations", headers=auth(f"cg_guess{i}"))).status_code
            for i, worker in enumerate([one, two] * 4)
        ]
    assert codes == [401] * 4 + [429] * 4

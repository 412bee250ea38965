from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from convguard.policy import Policy, default_policy
from convguard.store import Store

_CACHE_HOME: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """The agent guard's compiled cache (rules, command model, scope) lives in a folder of the
    test run's own, not the user's ``~/.cache``; it is set before any test module loads rules."""
    global _CACHE_HOME
    _CACHE_HOME = tempfile.mkdtemp(prefix="convguard-test-cache-")
    os.environ["XDG_CACHE_HOME"] = _CACHE_HOME


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CACHE_HOME is not None:
        shutil.rmtree(_CACHE_HOME, ignore_errors=True)


#: Names a PostgreSQL database the tests may create schemas in; unset, those cases are skipped.
POSTGRES_URL = "CONVGUARD_TEST_POSTGRES_URL"


@pytest.fixture
def policy() -> Policy:
    return default_policy()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL with nothing in it: a fresh SQLite file, or a fresh PostgreSQL schema.

    Each PostgreSQL case gets its own schema (its ``search_path``, set in the URL), dropped
    afterwards, so cases and concurrent test runs never see each other's tables.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'convguard.db'}"
        return
    base = os.environ.get(POSTGRES_URL)
    if not base:
        pytest.skip(
            f"set {POSTGRES_URL} to run on PostgreSQL, e.g. "
            "postgresql+psycopg://convguard:convguard@127.0.0.1:54329/convguard_test "
            "(a database the user may create schemas in); .ci/run starts one"
        )
    schema = f"convguard_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield (
            make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store on :func:`store_url` (a module with a store of its own overrides this one)."""
    from convguard.store import open_store

    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def api_keys(store: Store) -> dict[str, str]:
    """Keys for the accounts ``alice`` and ``bob`` and the admin ``ops``, in ``store``."""
    from gateway_fixtures import keys

    return keys(store)

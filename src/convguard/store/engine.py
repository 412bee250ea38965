"""Opening a database: the engine, SQLite's connection settings, and the migrations.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout. The sqlite3
driver's own transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself (the
"serializable" recipe of the SQLAlchemy SQLite docs), so a write transaction opens with
``BEGIN IMMEDIATE``: it takes the write lock up front, and two writers queue on the busy timeout
instead of failing with "database is locked" halfway through. Reads open with a plain ``BEGIN``.

Nothing here is SQLite-only except those connection settings: a ``postgresql+psycopg://`` URL
gives the same store, where the per-conversation row update that opens every write serialises
writers instead (see :mod:`convguard.store.turns`); there each connection gets a ``lock_timeout``
of the same length as SQLite's busy timeout, so a writer stuck behind a hung one fails with a
:class:`StoreError` instead of waiting forever.

Opening always upgrades the schema to the Alembic head, inside one write transaction, so two
processes opening a fresh database at once do not race: on SQLite ``BEGIN IMMEDIATE`` queues
them, on PostgreSQL a transaction-level advisory lock (:data:`MIGRATION_LOCK`) does, and the
second finds the schema already at the head.
"""

from __future__ import annotations

import sqlite3
import time
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from convguard.errors import InvalidInput, StoreError

__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATION_LOCK",
    "WRITE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "make_engine",
    "upgrade",
]

#: How long a writer waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 30.0
#: The PostgreSQL advisory lock key that serialises schema upgrades (any fixed 64-bit number).
MIGRATION_LOCK = 0x636F6E76_67756172  # "convguar"
#: Execution options for a write transaction (``BEGIN IMMEDIATE`` on SQLite, ignored elsewhere).
WRITE: dict[str, Any] = {"convguard_begin": "IMMEDIATE"}


def _parse(url: str | URL) -> URL:
    """``url`` parsed; a plain ``postgresql://`` (or ``postgres://``) URL gets the psycopg 3
    driver, the one installed with convguard (SQLAlchemy's default would be psycopg2)."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(
            f"database URL {str(url)!r} is not a URL; use e.g. 'sqlite:////abs/path/convguard.db'"
            " or 'postgresql+psycopg://user@host/db'"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url``; for a SQLite file, its parent directory is created."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(parsed, pool_pre_ping=True)
        _configure_postgresql(engine)
        return engine
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if memory:
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
            poolclass=StaticPool,
        )
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
    _configure_sqlite(engine, wal=not memory)
    return engine


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver; _on_begin emits it (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            if wal:
                _enable_wal(cursor)
                # In WAL mode NORMAL stays consistent and loses nothing when the process dies; only
                # an OS crash or power cut can roll back the last commits. FULL cost ~20 ms a turn.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("convguard_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _enable_wal(cursor: Any) -> None:
    """Switch a SQLite file to WAL (a persistent property of the file), waiting out other openers.

    Switching needs the file to itself, and SQLite answers "database is locked" at once, without
    its busy handler, when several connections open a fresh file together; so the switch is
    retried (bounded by :data:`BUSY_TIMEOUT_S`), and a file already in WAL is left alone.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET lock_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        finally:
            cursor.close()
        dbapi_connection.commit()  # SET opened a transaction; keep the setting for the session


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations (optionally bound to ``connection``)."""
    config = Config()
    location = resources.files("convguard.store") / "migrations"
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError("the packaged migrations have no head revision; the install is broken")
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Upgrade the database to the head revision, in one write transaction.

    A database already at the head is only read, so opening a store takes no write lock.
    """
    with engine.connect() as connection:
        current = current_revision(connection)
        connection.rollback()
    if current == head_revision():
        return
    with engine.connect() as connection:
        connection = connection.execution_options(**WRITE)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                # Held to the end of the transaction; DDL there is transactional, so whoever
                # waited finds the schema at the head and Alembic has nothing left to do.
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            command.upgrade(alembic_config(connection), "head")

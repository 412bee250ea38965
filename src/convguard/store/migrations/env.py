"""Alembic environment for the convguard store.

Run programmatically by :func:`convguard.store.engine.upgrade`, which passes an open connection
(already inside a write transaction) in ``config.attributes["connection"]``. Run from the
``alembic`` command line, it connects to ``sqlalchemy.url`` from the ini file instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from convguard.store.tables import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()

"""Openings: which conversation a chat that names none is, by its opening and the replies to it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from convguard.store.tables import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 64


def upgrade() -> None:
    op.create_table(
        "openings",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("account_id", sa.String(ID), nullable=False),
        sa.Column("opening", sa.String(64), nullable=False),
        sa.Column("reply", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=True),
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_openings"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_openings_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_openings_conversation_id_conversations",
        ),
        sa.UniqueConstraint("conversation_id", "reply", name="uq_openings_conversation_id_reply"),
    )
    op.create_index(
        "ix_openings_account_opening_reply",
        "openings",
        ["account_id", "opening", "reply", "pk"],
    )
    op.create_index(
        "ix_openings_account_idempotency_key", "openings", ["account_id", "idempotency_key"]
    )


def downgrade() -> None:
    op.drop_index("ix_openings_account_idempotency_key", table_name="openings")
    op.drop_index("ix_openings_account_opening_reply", table_name="openings")
    op.drop_table("openings")

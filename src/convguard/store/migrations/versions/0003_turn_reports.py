"""Turn reports: feedback on any assistant turn ("this shouldn't have been declined").

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from convguard.store.tables import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 64


def upgrade() -> None:
    op.create_table(
        "turn_reports",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("message_id", sa.String(ID), nullable=False),
        sa.Column("rating", sa.String(16), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_turn_reports"),
        sa.UniqueConstraint("id", name="uq_turn_reports_id"),
        sa.CheckConstraint(
            "rating IS NULL OR rating IN ('agree', 'disagree')", name="ck_turn_reports_rating"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_turn_reports_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_turn_reports_message_id_messages"
        ),
    )
    op.create_index("ix_turn_reports_message_id", "turn_reports", ["message_id"])
    op.create_index("ix_turn_reports_created_at", "turn_reports", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_turn_reports_created_at", table_name="turn_reports")
    op.drop_index("ix_turn_reports_message_id", table_name="turn_reports")
    op.drop_table("turn_reports")

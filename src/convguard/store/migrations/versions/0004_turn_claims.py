"""Turn claims: which worker is asking the model for a user turn's reply, across processes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from convguard.store.tables import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 64


def upgrade() -> None:
    op.create_table(
        "turn_claims",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("message_id", sa.String(ID), nullable=False),
        sa.Column("token", sa.String(ID), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_turn_claims"),
        sa.UniqueConstraint("message_id", name="uq_turn_claims_message_id"),
    )


def downgrade() -> None:
    op.drop_table("turn_claims")

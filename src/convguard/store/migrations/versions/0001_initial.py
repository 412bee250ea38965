"""The initial schema: accounts, conversations, messages, decisions, endings, feedback.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from convguard.store.tables import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 64


def _pk() -> sa.Column[int]:
    return sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(ID), nullable=False)


def upgrade() -> None:
    op.create_table(
        "accounts",
        _pk(),
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_accounts"),
        sa.UniqueConstraint("id", name="uq_accounts_id"),
        sa.UniqueConstraint("name", name="uq_accounts_name"),
    )
    op.create_table(
        "conversations",
        _pk(),
        _id(),
        sa.Column("account_id", sa.String(ID), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("root_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("message_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_conversations"),
        sa.UniqueConstraint("id", name="uq_conversations_id"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_conversations_account_id_accounts"
        ),
    )
    op.create_index(
        "ix_conversations_account_created", "conversations", ["account_id", "created_at"]
    )
    op.create_table(
        "messages",
        _pk(),
        _id(),
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("parent_id", sa.String(ID), nullable=True),
        sa.Column("sibling_index", sa.Integer(), nullable=False),
        sa.Column("child_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("assessment", sa.JSON(), nullable=True),
        sa.Column("ended", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_messages"),
        sa.UniqueConstraint("id", name="uq_messages_id"),
        sa.UniqueConstraint(
            "parent_id", "sibling_index", name="uq_messages_parent_id_sibling_index"
        ),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="ck_messages_role"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_messages_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["messages.id"], name="fk_messages_parent_id_messages"
        ),
    )
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"])
    op.create_table(
        "decisions",
        _pk(),
        _id(),
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("message_id", sa.String(ID), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("assessment", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("assess_ms", sa.Float(), nullable=False),
        sa.Column("decide_ms", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_decisions"),
        sa.UniqueConstraint("id", name="uq_decisions_id"),
        sa.CheckConstraint("kind IN ('turn', 'audit')", name="ck_decisions_kind"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_decisions_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_decisions_message_id_messages"
        ),
    )
    op.create_index("ix_decisions_conversation_id", "decisions", ["conversation_id"])
    op.create_index("ix_decisions_message_id", "decisions", ["message_id"])
    op.create_table(
        "endings",
        _pk(),
        _id(),
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("message_id", sa.String(ID), nullable=False),
        sa.Column("decision_id", sa.String(ID), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("initiator", sa.String(16), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_endings"),
        sa.UniqueConstraint("id", name="uq_endings_id"),
        sa.UniqueConstraint("message_id", name="uq_endings_message_id"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_endings_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_endings_message_id_messages"
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name="fk_endings_decision_id_decisions"
        ),
    )
    op.create_index("ix_endings_conversation_id", "endings", ["conversation_id"])
    op.create_index("ix_endings_created_at", "endings", ["created_at"])
    op.create_table(
        "feedback",
        _pk(),
        _id(),
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("ending_id", sa.String(ID), nullable=False),
        sa.Column("rating", sa.String(16), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_feedback"),
        sa.UniqueConstraint("id", name="uq_feedback_id"),
        sa.CheckConstraint(
            "rating IS NULL OR rating IN ('agree', 'disagree')", name="ck_feedback_rating"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_feedback_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(
            ["ending_id"], ["endings.id"], name="fk_feedback_ending_id_endings"
        ),
    )
    op.create_index("ix_feedback_ending_id", "feedback", ["ending_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_feedback_ending_id", "feedback"),
        ("ix_endings_created_at", "endings"),
        ("ix_endings_conversation_id", "endings"),
        ("ix_decisions_message_id", "decisions"),
        ("ix_decisions_conversation_id", "decisions"),
        ("ix_messages_conversation_id", "messages"),
        ("ix_conversations_account_created", "conversations"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("feedback", "endings", "decisions", "messages", "conversations", "accounts"):
        op.drop_table(table)

"""The schema: accounts and their API keys, conversations, messages (the tree), decisions, endings,
feedback, and the claims of workers answering a turn.

Portable SQLAlchemy Core (SQLite and PostgreSQL); the Alembic migrations create exactly these
tables, and a test checks that a migrated database matches this metadata.

Invariants the schema carries:
- every row has an integer ``pk`` (insertion order, used to order messages and decisions) and a
  public string ``id``;
- a message's ``sibling_index`` is its position among its parent's children, so
  ``UNIQUE(parent_id, sibling_index)`` backs the compare-and-set on ``child_count``: two writers
  that both claim the same leaf cannot both commit (roots take their index from the
  conversation's ``root_count`` instead);
- ``ended`` is set only on a message with ``child_count = 0``, and appends check it in the same
  transaction, so an ended leaf never gets a child;
- one ending per ended message (``UNIQUE(message_id)`` on endings);
- an API key is stored only as the SHA-256 of the key (``key_hash``, unique), never in plaintext;
- at most one claim per user turn (``UNIQUE(message_id)`` on turn_claims): the worker that holds
  it is the one asking the model for that turn's reply;
- an opening is recorded once per conversation, and each reply to it once
  (``UNIQUE(conversation_id, reply)`` on openings).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "ID_LENGTH",
    "UTCDateTime",
    "accounts",
    "api_keys",
    "conversations",
    "decisions",
    "endings",
    "feedback",
    "messages",
    "metadata",
    "openings",
    "turn_claims",
    "turn_reports",
]

ID_LENGTH = 64

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every backend.

    SQLite keeps no offset, so values are stored as naive UTC there and given their zone back on
    the way out; naive datetimes passed in are taken to be UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pk() -> sa.Column[int]:
    # SQLite only autoincrements an INTEGER PRIMARY KEY; elsewhere use a 64-bit key.
    return sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(ID_LENGTH), nullable=False, unique=True)


accounts = sa.Table(
    "accounts",
    metadata,
    _pk(),
    _id(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _pk(),
    _id(),
    sa.Column(
        "account_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("accounts.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("label", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

conversations = sa.Table(
    "conversations",
    metadata,
    _pk(),
    _id(),
    sa.Column("account_id", sa.String(ID_LENGTH), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("title", sa.Text(), nullable=True),
    sa.Column("locale", sa.String(35), nullable=True),
    sa.Column("root_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("message_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_conversations_account_created", "account_id", "created_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    _pk(),
    _id(),
    sa.Column(
        "conversation_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("conversations.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("parent_id", sa.String(ID_LENGTH), sa.ForeignKey("messages.id"), nullable=True),
    sa.Column("sibling_index", sa.Integer(), nullable=False),
    sa.Column("child_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text(), nullable=False),
    sa.Column("assessment", sa.JSON(), nullable=True),
    sa.Column("ended", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("parent_id", "sibling_index"),
    sa.CheckConstraint("role IN ('user', 'assistant')", name="role"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    _pk(),
    _id(),
    sa.Column(
        "conversation_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("conversations.id"),
        nullable=False,
        index=True,
    ),
    sa.Column(
        "message_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("messages.id"),
        nullable=False,
        index=True,
    ),
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
    sa.CheckConstraint("kind IN ('turn', 'audit')", name="kind"),
)

endings = sa.Table(
    "endings",
    metadata,
    _pk(),
    _id(),
    sa.Column(
        "conversation_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("conversations.id"),
        nullable=False,
        index=True,
    ),
    sa.Column(
        "message_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("messages.id"),
        nullable=False,
        unique=True,
    ),
    sa.Column("decision_id", sa.String(ID_LENGTH), sa.ForeignKey("decisions.id"), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("initiator", sa.String(16), nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
)

feedback = sa.Table(
    "feedback",
    metadata,
    _pk(),
    _id(),
    sa.Column(
        "conversation_id", sa.String(ID_LENGTH), sa.ForeignKey("conversations.id"), nullable=False
    ),
    sa.Column(
        "ending_id", sa.String(ID_LENGTH), sa.ForeignKey("endings.id"), nullable=False, index=True
    ),
    sa.Column("rating", sa.String(16), nullable=True),
    sa.Column("comment", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("rating IS NULL OR rating IN ('agree', 'disagree')", name="rating"),
)

#: A report that one assistant turn was wrong ("this shouldn't have been declined"): feedback on a
#: turn rather than on an ending, read beside that turn's decision in the review dashboard.
turn_reports = sa.Table(
    "turn_reports",
    metadata,
    _pk(),
    _id(),
    sa.Column(
        "conversation_id", sa.String(ID_LENGTH), sa.ForeignKey("conversations.id"), nullable=False
    ),
    sa.Column(
        "message_id", sa.String(ID_LENGTH), sa.ForeignKey("messages.id"), nullable=False, index=True
    ),
    sa.Column("rating", sa.String(16), nullable=True),
    sa.Column("comment", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    sa.CheckConstraint("rating IS NULL OR rating IN ('agree', 'disagree')", name="rating"),
)

#: Which worker (its random ``token``) is asking the model for a user turn's reply: one row per
#: turn while the call runs, deleted when it ends. ``claimed_at`` is when it was taken or last
#: renewed (the holder renews it while the model answers); a claim not renewed within the
#: caller's time to live (a worker killed mid-call) may be taken over, and is deleted by a
#: later claim. No foreign key: a claim is a lock, not data.
turn_claims = sa.Table(
    "turn_claims",
    metadata,
    _pk(),
    sa.Column("message_id", sa.String(ID_LENGTH), nullable=False, unique=True),
    sa.Column("token", sa.String(ID_LENGTH), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=False),
)

#: Which conversation a chat that names none is (the rule: :mod:`convguard.server.openings`): a
#: row when a conversation begins with an opening (``reply`` empty; with the Idempotency-Key the
#: request came with, if any), and one for each reply given to that opening, so that a longer
#: history finds its conversation by its first two messages. ``opening``, ``reply`` and
#: ``idempotency_key`` are SHA-256 hex digests of the texts.
openings = sa.Table(
    "openings",
    metadata,
    _pk(),
    sa.Column("account_id", sa.String(ID_LENGTH), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("opening", sa.String(64), nullable=False),
    sa.Column("reply", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=True),
    sa.Column(
        "conversation_id", sa.String(ID_LENGTH), sa.ForeignKey("conversations.id"), nullable=False
    ),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("conversation_id", "reply"),
    sa.Index("ix_openings_account_opening_reply", "account_id", "opening", "reply", "pk"),
    sa.Index("ix_openings_account_idempotency_key", "account_id", "idempotency_key"),
)

"""The store: conversations as message trees, with every decision, ending and feedback kept.

SQLAlchemy 2 over SQLite (WAL) by default or PostgreSQL (psycopg 3), the same code for both;
the schema is managed by the Alembic migrations packaged here and upgraded on open::

    store = open_store("sqlite:////var/lib/convguard/convguard.db")
    user, reply = store.append_turn(conversation.id, leaf_id=None, user=..., decision=...,
                                    reply=..., now=now)

See :mod:`convguard.store.repository` for the invariants.
"""

from convguard.store.engine import current_revision, head_revision
from convguard.store.reads import leaves_of, path_of
from convguard.store.records import (
    AccountRecord,
    ApiKeyRecord,
    ConversationRecord,
    DecisionRecord,
    EndingRecord,
    FeedbackRecord,
    MessageRecord,
    NewMessage,
    OpeningRecord,
    ReviewItem,
    TurnDecision,
)
from convguard.store.repository import Store, open_store

__all__ = [
    "AccountRecord",
    "ApiKeyRecord",
    "ConversationRecord",
    "DecisionRecord",
    "EndingRecord",
    "FeedbackRecord",
    "MessageRecord",
    "NewMessage",
    "OpeningRecord",
    "ReviewItem",
    "Store",
    "TurnDecision",
    "current_revision",
    "head_revision",
    "leaves_of",
    "open_store",
    "path_of",
]

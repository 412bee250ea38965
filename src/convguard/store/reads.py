"""Reading the message tree back: messages with their attached decisions, branches, review items.

A message's ``decision`` is the latest ``turn`` decision row on it (audit rows never attach);
messages and decisions come back in the order they were stored (their integer keys).
Functions here run inside a transaction the caller opened.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convguard.conversation import Message, branch_path
from convguard.errors import NotFound
from convguard.store import rows
from convguard.store import tables as t
from convguard.store.records import FeedbackRecord, MessageRecord, ReviewItem

__all__ = [
    "children_of",
    "ended_by",
    "leaves_of",
    "message_of",
    "messages_of",
    "path_of",
    "review_items",
]


# A message's and a decision's JSON come back as their text, which :mod:`rows` decodes once per
# process (the same stored text is read on every later turn of the conversation).
_MESSAGE_COLUMNS = (
    *(c for c in t.messages.c if c.name != "assessment"),
    sa.cast(t.messages.c.assessment, sa.Text).label("assessment"),
)


def _decisions_where(decided: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The ``turn`` decisions ``decided`` picks, oldest first, as (message id, decision text)."""
    return (
        sa.select(t.decisions.c.message_id, sa.cast(t.decisions.c.decision, sa.Text))
        .where(decided, t.decisions.c.kind == "turn")
        .order_by(t.decisions.c.pk)
    )


def _with_decisions(
    conn: Connection,
    found: sa.Select[Any],
    decided: sa.Select[Any],
    params: dict[str, Any] | None = None,
) -> list[MessageRecord]:
    """The messages ``found`` selects, each with the latest of the decisions ``decided``
    selects (:func:`_decisions_where`) attached."""
    attached: dict[str, str] = {}
    for message_id, data in conn.execute(decided, params):
        attached[message_id] = data  # the latest wins
    return [rows.message_record(row, attached.get(row.id)) for row in conn.execute(found, params)]


# Read on every turn, so built once (SQLAlchemy reuses their compiled form and cache key).
_MESSAGES_OF = (
    sa.select(*_MESSAGE_COLUMNS)
    .where(t.messages.c.conversation_id == sa.bindparam("b_conversation"))
    .order_by(t.messages.c.pk)
)
_DECISIONS_OF = _decisions_where(t.decisions.c.conversation_id == sa.bindparam("b_conversation"))


def messages_of(conn: Connection, conversation_id: str) -> list[MessageRecord]:
    """Every message of the conversation with its attached decision, in stored order."""
    return _with_decisions(conn, _MESSAGES_OF, _DECISIONS_OF, {"b_conversation": conversation_id})


def message_of(conn: Connection, conversation_id: str, message_id: str) -> MessageRecord:
    """One message of the conversation with its attached decision, or :class:`NotFound`."""
    found = _with_decisions(
        conn,
        sa.select(*_MESSAGE_COLUMNS).where(
            t.messages.c.id == message_id, t.messages.c.conversation_id == conversation_id
        ),
        _decisions_where(t.decisions.c.message_id == message_id),
    )
    if not found:
        raise NotFound(f"message {message_id!r} is not in conversation {conversation_id!r}")
    return found[0]


def children_of(
    conn: Connection, conversation_id: str, parent_id: str | None
) -> list[MessageRecord]:
    """The replies and edits directly below ``parent_id`` (None: the roots), in sibling order."""
    if parent_id is not None:
        message_of(conn, conversation_id, parent_id)  # NotFound for a foreign or missing parent
    below = (
        t.messages.c.parent_id.is_(None)
        if parent_id is None
        else t.messages.c.parent_id == parent_id
    )
    found = sa.select(*_MESSAGE_COLUMNS).where(
        t.messages.c.conversation_id == conversation_id, below
    )
    return _with_decisions(
        conn,
        found.order_by(t.messages.c.sibling_index, t.messages.c.pk),
        _decisions_where(t.decisions.c.message_id.in_(found.with_only_columns(t.messages.c.id))),
    )


def path_of(records: list[MessageRecord], leaf_id: str) -> list[MessageRecord]:
    """The records from the root to ``leaf_id`` (the core's :func:`branch_path`)."""
    by_id = {r.id: r for r in records}
    tree = {r.id: Message(r.id, r.parent_id, r.role, r.content) for r in records}
    return [by_id[m.id] for m in branch_path(tree, leaf_id)]


def leaves_of(records: list[MessageRecord]) -> list[MessageRecord]:
    """The records with no reply or edit below them, in the order they were stored."""
    parents = {r.parent_id for r in records}
    return [r for r in records if r.id not in parents]


def ended_by(conn: Connection, message_id: str | None) -> bool:
    """Whether the decision attached to ``message_id`` ended its branch."""
    if message_id is None:
        return False
    action = conn.execute(
        sa.select(t.decisions.c.action)
        .where(t.decisions.c.message_id == message_id, t.decisions.c.kind == "turn")
        .order_by(t.decisions.c.pk.desc())
        .limit(1)
    ).scalar()
    return action == "end"


def review_items(conn: Connection, *, limit: int, offset: int) -> list[ReviewItem]:
    """Endings, newest first, each with its conversation, branch and feedback."""
    found = [
        rows.ending_record(row)
        for row in conn.execute(
            sa.select(t.endings)
            .order_by(t.endings.c.created_at.desc(), t.endings.c.pk.desc())
            .limit(limit)
            .offset(offset)
        )
    ]
    ids = {e.conversation_id for e in found}
    owners = {
        row.id: rows.conversation_record(row)
        for row in conn.execute(sa.select(t.conversations).where(t.conversations.c.id.in_(ids)))
    }
    trees = {cid: messages_of(conn, cid) for cid in ids}
    notes: dict[str, list[FeedbackRecord]] = {e.id: [] for e in found}
    for row in conn.execute(
        sa.select(t.feedback)
        .where(t.feedback.c.ending_id.in_(list(notes)))
        .order_by(t.feedback.c.pk)
    ):
        notes[row.ending_id].append(rows.feedback_record(row))
    return [
        ReviewItem(
            conversation=owners[e.conversation_id],
            ending=e,
            path=tuple(path_of(trees[e.conversation_id], e.leaf_id)),
            feedback=tuple(notes[e.id]),
        )
        for e in found
    ]

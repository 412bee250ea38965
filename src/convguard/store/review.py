"""What the review dashboard reads and the one thing it adds: reports on single assistant turns.

- :func:`add_turn_report` stores a report that one assistant turn was wrong ("this shouldn't have
  been declined"); the turn must be an assistant message of that conversation.
- :func:`turn_reports` lists reports, newest first, each with the turn, the user message it
  answered and that message's decision (the decision the report concerns).
- :func:`decision_rows` and :func:`assistant_turns` are the raw material of the dashboard's
  statistics over a time window; :func:`conversation_count` and :func:`ending_count` its
  denominators and numerators.
- :func:`any_conversation` reads a conversation whatever its account (admin export).

Reads only, apart from :func:`add_turn_report`; every function opens its own transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from convguard.errors import InvalidInput, NotFound
from convguard.store import rows, turns
from convguard.store import tables as t
from convguard.store.reads import message_of
from convguard.store.records import ConversationRecord, FeedbackRecord, MessageRecord, Rating
from convguard.store.repository import Store

__all__ = [
    "DecisionRow",
    "ReportItem",
    "TurnReport",
    "add_turn_report",
    "any_conversation",
    "assistant_turns",
    "conversation_count",
    "decision_rows",
    "ending_count",
    "ending_feedback",
    "turn_reports",
]


@dataclass(frozen=True)
class TurnReport:
    id: str
    conversation_id: str
    message_id: str
    rating: Rating | None
    comment: str
    created_at: datetime


@dataclass(frozen=True)
class ReportItem:
    """A report with the turn it is about and the user message (and decision) that turn answered."""

    report: TurnReport
    turn: MessageRecord
    answered: MessageRecord | None


@dataclass(frozen=True)
class DecisionRow:
    created_at: datetime
    conversation_id: str
    action: str
    categories: tuple[str, ...]
    flags: tuple[str, ...]


def add_turn_report(
    store: Store,
    conversation_id: str,
    message_id: str,
    *,
    rating: Rating | None,
    comment: str,
    now: datetime,
) -> TurnReport:
    """Store a report on the assistant turn ``message_id`` of ``conversation_id``."""
    comment = rows.check_text("feedback comment", comment)
    if rating is None and not comment.strip():
        raise InvalidInput("feedback needs a rating or a comment; both were empty")
    with store.engine.begin() as conn:
        message = message_of(conn, conversation_id, message_id)
        if message.role != "assistant":
            raise InvalidInput(
                f"message {message_id!r} is a user message; a report is about an assistant "
                "turn (give the id of the reply you think was wrong)"
            )
        report = TurnReport(
            id=rows.new_id(),
            conversation_id=conversation_id,
            message_id=message_id,
            rating=rating,
            comment=comment,
            created_at=turns.utc(now),
        )
        conn.execute(sa.insert(t.turn_reports).values(**vars(report)))
        return report


def turn_reports(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    conversation_id: str | None = None,
    limit: int = 100,
) -> list[ReportItem]:
    query = sa.select(t.turn_reports).where(*_window(t.turn_reports.c.created_at, since, until))
    if conversation_id is not None:
        query = query.where(t.turn_reports.c.conversation_id == conversation_id)
    with store.engine.connect() as conn:
        found = [
            TurnReport(
                id=row.id,
                conversation_id=row.conversation_id,
                message_id=row.message_id,
                rating=cast(Rating | None, row.rating),
                comment=row.comment,
                created_at=row.created_at,
            )
            for row in conn.execute(query.order_by(t.turn_reports.c.pk.desc()).limit(limit))
        ]
        items = []
        for report in found:
            turn = message_of(conn, report.conversation_id, report.message_id)
            answered = (
                message_of(conn, report.conversation_id, turn.parent_id) if turn.parent_id else None
            )
            items.append(ReportItem(report, turn, answered))
        return items


def decision_rows(
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> list[DecisionRow]:
    """Every turn decision in the window, oldest first."""
    d = t.decisions
    query = (
        sa.select(d.c.created_at, d.c.conversation_id, d.c.action, d.c.categories, d.c.flags)
        .where(d.c.kind == "turn", *_window(d.c.created_at, since, until))
        .order_by(d.c.pk)
    )
    with store.engine.connect() as conn:
        return [
            DecisionRow(
                row.created_at,
                row.conversation_id,
                row.action,
                tuple(_listed(row.categories)),
                tuple(_listed(row.flags)),
            )
            for row in conn.execute(query)
        ]


def assistant_turns(
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> list[tuple[datetime, str]]:
    """(time, text) of every assistant message in the window, oldest first."""
    m = t.messages
    query = (
        sa.select(m.c.created_at, m.c.content)
        .where(m.c.role == "assistant", *_window(m.c.created_at, since, until))
        .order_by(m.c.pk)
    )
    with store.engine.connect() as conn:
        return [(row.created_at, row.content) for row in conn.execute(query)]


def conversation_count(
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> int:
    """Conversations with at least one decided turn in the window."""
    d = t.decisions
    query = sa.select(sa.func.count(sa.distinct(d.c.conversation_id))).where(
        d.c.kind == "turn", *_window(d.c.created_at, since, until)
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def ending_count(
    store: Store, *, since: datetime | None = None, until: datetime | None = None
) -> int:
    e = t.endings
    query = sa.select(sa.func.count()).select_from(e).where(*_window(e.c.created_at, since, until))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def ending_feedback(store: Store, conversation_id: str) -> list[FeedbackRecord]:
    """The feedback on the conversation's endings, oldest first."""
    query = (
        sa.select(t.feedback)
        .where(t.feedback.c.conversation_id == conversation_id)
        .order_by(t.feedback.c.pk)
    )
    with store.engine.connect() as conn:
        return [rows.feedback_record(row) for row in conn.execute(query)]


def any_conversation(store: Store, conversation_id: str) -> ConversationRecord:
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(t.conversations).where(t.conversations.c.id == conversation_id)
        ).first()
    if row is None:
        raise NotFound(f"conversation {conversation_id!r} does not exist")
    return rows.conversation_record(row)


def _window(
    column: sa.ColumnElement[Any], since: datetime | None, until: datetime | None
) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if since is not None:
        where.append(column >= turns.utc(since))
    if until is not None:
        where.append(column < turns.utc(until))
    return where


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value)
    return [str(x) for x in value or ()]

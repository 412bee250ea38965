"""Openings: which conversation a chat that names none is, found by its first messages.

A conversation begun by a chat's opening (its first user turn) is recorded with the opening's
SHA-256 (and the request's Idempotency-Key's, if it sent one), and each reply given to that
opening is recorded beside it, so that a later, longer history (the opening, that reply, more)
finds its conversation through one index, however many chats opened the same way. The rule that
uses them is :mod:`convguard.server.openings`.

Invariants:
- texts and keys are kept only as SHA-256 hex digests;
- an opening is recorded once per conversation (``reply`` empty) and each reply to it once;
- a reply is recorded only for a conversation whose opening was;
- "the" conversation of an opening is the newest one recorded (the highest ``pk``);
- an opening was answered when its first reply was recorded (that row's ``created_at``).

Functions here run inside a transaction the caller opened.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convguard.store import tables as t
from convguard.store.records import OpeningRecord

__all__ = ["digest", "find_opening", "insert_opening", "insert_reply"]

_o = t.openings.c


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def insert_opening(
    conn: Connection,
    insert: Any,
    *,
    account_id: str,
    conversation_id: str,
    opening: str,
    idempotency_key: str | None,
    now: datetime,
) -> None:
    """Record that ``conversation_id`` began with ``opening``; ``insert`` is the dialect's
    INSERT (recording it again changes nothing)."""
    conn.execute(
        insert(t.openings)
        .values(
            account_id=account_id,
            opening=digest(opening),
            reply="",
            idempotency_key=None if idempotency_key is None else digest(idempotency_key),
            conversation_id=conversation_id,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[_o.conversation_id, _o.reply])
    )


def insert_reply(
    conn: Connection, insert: Any, *, conversation_id: str, reply: str, now: datetime
) -> None:
    """Record ``reply`` as a reply to the opening ``conversation_id`` began with; nothing for a
    conversation that began otherwise, or a reply recorded before."""
    begun = sa.select(
        _o.account_id,
        _o.opening,
        sa.literal(digest(reply)).label("reply"),
        _o.conversation_id,
        sa.literal(now, t.UTCDateTime()).label("created_at"),
    ).where(_o.conversation_id == conversation_id, _o.reply == "")
    conn.execute(
        insert(t.openings)
        .from_select(["account_id", "opening", "reply", "conversation_id", "created_at"], begun)
        .on_conflict_do_nothing(index_elements=[_o.conversation_id, _o.reply])
    )


def find_opening(
    conn: Connection,
    *,
    account_id: str,
    opening: str,
    reply: str | None,
    idempotency_key: str | None,
) -> OpeningRecord | None:
    """The newest of the account's conversations begun with ``opening``: of those whose opening
    was answered with ``reply``, or sent with ``idempotency_key``, where one of them is given."""
    answers = t.openings.alias("answers")
    answered_at = (
        sa.select(sa.func.min(answers.c.created_at))
        .where(answers.c.conversation_id == _o.conversation_id, answers.c.reply != "")
        .scalar_subquery()
    )
    if idempotency_key is not None:  # through the key's own index: a key names one request
        where = [_o.idempotency_key == digest(idempotency_key), _o.reply == ""]
    else:
        answer = "" if reply is None else digest(reply)
        where = [_o.opening == digest(opening), _o.reply == answer]
    row = conn.execute(
        sa.select(_o.conversation_id, _o.created_at, _o.opening, answered_at.label("answered_at"))
        .where(_o.account_id == account_id, *where)
        .order_by(_o.pk.desc())
        .limit(1)
    ).first()
    if row is None or row.opening != digest(opening):
        return None
    return OpeningRecord(row.conversation_id, row.created_at, row.answered_at)

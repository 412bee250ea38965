"""Writing turns into the message tree: append, reply, edit, retry and end, each in one
transaction.

Every function here runs inside a write transaction the caller opened, and either all of a turn
lands (user message, its decision row, the reply, the ending) or none of it does: a failure, an
error raised here or a killed process rolls the whole transaction back.

The compare-and-set that keeps two turns off one leaf:

- every write first updates its conversation's row (``updated_at``); on PostgreSQL that
  ``UPDATE`` takes the row's lock until commit, which queues the writers of one conversation
  (under READ COMMITTED each later statement then sees what the writer before committed), and on
  SQLite ``BEGIN IMMEDIATE`` has already queued all writers;
- an append (and a late reply, :func:`write_reply`) claims its leaf with ``UPDATE messages SET
  child_count = 1 WHERE id = :leaf AND child_count = 0 AND NOT ended`` (the first message of a
  conversation claims ``root_count`` the same way); no row updated means another turn got there
  first: :class:`LeafConflict`;
- an edit or a retry adds a sibling: it increments the parent's ``child_count`` and takes the
  new value as its ``sibling_index``, which ``UNIQUE(parent_id, sibling_index)`` backs; a parent
  takes at most ``max_branches`` children (:class:`LeafConflict` past it).

Roles alternate along a branch: a user message goes at the root or below an assistant reply, a
reply below a user message. So a user message still waiting for its reply is never a leaf that
another user turn can chain under. An ended message is always a leaf and is never claimed, so
nothing is ever stored below it. A message id given by the caller that is already stored raises
:class:`MessageExists` (with content-hashed ids: the same turn, stored by a concurrent request).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from convguard.assess.types import Assessment
from convguard.conversation import End, decision_from_dict, decision_to_dict
from convguard.errors import (
    ConversationEnded,
    InvalidInput,
    LeafConflict,
    MessageExists,
    NotFound,
)
from convguard.store.reads import ended_by
from convguard.store.records import (
    DecisionKind,
    MessageRecord,
    MessageRole,
    NewMessage,
    TurnDecision,
)
from convguard.store.rows import check_id, check_text, new_id
from convguard.store.tables import conversations, decisions, endings, messages

__all__ = [
    "Slot",
    "claim_child",
    "claim_leaf",
    "claim_sibling",
    "end_leaf",
    "insert_decision",
    "insert_message",
    "message_row",
    "touch_conversation",
    "utc",
    "write_branch",
    "write_reply",
    "write_retry",
    "write_turn",
]


@dataclass(frozen=True)
class Slot:
    """Where a new message goes: under ``parent_id`` (None: a root), at ``sibling_index``."""

    parent_id: str | None
    sibling_index: int


# The statements of every turn, built once: SQLAlchemy then reuses their compiled form and cache
# key, where a statement built per call costs more Python than the database spends running it.
_TOUCH = (
    sa.update(conversations)
    .where(conversations.c.id == sa.bindparam("b_conversation"))
    .values(
        updated_at=sa.bindparam("b_now", type_=conversations.c.updated_at.type),
        message_count=conversations.c.message_count + sa.bindparam("b_added", type_=sa.Integer),
    )
)
_MESSAGE_ROW = sa.select(messages).where(
    messages.c.id == sa.bindparam("b_message"),
    messages.c.conversation_id == sa.bindparam("b_conversation"),
)
_CLAIM_ROOT = (
    sa.update(conversations)
    .where(conversations.c.id == sa.bindparam("b_conversation"), conversations.c.root_count == 0)
    .values(root_count=1)
)
_CLAIM_LEAF = (
    sa.update(messages)
    .where(
        messages.c.id == sa.bindparam("b_message"),
        messages.c.child_count == 0,
        messages.c.ended == sa.false(),
    )
    .values(child_count=1)
)
_ID_TAKEN = sa.select(messages.c.pk).where(messages.c.id == sa.bindparam("b_message"))
_HAS_CHILD = (
    sa.update(messages).where(messages.c.id == sa.bindparam("b_message")).values(child_count=1)
)


def utc(now: datetime) -> datetime:
    """``now`` as an aware UTC datetime (naive values are taken to be UTC)."""
    if not isinstance(now, datetime):
        raise InvalidInput(f"now must be a datetime; got {now!r}")
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def touch_conversation(
    conn: Connection, conversation_id: str, now: datetime, *, added: int = 0
) -> None:
    """Open a write on ``conversation_id`` (and queue other writers of it on PostgreSQL).

    ``added``: how many messages this transaction will insert (the conversation's count).
    Whatever fails later in the transaction rolls the count back with the messages.
    """
    result = conn.execute(
        _TOUCH, {"b_conversation": conversation_id, "b_now": now, "b_added": added}
    )
    if result.rowcount == 0:
        raise NotFound(f"conversation {conversation_id!r} does not exist")


def message_row(conn: Connection, conversation_id: str, message_id: str) -> Any:
    row = conn.execute(
        _MESSAGE_ROW, {"b_message": message_id, "b_conversation": conversation_id}
    ).first()
    if row is None:
        raise NotFound(f"message {message_id!r} is not in conversation {conversation_id!r}")
    return row


#: The role a message's parent must have (None: the message may be a root).
_PARENT_ROLE: dict[str, str] = {"user": "assistant", "assistant": "user"}


def _check_parent(row: Any, role: MessageRole) -> None:
    if row.role != _PARENT_ROLE[role]:
        if role == "user":
            raise LeafConflict(
                f"message {row.id!r} is a user message still waiting for its reply; a new user "
                "message goes below a reply. Retry that message, or send again once it has one"
            )
        raise InvalidInput(
            f"message {row.id!r} is an {row.role} message; a reply goes below a user message "
            "(retry an assistant message instead)"
        )


def claim_leaf(
    conn: Connection,
    conversation_id: str,
    leaf_id: str | None,
    *,
    row: Any = None,
    role: MessageRole = "user",
) -> Slot:
    """Claim ``leaf_id`` (None: the empty conversation) for one new ``role`` child, or raise.

    ``row``: the leaf's row if this transaction has just read it.
    """
    if leaf_id is None:
        claimed = conn.execute(_CLAIM_ROOT, {"b_conversation": conversation_id}).rowcount
        if claimed == 0:
            raise LeafConflict(
                f"conversation {conversation_id!r} already has messages; append to one of its "
                "leaves (pass leaf_id), or reload it and send again"
            )
        return Slot(None, 0)
    if row is None:
        row = message_row(conn, conversation_id, leaf_id)
    if row.ended:
        raise ConversationEnded(conversation_id, leaf_id)
    if row.child_count == 0 or role == "assistant":  # else "no longer a leaf" says more
        _check_parent(row, role)
    claimed = conn.execute(_CLAIM_LEAF, {"b_message": leaf_id}).rowcount
    if claimed == 0:
        raise LeafConflict(
            f"message {leaf_id!r} is no longer a leaf of conversation {conversation_id!r}: "
            "another turn landed on it first; reload the conversation and send again"
        )
    return Slot(leaf_id, 0)


def claim_sibling(
    conn: Connection,
    conversation_id: str,
    parent_id: str | None,
    *,
    max_branches: int | None = None,
) -> Slot:
    """Reserve the next sibling position under ``parent_id`` (None: a new root)."""
    if parent_id is None:
        table, key = conversations, conversations.c.id == conversation_id
        counter = conversations.c.root_count
    else:
        table, key, counter = messages, messages.c.id == parent_id, messages.c.child_count
    conn.execute(sa.update(table).where(key).values({counter.name: counter + 1}))
    count = int(conn.execute(sa.select(counter).where(key)).scalar_one())
    if max_branches is not None and count > max_branches:
        where = "the conversation's first message" if parent_id is None else repr(parent_id)
        raise LeafConflict(
            f"{where} already has {count - 1} branches; the limit is {max_branches} "
            "(the policy's max_branches). Continue on one of the existing branches"
        )
    return Slot(parent_id, count - 1)


def claim_child(
    conn: Connection,
    conversation_id: str,
    parent_id: str | None,
    *,
    role: MessageRole,
    max_branches: int | None = None,
) -> Slot:
    """A slot for a new ``role`` message below ``parent_id``: the first child (the parent was a
    leaf) or a new sibling of the children it has (an edit or a regenerated reply)."""
    if parent_id is None:
        if role != "user":
            raise InvalidInput("a conversation starts with a user message, not an assistant one")
        if conn.execute(_CLAIM_ROOT, {"b_conversation": conversation_id}).rowcount:
            return Slot(None, 0)
        return claim_sibling(conn, conversation_id, None, max_branches=max_branches)
    row = message_row(conn, conversation_id, parent_id)
    if row.ended:
        raise ConversationEnded(conversation_id, parent_id)
    _check_parent(row, role)
    if conn.execute(_CLAIM_LEAF, {"b_message": parent_id}).rowcount:
        return Slot(parent_id, 0)
    if role == "assistant" and ended_by(conn, parent_id):
        raise ConversationEnded(conversation_id, parent_id)
    return claim_sibling(conn, conversation_id, parent_id, max_branches=max_branches)


def insert_message(
    conn: Connection,
    *,
    conversation_id: str,
    slot: Slot,
    message: NewMessage,
    role: MessageRole,
    assessment: Assessment | None,
    ended: bool,
    now: datetime,
) -> MessageRecord:
    if message.role != role:
        raise InvalidInput(f"expected a {role} message here; got role {message.role!r}")
    message_id = check_id("message id", message.id)
    content = check_text(f"{role} message content", message.content)
    given = message.id is not None  # a new random id cannot be taken
    if given and conn.execute(_ID_TAKEN, {"b_message": message_id}).first():
        raise MessageExists(message_id)
    conn.execute(
        messages.insert(),
        {
            "id": message_id,
            "conversation_id": conversation_id,
            "parent_id": slot.parent_id,
            "sibling_index": slot.sibling_index,
            "role": role,
            "content": content,
            "assessment": None if assessment is None else assessment.to_dict(),
            "ended": ended,
            "created_at": now,
        },
    )
    return MessageRecord(
        id=message_id,
        conversation_id=conversation_id,
        parent_id=slot.parent_id,
        role=role,
        content=content,
        created_at=now,
        ended=ended,
        # as it will read back (to_dict rounds scores and keeps no ``extra``)
        assessment=None if assessment is None else Assessment.from_dict(assessment.to_dict()),
        decision=None,
    )


def insert_decision(
    conn: Connection,
    *,
    conversation_id: str,
    message_id: str,
    kind: DecisionKind,
    turn: TurnDecision,
    now: datetime,
) -> str:
    decision_id = new_id()
    data = decision_to_dict(turn.decision)
    decision_from_dict(data)  # what cannot be read back must not be written
    conn.execute(
        decisions.insert(),
        {
            "id": decision_id,
            "conversation_id": conversation_id,
            "message_id": message_id,
            "kind": kind,
            "action": turn.decision.action,
            "reason": turn.decision.reason,
            "categories": list(turn.decision.categories),
            "flags": list(turn.decision.flags),
            "decision": data,
            "assessment": turn.assessment.to_dict(),
            "policy_version": check_text("policy version", turn.policy_version),
            "assess_ms": float(turn.assess_ms),
            "decide_ms": float(turn.decide_ms),
            "created_at": now,
        },
    )
    return decision_id


def _insert_ending(
    conn: Connection,
    *,
    conversation_id: str,
    leaf_id: str,
    decision_id: str,
    turn: TurnDecision,
    now: datetime,
) -> str:
    if not isinstance(turn.decision, End):
        raise InvalidInput(f"an ending needs an End decision; got {turn.decision.action!r}")
    ending_id = new_id()
    conn.execute(
        sa.insert(endings).values(
            id=ending_id,
            conversation_id=conversation_id,
            message_id=leaf_id,
            decision_id=decision_id,
            reason=turn.decision.reason,
            initiator=turn.decision.initiator,
            policy_version=turn.policy_version,
            created_at=now,
        )
    )
    return ending_id


def write_turn(
    conn: Connection,
    *,
    conversation_id: str,
    slot: Slot,
    user: NewMessage,
    turn: TurnDecision,
    reply: NewMessage | None,
    now: datetime,
) -> tuple[MessageRecord, MessageRecord | None]:
    """Store a user message at ``slot``, its decision, and the reply under it."""
    ends = isinstance(turn.decision, End)
    user_record = insert_message(
        conn,
        conversation_id=conversation_id,
        slot=slot,
        message=user,
        role="user",
        assessment=user.assessment or turn.assessment,
        ended=ends and reply is None,
        now=now,
    )
    decision_id = insert_decision(
        conn,
        conversation_id=conversation_id,
        message_id=user_record.id,
        kind="turn",
        turn=turn,
        now=now,
    )
    user_record = replace(user_record, decision=turn.decision)
    reply_record = None
    if reply is not None:
        conn.execute(_HAS_CHILD, {"b_message": user_record.id})
        reply_record = insert_message(
            conn,
            conversation_id=conversation_id,
            slot=Slot(user_record.id, 0),
            message=reply,
            role="assistant",
            assessment=reply.assessment,
            ended=ends,
            now=now,
        )
    if ends:
        leaf = reply_record or user_record
        _insert_ending(
            conn,
            conversation_id=conversation_id,
            leaf_id=leaf.id,
            decision_id=decision_id,
            turn=turn,
            now=now,
        )
    return user_record, reply_record


def write_reply(
    conn: Connection,
    *,
    conversation_id: str,
    user_message_id: str,
    reply: NewMessage,
    now: datetime,
) -> MessageRecord:
    """Store ``reply`` as the first child of the user message ``user_message_id``, a leaf.

    The late half of a turn whose user message and decision were stored first (the upstream model
    answered afterwards): the same compare-and-set as an append, so of two replies to one user
    message exactly one lands.
    """
    row = message_row(conn, conversation_id, user_message_id)
    slot = claim_leaf(conn, conversation_id, user_message_id, row=row, role="assistant")
    return insert_message(
        conn,
        conversation_id=conversation_id,
        slot=slot,
        message=reply,
        role="assistant",
        assessment=reply.assessment,
        ended=False,
        now=now,
    )


def end_leaf(
    conn: Connection, *, conversation_id: str, leaf_id: str, turn: TurnDecision, now: datetime
) -> str:
    """Mark a current leaf ended, attach the End decision to it, write the ending; its id."""
    if not isinstance(turn.decision, End):
        raise InvalidInput(f"ending needs an End decision; got action {turn.decision.action!r}")
    row = message_row(conn, conversation_id, leaf_id)
    if row.ended:
        raise ConversationEnded(conversation_id, leaf_id)
    claimed = conn.execute(
        sa.update(messages)
        .where(
            messages.c.id == leaf_id,
            messages.c.child_count == 0,
            messages.c.ended == sa.false(),
        )
        .values(ended=True)
    ).rowcount
    if claimed == 0:
        raise LeafConflict(
            f"message {leaf_id!r} is not a leaf of conversation {conversation_id!r} any more; "
            "only the last message of a branch can be ended"
        )
    decision_id = insert_decision(
        conn,
        conversation_id=conversation_id,
        message_id=leaf_id,
        kind="turn",
        turn=turn,
        now=now,
    )
    return _insert_ending(
        conn,
        conversation_id=conversation_id,
        leaf_id=leaf_id,
        decision_id=decision_id,
        turn=turn,
        now=now,
    )


def write_retry(
    conn: Connection,
    *,
    conversation_id: str,
    message_id: str,
    reply: NewMessage,
    turn: TurnDecision | None,
    now: datetime,
    max_branches: int | None = None,
) -> MessageRecord:
    """Store ``reply`` as a new sibling of the assistant message ``message_id``.

    The reply that ended a branch (or a reply to a user turn that ended it) cannot be retried:
    that would reopen the ended branch under the same path.
    """
    row = message_row(conn, conversation_id, message_id)
    if row.role != "assistant":
        raise InvalidInput(
            f"message {message_id!r} is a {row.role} message; only assistant messages "
            "can be retried (edit a user message instead)"
        )
    if row.ended or ended_by(conn, row.parent_id):
        raise ConversationEnded(conversation_id, message_id)
    record = insert_message(
        conn,
        conversation_id=conversation_id,
        slot=claim_sibling(conn, conversation_id, row.parent_id, max_branches=max_branches),
        message=reply,
        role="assistant",
        assessment=reply.assessment,
        ended=False,
        now=now,
    )
    if turn is None:
        return record
    if isinstance(turn.decision, End):
        end_leaf(conn, conversation_id=conversation_id, leaf_id=record.id, turn=turn, now=now)
        return replace(record, ended=True, decision=turn.decision)
    insert_decision(
        conn,
        conversation_id=conversation_id,
        message_id=record.id,
        kind="turn",
        turn=turn,
        now=now,
    )
    return replace(record, decision=turn.decision)


def write_branch(
    conn: Connection,
    *,
    conversation_id: str,
    parent_id: str | None,
    reply: NewMessage | None,
    turns: list[tuple[NewMessage, TurnDecision, NewMessage | None]],
    now: datetime,
    max_branches: int | None = None,
) -> list[MessageRecord]:
    """Store a run of new messages below ``parent_id``: optionally an assistant ``reply`` first,
    then user turns (each with its decision and optional reply), each below the one before.

    The first lands as the parent's first child or as a new sibling (:func:`claim_child`); the
    rest chain below it. Every message carries its id; one already stored raises
    :class:`MessageExists` before anything is written.
    """
    given = [m.id for m in ([reply] if reply else []) + [m for t in turns for m in t[::2] if m]]
    for message_id in given:
        if message_id is not None and conn.execute(_ID_TAKEN, {"b_message": message_id}).first():
            raise MessageExists(message_id)
    first_role: MessageRole = "assistant" if reply is not None else "user"
    slot = claim_child(conn, conversation_id, parent_id, role=first_role, max_branches=max_branches)
    stored: list[MessageRecord] = []
    if reply is not None:
        stored.append(
            insert_message(
                conn,
                conversation_id=conversation_id,
                slot=slot,
                message=reply,
                role="assistant",
                assessment=reply.assessment,
                ended=False,
                now=now,
            )
        )
    for user, turn, answer in turns:
        if stored:
            conn.execute(_HAS_CHILD, {"b_message": stored[-1].id})
            slot = Slot(stored[-1].id, 0)
        user_record, reply_record = write_turn(
            conn,
            conversation_id=conversation_id,
            slot=slot,
            user=user,
            turn=turn,
            reply=answer,
            now=now,
        )
        stored += [user_record, *([reply_record] if reply_record else [])]
    return stored

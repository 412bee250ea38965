"""Turning rows into records and checking what goes into rows.

Pure helpers shared by the reads and the writes of the store: validation of text and ids
(content must be valid Unicode text without NUL characters), JSON encoding of assessments and
decisions, and the row → record conversions.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from typing import Any, cast

from convguard.assess.types import Assessment
from convguard.conversation import Decision, decision_from_dict
from convguard.errors import InvalidInput, StoreError
from convguard.store.records import (
    AccountRecord,
    ApiKeyRecord,
    ConversationRecord,
    DecisionKind,
    DecisionRecord,
    EndingRecord,
    FeedbackRecord,
    MessageRecord,
    MessageRole,
    Rating,
)
from convguard.store.tables import ID_LENGTH

__all__ = [
    "account_record",
    "api_key_record",
    "check_id",
    "check_text",
    "conversation_record",
    "decision_record",
    "ending_record",
    "feedback_record",
    "message_record",
    "new_id",
]


def new_id() -> str:
    return uuid.uuid4().hex


def check_text(what: str, value: str) -> str:
    """``value`` if it can be stored as text, else :class:`InvalidInput` naming ``what``."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string; got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInput(
            f"{what} contains a NUL character at index {value.index(chr(0))}; remove it"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{what} is not valid Unicode text ({exc.reason} at index {exc.start}); send UTF-8 text"
        ) from exc
    return value


def check_id(what: str, value: str | None) -> str:
    """A caller-chosen id, or a fresh one when ``value`` is None."""
    if value is None:
        return new_id()
    check_text(what, value)
    if not value or len(value) > ID_LENGTH or not value.isprintable() or value.strip() != value:
        raise InvalidInput(
            f"{what} {value!r} is not a valid id; use 1 to {ID_LENGTH} printable characters "
            "without surrounding spaces"
        )
    return value


def _assessment(data: Any) -> Assessment | None:
    """An assessment column: None, its decoded JSON, or its JSON text (read raw for the cache)."""
    if data is None:
        return None
    if isinstance(data, str):
        return _assessment_text(data)
    return Assessment.from_dict(cast(Mapping[str, Any], data))


def _decision(data: Any) -> Decision | None:
    """A decision column, like :func:`_assessment`."""
    if data is None:
        return None
    if isinstance(data, str):
        return _decision_text(data)
    return decision_from_dict(cast(Mapping[str, Any], data))


# Every turn reads its whole conversation back; the stored JSON of a message's assessment and of
# a decision never changes, so the same text is decoded once per process. The records are frozen
# and shared: nothing may mutate them.
# (A JSON column given None holds the JSON text ``null``.)
@functools.lru_cache(maxsize=16_384)
def _assessment_text(text: str) -> Assessment | None:
    data = json.loads(text)
    return None if data is None else Assessment.from_dict(data)


@functools.lru_cache(maxsize=16_384)
def _decision_text(text: str) -> Decision | None:
    data = json.loads(text)
    return None if data is None else decision_from_dict(data)


def account_record(row: Any) -> AccountRecord:
    return AccountRecord(id=row.id, name=row.name, created_at=row.created_at)


def api_key_record(row: Any) -> ApiKeyRecord:
    """An ``api_keys`` row joined with its account's ``account_name``."""
    return ApiKeyRecord(
        id=row.id,
        account_id=row.account_id,
        account_name=row.account_name,
        admin=bool(row.admin),
        prefix=row.prefix,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def conversation_record(row: Any) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        account_id=row.account_id,
        title=row.title,
        locale=row.locale,
        created_at=row.created_at,
        updated_at=row.updated_at,
        message_count=int(row.message_count),
    )


def message_record(row: Any, decision: str | Mapping[str, Any] | None) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        parent_id=row.parent_id,
        role=cast(MessageRole, row.role),
        content=row.content,
        created_at=row.created_at,
        ended=bool(row.ended),
        assessment=_assessment(row.assessment),
        decision=_decision(decision),
    )


def decision_record(row: Any) -> DecisionRecord:
    assessment = _assessment(row.assessment)
    if assessment is None:
        raise StoreError(f"decision {row.id!r} has no assessment; the store was changed by hand")
    return DecisionRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        kind=cast(DecisionKind, row.kind),
        decision=decision_from_dict(row.decision),
        assessment=assessment,
        policy_version=row.policy_version,
        assess_ms=row.assess_ms,
        decide_ms=row.decide_ms,
        created_at=row.created_at,
    )


def ending_record(row: Any) -> EndingRecord:
    return EndingRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        leaf_id=row.message_id,
        decision_id=row.decision_id,
        reason=row.reason,
        initiator=row.initiator,
        policy_version=row.policy_version,
        created_at=row.created_at,
    )


def feedback_record(row: Any) -> FeedbackRecord:
    return FeedbackRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        ending_id=row.ending_id,
        rating=cast(Rating | None, row.rating),
        comment=row.comment,
        created_at=row.created_at,
    )

"""The values the store takes and returns: frozen records, never live database rows.

A turn goes in as :class:`NewMessage` values and a :class:`TurnDecision`; everything comes back as
a frozen record (:class:`MessageRecord`, :class:`ConversationRecord`, …) that holds no connection,
so callers can keep it after the store is closed.

Invariants:
- ``MessageRecord.decision`` is the latest decision *attached* to that message (the turn decision
  of a user message; an ``End`` on an assistant message that a model or an operator ended);
  audit-only decisions (:meth:`Store.record_decision`) are never attached;
- ``MessageRecord.ended`` is true only on a leaf: nothing is ever stored below an ended message;
- datetimes are timezone-aware UTC;
- an :class:`ApiKeyRecord` never holds the key itself: the plaintext is returned once, when the
  key is created, and only its SHA-256 is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from convguard.assess.types import Assessment
from convguard.conversation import Decision, Initiator, Message, Step
from convguard.errors import InvalidInput

__all__ = [
    "AccountRecord",
    "ApiKeyRecord",
    "ConversationRecord",
    "DecisionKind",
    "DecisionRecord",
    "EndingRecord",
    "FeedbackRecord",
    "MessageRecord",
    "MessageRole",
    "NewMessage",
    "OpeningRecord",
    "Rating",
    "ReviewItem",
    "TurnDecision",
]

MessageRole = Literal["user", "assistant"]
Rating = Literal["agree", "disagree"]
#: ``turn``: the decision attached to a message; ``audit``: recorded for the record only.
DecisionKind = Literal["turn", "audit"]


@dataclass(frozen=True)
class NewMessage:
    """A message to store; ``id`` defaults to a fresh uuid4 hex chosen by the store."""

    role: MessageRole
    content: str
    assessment: Assessment | None = None
    id: str | None = None


@dataclass(frozen=True)
class TurnDecision:
    """A decision with what produced it: the assessment, the policy version and the timings."""

    decision: Decision
    assessment: Assessment
    policy_version: str
    assess_ms: float = 0.0
    decide_ms: float = 0.0

    def __post_init__(self) -> None:
        if not self.policy_version:
            raise InvalidInput("a decision needs the policy version that produced it; got ''")


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key of an account, without the key: ``prefix`` is its first characters, for display.

    ``admin`` keys may also use the review endpoints; a key with ``revoked_at`` set no longer
    authenticates.
    """

    id: str
    account_id: str
    account_name: str
    admin: bool
    prefix: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The key's record as JSON (never the key: only its first characters)."""
        return {
            "id": self.id,
            "account": self.account_name,
            "admin": self.admin,
            "prefix": self.prefix,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    account_id: str
    title: str | None
    locale: str | None
    created_at: datetime
    updated_at: datetime
    #: Messages stored in the whole tree (every branch), kept by each write.
    message_count: int = 0


@dataclass(frozen=True)
class OpeningRecord:
    """A conversation begun by a chat's opening (a client that named no conversation)."""

    conversation_id: str
    created_at: datetime
    #: When the first reply to the opening was recorded (:meth:`Store.record_opening_reply`);
    #: None while it has none.
    answered_at: datetime | None

    @property
    def answered(self) -> bool:
        """Whether a reply to the opening has been recorded."""
        return self.answered_at is not None


@dataclass(frozen=True)
class MessageRecord:
    id: str
    conversation_id: str
    parent_id: str | None
    role: MessageRole
    content: str
    created_at: datetime
    ended: bool
    assessment: Assessment | None
    decision: Decision | None

    def as_message(self) -> Message:
        """The core's view of this message, for :func:`convguard.conversation.branch_path`."""
        return Message(self.id, self.parent_id, self.role, self.content)

    def as_step(self) -> Step:
        """The core's view of this message, for :func:`convguard.conversation.fold`."""
        return Step(self.role, self.assessment, self.decision)


@dataclass(frozen=True)
class DecisionRecord:
    id: str
    conversation_id: str
    message_id: str
    kind: DecisionKind
    decision: Decision
    assessment: Assessment
    policy_version: str
    assess_ms: float
    decide_ms: float
    created_at: datetime


@dataclass(frozen=True)
class EndingRecord:
    """Where and why a branch ended; ``leaf_id`` is the ended message."""

    id: str
    conversation_id: str
    leaf_id: str
    decision_id: str
    reason: str
    initiator: Initiator
    policy_version: str
    created_at: datetime


@dataclass(frozen=True)
class FeedbackRecord:
    id: str
    conversation_id: str
    ending_id: str
    rating: Rating | None
    comment: str
    created_at: datetime


@dataclass(frozen=True)
class ReviewItem:
    """One ending in the review queue: the branch that led to it and the feedback on it."""

    conversation: ConversationRecord
    ending: EndingRecord
    path: tuple[MessageRecord, ...]
    feedback: tuple[FeedbackRecord, ...]

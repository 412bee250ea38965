"""How a chat that names no conversation is told apart: by its opening, and the reply to it.

A chat client sends its whole history each time. One that sends the ``X-Convguard-Conversation``
header or a user (``user``; Anthropic: ``metadata.user_id``) names its conversation. One that
sends neither is placed by its history (:func:`conversation_of`):

- **Only the opening** (the first user turn, with any system or developer messages before it)
  starts a new conversation, unless it is recognisably the same opening sent again. Then it goes
  to the newest conversation that opened that way, where the stored reply stands (no model
  call), or the pending one is answered. It is sent again when it is an SDK's automatic retry
  (``x-stainless-retry-count`` of 1 or more: the openai and anthropic SDKs number each try of a
  request, 0 for the first), a regeneration (``X-Convguard-Regenerate: true``), or while that
  opening still waits for its first reply (for as long as a request waits for another's reply,
  twice ``CONVGUARD_UPSTREAM_TIMEOUT`` plus 5 s): a burst of identical first requests is one
  chat. "While" is when the request arrived (:mod:`convguard.server.arrival`), not when the
  server got to it: one that arrived before the opening's first reply was recorded joins it even
  where a loaded server reads it only afterwards. An ``Idempotency-Key`` names the request
  itself: a key sent before with the same opening goes to the conversation it came with; a key
  not seen before is a new conversation.
- **A longer history** goes to the newest conversation whose opening was answered with that
  history's first reply. A history with a first reply this gateway never gave (one the client
  built) goes to the one conversation that every such history with that opening shares, where
  each is its own branch.

A new conversation's id is derived from the account, the opening, the conversation that last
opened that way and the idempotency key, not drawn at random: requests that race to start the
same chat derive the same id, and so meet in one conversation and make one model call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from convguard.errors import InvalidInput
from convguard.server.gateway import Caller, Gateway, conversation_key
from convguard.service import HistoryTurn, TurnResult
from convguard.store import ConversationRecord, MessageRecord, OpeningRecord

__all__ = ["Resend", "conversation_of", "remember_reply", "resend_of"]


@dataclass(frozen=True)
class Resend:
    """What a request says of itself about having been sent before."""

    #: An SDK's automatic retry, or a regeneration: the opening was sent before.
    retry: bool = False
    #: The request's ``Idempotency-Key``: the same key is the same request.
    idempotency_key: str | None = None


def resend_of(
    retry_count: str | None, idempotency_key: str | None, *, regenerate: bool = False
) -> Resend:
    """The resend marks of a request's headers, checked (422 naming the header otherwise)."""
    if retry_count is not None and not (
        retry_count.isascii() and retry_count.isdigit() and len(retry_count) <= 9
    ):
        raise InvalidInput(
            f"header x-stainless-retry-count is {retry_count[:40]!r}; it numbers an SDK's tries "
            "of one request (0, 1, 2, ...): send a whole number below 10**9 or leave it out"
        )
    key = idempotency_key
    if key is not None and (not key.strip() or not key.isprintable() or len(key) > 256):
        raise InvalidInput(
            f"header Idempotency-Key is {key[:40]!r}; send a printable key of at "
            "most 256 characters, the same for every try of one request, or leave it out"
        )
    retried = retry_count is not None and int(retry_count) >= 1
    return Resend(retry=retried or regenerate, idempotency_key=key)


def conversation_of(
    gateway: Gateway,
    caller: Caller,
    history: Sequence[HistoryTurn],
    resend: Resend,
    *,
    locale: str | None,
    arrived: datetime,
) -> ConversationRecord:
    """The conversation of a history whose client named none (the rule is the module's);
    ``arrived``: when the request arrived (:func:`~convguard.server.arrival.arrived_at`)."""
    store, opening = gateway.store, history[0].content

    def conversation(conversation_id: str) -> ConversationRecord:
        return gateway.get_or_create_conversation(
            caller, conversation_id, title=opening[:80], locale=locale
        )

    if len(history) > 1:
        found = store.find_opening(caller.account_id, opening, reply=history[1].content)
        if found is not None:
            return conversation(found.conversation_id)
        return conversation(conversation_key(caller.account_id, f"first:{opening}"))
    key = resend.idempotency_key
    if key is not None:
        found = store.find_opening(caller.account_id, opening, idempotency_key=key)
        if found is not None:
            return conversation(found.conversation_id)
    latest = store.find_opening(caller.account_id, opening)
    if latest is not None and key is None and (resend.retry or _waiting(gateway, latest, arrived)):
        return conversation(latest.conversation_id)
    after = latest.conversation_id if latest is not None else ""
    scope = f"first:{opening}\0{after}\0{key or ''}"  # NUL: no header or user can spell it
    begun = conversation(conversation_key(caller.account_id, scope))
    store.record_opening(
        caller.account_id, begun.id, opening, idempotency_key=key, now=gateway.service.clock()
    )
    return begun


def remember_reply(gateway: Gateway, result: TurnResult, reply: MessageRecord) -> None:
    """Record ``reply`` where it answers the opening of a conversation begun by one, so that the
    history going on from it finds that conversation."""
    if result.user.parent_id is None:
        gateway.store.record_opening_reply(
            result.conversation_id, reply.content, now=gateway.service.clock()
        )


def _waiting(gateway: Gateway, opening: OpeningRecord, arrived: datetime) -> bool:
    """Whether the opening still waited for its first reply when the request arrived: not
    answered before then, and at that time younger than a request waits for another's reply to
    the same turn (in :class:`~convguard.server.chat.ModelTurn`). An opening recorded after the
    request arrived was sent at the same time as it: the two are one chat."""
    answered = opening.answered_at is not None and opening.answered_at <= arrived
    return not answered and arrived - opening.created_at < gateway.claim_ttl

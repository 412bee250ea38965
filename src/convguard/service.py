"""One use case, top-down: load the branch → assess → decide → persist → reply.

The server and the command line are thin shells over :class:`Service`. Every user turn is written
atomically with its decision and its reply (or not at all); a branch that has ended takes nothing
more, and the error names the two ways forward.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from convguard.assess.confirm import confirms_end
from convguard.assess.types import Assessment, Assessor
from convguard.conversation import (
    ConversationState,
    Decision,
    End,
    Guide,
    Message,
    Step,
    decide,
    fold,
    reply_of,
)
from convguard.errors import ClassifierError, ConversationEnded, ConvguardError, InvalidInput
from convguard.logs import log_decision
from convguard.policy import Policy
from convguard.store import (
    ConversationRecord,
    FeedbackRecord,
    MessageRecord,
    NewMessage,
    Store,
    TurnDecision,
    leaves_of,
    path_of,
)
from convguard.upstream import NoModelResponder, Responder

__all__ = ["MessageIds", "Service", "TurnResult"]

#: How many earlier user turns are assessed together with the new one (the window, B8).
CONTEXT_TURNS = 3
MAX_CONTENT_CHARS = 100_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MessageIds(Protocol):
    """Chooses message ids (the gateway hashes each message with its parent)."""

    def user(self, parent_id: str | None, content: str) -> str: ...

    def reply(self, user_id: str, content: str) -> str: ...


@dataclass(frozen=True)
class TurnResult:
    conversation_id: str
    user: MessageRecord
    reply: MessageRecord | None
    decision: Decision
    assessment: Assessment
    state: ConversationState
    policy_version: str
    path: tuple[MessageRecord, ...]
    """The branch from its root to the user message (``user`` last), as stored."""

    @property
    def ended(self) -> bool:
        return self.state.ended


def steps_of(path: Sequence[MessageRecord]) -> list[Step]:
    return [m.as_step() for m in path]


class Service:
    def __init__(
        self,
        *,
        policy: Policy,
        store: Store,
        assessor: Assessor,
        responder: Responder | None = None,
        clock: Callable[[], datetime] = _utcnow,
        locale: str | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.assessor = assessor
        self.responder = responder or NoModelResponder()
        self.clock = clock
        self.locale = locale

    # --- conversations ---------------------------------------------------------------------

    def start(
        self, account: str, *, title: str | None = None, locale: str | None = None
    ) -> ConversationRecord:
        owner = self.store.get_or_create_account(account, now=self.clock())
        return self.store.create_conversation(
            owner.id, now=self.clock(), title=title, locale=locale
        )

    def conversation(self, account: str, conversation_id: str) -> ConversationRecord:
        return self.store.owned_conversation(account, conversation_id)

    def _owned(
        self, account: str, conversation_id: str, owned: ConversationRecord | None
    ) -> ConversationRecord:
        if owned is not None and owned.id == conversation_id:
            return owned
        return self.conversation(account, conversation_id)

    def branch_state(self, account: str, conversation_id: str, leaf_id: str) -> ConversationState:
        self.conversation(account, conversation_id)
        return fold(self.policy, steps_of(self.store.path(conversation_id, leaf_id)))

    # --- turns -------------------------------------------------------------------------------

    def send(
        self,
        account: str,
        conversation_id: str,
        content: str,
        *,
        leaf_id: str | None = None,
        labels: Assessment | None = None,
        model_reply: str | None = None,
        ids: MessageIds | None = None,
        defer_model_reply: bool = False,
        tree: Sequence[MessageRecord] | None = None,
        owned: ConversationRecord | None = None,
    ) -> TurnResult:
        """A new user turn at the end of a branch (``leaf_id``; default: the newest leaf).

        ``defer_model_reply``: where the model (not the policy) answers, store the user turn now
        and no reply; the caller adds it with :meth:`add_reply` once the model has answered, so
        an upstream failure keeps the user's message for a retry.

        ``tree``: the conversation's messages as the caller has just read them, which saves
        reading them again. Safe because a stored path never changes, and the store refuses a leaf
        that another turn took or ended meanwhile.

        ``owned``: the conversation as the caller has just read it *for this account*, which
        saves checking ownership again.
        """
        conversation = self._owned(account, conversation_id, owned)
        records = list(tree) if tree is not None else self.store.messages(conversation_id)
        if leaf_id is None:
            current = leaves_of(records)
            leaf_id = current[-1].id if current else None
        path = path_of(records, leaf_id) if leaf_id else []
        return self._turn(
            conversation,
            path,
            content,
            labels,
            model_reply,
            leaf_id=leaf_id,
            ids=ids,
            defer=defer_model_reply,
        )

    def edit(
        self,
        account: str,
        conversation_id: str,
        message_id: str,
        content: str,
        *,
        labels: Assessment | None = None,
        model_reply: str | None = None,
        ids: MessageIds | None = None,
        defer_model_reply: bool = False,
        tree: Sequence[MessageRecord] | None = None,
        owned: ConversationRecord | None = None,
    ) -> TurnResult:
        """A new branch: ``content`` replaces the user message ``message_id`` as its sibling.

        ``tree``, ``owned``: as for :meth:`send`.
        """
        conversation = self._owned(account, conversation_id, owned)
        if tree is not None and any(m.id == message_id for m in tree):
            target = path_of(list(tree), message_id)
        else:
            target = self.store.path(conversation_id, message_id)
        if target[-1].role != "user":
            raise InvalidInput(
                f"message {message_id!r} is an assistant reply; edit a user message, "
                "or retry the reply instead"
            )
        return self._turn(
            conversation,
            target[:-1],
            content,
            labels,
            model_reply,
            edit=message_id,
            ids=ids,
            defer=defer_model_reply,
        )

    def add_reply(
        self,
        account: str,
        conversation_id: str,
        user_message_id: str,
        text: str,
        *,
        reply_id: str | None = None,
    ) -> MessageRecord:
        """The model's reply to a user turn stored with ``defer_model_reply``."""
        self.conversation(account, conversation_id)
        return self.store.add_reply(
            conversation_id,
            user_message_id=user_message_id,
            reply=NewMessage("assistant", text, id=reply_id),
            now=self.clock(),
        )

    def retry(
        self, account: str, conversation_id: str, message_id: str, *, model_reply: str | None = None
    ) -> MessageRecord:
        """A new branch: the reply ``message_id`` produced again from the path above it."""
        self.conversation(account, conversation_id)
        path = self.store.path(conversation_id, message_id)
        if path[-1].role != "assistant":
            raise InvalidInput(
                f"message {message_id!r} is a user message; retry an assistant reply, "
                "or edit the message instead"
            )
        above = path[:-1]
        state = fold(self.policy, steps_of(above))
        if state.ended:
            raise ConversationEnded(conversation_id, message_id)
        user = above[-1]
        decision = user.decision
        messages = [m.as_message() for m in above]
        if decision is not None:
            text = self._reply(messages, decision, model_reply)
        else:
            text = model_reply or self.responder.reply(messages)
        return self.store.retry_reply(
            conversation_id,
            message_id=message_id,
            reply=NewMessage("assistant", text),
            now=self.clock(),
        )

    def model_end(self, account: str, conversation_id: str, leaf_id: str) -> Decision:
        """The model called ``end_conversation`` on its reply ``leaf_id``: honour or refuse it."""
        conversation = self.conversation(account, conversation_id)
        path = self.store.path(conversation_id, leaf_id)
        if path[-1].role != "assistant" or len(path) < 2:
            raise InvalidInput(
                f"message {leaf_id!r} is not an assistant reply; the model ends on its own reply"
            )
        before = fold(self.policy, steps_of(path[:-2]))
        if fold(self.policy, steps_of(path)).ended:
            raise ConversationEnded(conversation_id, leaf_id)
        user = path[-2]
        assessment = user.assessment or Assessment.from_labels(self.policy)
        started = time.perf_counter()
        answer = decide(
            self.policy,
            before,
            assessment,
            locale=conversation.locale or self.locale,
            model_requests_end=True,
        )
        record = TurnDecision(
            answer, assessment, self.policy.version, 0.0, (time.perf_counter() - started) * 1000
        )
        if isinstance(answer, End):
            self.store.end(conversation_id, leaf_id=leaf_id, decision=record, now=self.clock())
        else:
            self.store.record_decision(leaf_id, record, now=self.clock())
        log_decision(
            conversation=conversation_id,
            leaf=leaf_id,
            decision=answer,
            assessment=assessment,
            policy_version=self.policy.version,
        )
        return answer

    def feedback(
        self,
        account: str,
        conversation_id: str,
        *,
        comment: str,
        rating: str | None = None,
        leaf_id: str | None = None,
    ) -> FeedbackRecord:
        self.conversation(account, conversation_id)
        if rating not in (None, "agree", "disagree"):
            raise InvalidInput(f"rating {rating!r} is not allowed; use 'agree' or 'disagree'")
        return self.store.add_feedback(
            conversation_id,
            leaf_id=leaf_id,
            rating=rating,  # type: ignore[arg-type]
            comment=comment,
            now=self.clock(),
        )

    # --- the turn itself ---------------------------------------------------------------------

    def _turn(
        self,
        conversation: ConversationRecord,
        path: list[MessageRecord],
        content: str,
        labels: Assessment | None,
        model_reply: str | None,
        *,
        leaf_id: str | None = None,
        edit: str | None = None,
        ids: MessageIds | None = None,
        defer: bool = False,
    ) -> TurnResult:
        _check_content(content)
        state = fold(self.policy, steps_of(path))
        if state.ended:
            raise ConversationEnded(conversation.id, leaf_id)

        started = time.perf_counter()
        assessment = labels or self._assess(content, path)
        if state.awaiting_end_confirmation and confirms_end(content):
            assessment = assessment.with_flag(
                self.policy, "user_requests_end", source="confirmation", detail=content[:80]
            )
        assessed = time.perf_counter()
        decision = decide(self.policy, state, assessment, locale=conversation.locale or self.locale)
        decided = time.perf_counter()

        parent = path[-1].id if path else None
        user_id = ids.user(parent, content) if ids else None
        user_message = NewMessage("user", content, assessment, id=user_id)
        reply: NewMessage | None = None
        if not (defer and reply_of(decision) is None):
            pending = [
                *(m.as_message() for m in path),
                Message(user_id or "pending", parent, "user", content),
            ]
            text = self._reply(pending, decision, model_reply)
            reply_id = ids.reply(user_id, text) if ids and user_id else None
            reply = NewMessage("assistant", text, id=reply_id)
        record = TurnDecision(
            decision,
            assessment,
            self.policy.version,
            (assessed - started) * 1000,
            (decided - assessed) * 1000,
        )
        if edit is not None:
            user, answer = self.store.edit_turn(
                conversation.id,
                message_id=edit,
                user=user_message,
                decision=record,
                reply=reply,
                now=self.clock(),
            )
        else:
            user, answer = self.store.append_turn(
                conversation.id,
                leaf_id=leaf_id,
                user=user_message,
                decision=record,
                reply=reply,
                now=self.clock(),
            )
        log_decision(
            conversation=conversation.id,
            leaf=(answer or user).id,
            decision=decision,
            assessment=assessment,
            policy_version=self.policy.version,
            content=content,
        )
        after = fold(self.policy, steps_of([*path, user, *([answer] if answer else [])]))
        return TurnResult(
            conversation.id,
            user,
            answer,
            decision,
            assessment,
            after,
            self.policy.version,
            (*path, user),
        )

    def _assess(self, content: str, path: Sequence[MessageRecord]) -> Assessment:
        context = [m.content for m in path if m.role == "user"][-CONTEXT_TURNS:]
        try:
            return self.assessor.assess(content, role="user", context=context)
        except ConvguardError:
            raise
        except Exception as exc:  # a classifier's own failure: the policy says what it means
            failure = self.policy.on_classifier_error
            if failure == "error":
                raise ClassifierError(
                    f"the classifier failed ({type(exc).__name__}: {exc}); nothing was stored. "
                    "Retry, or set the policy's on_classifier_error to 'allow' or 'redirect'"
                ) from exc
            return Assessment.from_scores(
                self.policy, {}, source="error", error=f"{type(exc).__name__}: {exc}"
            )

    def _reply(self, path: Sequence[Message], decision: Decision, model_reply: str | None) -> str:
        """The policy's reply where it writes one; otherwise the model's (given, or asked for)."""
        written = reply_of(decision)
        if written is not None:
            return written
        if model_reply is not None:
            return model_reply
        guidance = decision.guidance if isinstance(decision, Guide) else None
        return self.responder.reply(path, guidance=guidance)


def _check_content(content: str) -> None:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("message content is empty; send some text")
    if len(content) > MAX_CONTENT_CHARS:
        raise InvalidInput(
            f"message content has {len(content)} characters; the limit is {MAX_CONTENT_CHARS}"
        )
    if "\x00" in content:
        raise InvalidInput("message content contains a NUL character; remove it")

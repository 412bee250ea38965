"""One use case, top-down: load the branch → assess → decide → persist → reply.

The server and the command line are thin shells over :class:`Service`. Every user turn is written
atomically with its decision and its reply (or not at all); a branch that has ended takes nothing
more, and the error names the two ways forward.

Stateless clients (the OpenAI-compatible gateway) send a whole history each time:
:meth:`Service.sync_history` maps it onto the tree by content-hashed ids. A history already stored
is the same turn again (a resend): its stored decision and reply stand, and nothing is assessed,
stored or generated twice. What is new is assessed, decided and written in one transaction, so
a request that fails stores nothing. A concurrent request that stored the same turn first is the
same turn too (:class:`~convguard.errors.MessageExists` means "read it back"), and
:meth:`Service.answering` lets one request of all the workers on a database call the model for a
pending turn while the others wait for its reply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from convguard.assess.confirm import confirms_end
from convguard.assess.types import Assessment, Assessor, Evidence
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
from convguard.errors import (
    ClassifierError,
    ConversationEnded,
    ConvguardError,
    InvalidInput,
    LeafConflict,
    MessageExists,
    StoreError,
)
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

__all__ = ["HistoryTurn", "MessageIds", "OutputWindows", "Service", "TurnClaim", "TurnResult"]

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
    resent: bool = False
    """The turn was already stored (a resend): nothing was assessed or decided again."""

    @property
    def ended(self) -> bool:
        return self.state.ended


@dataclass(frozen=True)
class HistoryTurn:
    """One message of a client's history, as the tree stores it.

    A protocol adapter folds what the model reads on the user's side (system, developer and tool
    content with the user's text) into user turns, so all of it is assessed (B1).
    """

    role: Literal["user", "assistant"]
    content: str


def screen_output(windows: OutputWindows, text: str, withheld_reply: Callable[[str], str]) -> str:
    """A whole reply as a stream of it would be released through ``windows`` (fresh): the text
    up to the first window that crosses a threshold, then ``withheld_reply(category)``.
    ``windows`` is left holding what the stream would (:meth:`OutputWindows.assessment`: the
    crossing window's, with the withheld text as evidence; :attr:`OutputWindows.last`)."""
    cleared = windows.feed(text)
    if windows.flagged is None:
        cleared += windows.finish()  # the last windows, which may cross a threshold too
    if windows.flagged is None:
        return cleared
    replacement = withheld_reply(windows.flagged.categories[0])
    return cleared + ("\n\n" if cleared else "") + replacement


class OutputWindows:
    """Assistant text assessed in short overlapping windows as it arrives (B8).

    Each time ``step`` more characters have arrived, the window of the last ``size`` characters
    up to there is assessed; text is released to the client only once a window covering it has
    passed. So a harmful sentence after pages of benign text is judged on its own neighbourhood,
    not diluted by the whole reply, and from the first window that crosses a threshold nothing
    more is released: :attr:`flagged` holds that window's assessment, :meth:`withheld` the text.
    """

    def __init__(self, assessor: Assessor, *, size: int = 200, step: int = 80) -> None:
        if not 0 < step <= size:
            raise InvalidInput(f"window step {step!r} must be between 1 and the size {size!r}")
        self.assessor = assessor
        self.size = size
        self.step = step
        self.text = ""
        self.flagged: Assessment | None = None
        self.last: Assessment | None = None
        self.windows = 0
        self._checked = 0
        self._released = 0

    def feed(self, chunk: str) -> str:
        """Add arriving text; returns the text now cleared to send (maybe empty)."""
        self.text += chunk
        while self.flagged is None and len(self.text) - self._checked >= self.step:
            self._check(self._checked + self.step)
        return self._release()

    def finish(self) -> str:
        """The reply is complete: assess what is left; returns the rest cleared to send."""
        if self.flagged is None and self._checked < len(self.text):
            self._check(len(self.text))
        return self._release()

    def withheld(self) -> str:
        return self.text[self._released :]

    def assessment(self) -> Assessment | None:
        """The crossing window's assessment, with the withheld text as evidence; None if clean."""
        if self.flagged is None:
            return None
        score = max((self.flagged.scores.get(c, 0.0) for c in self.flagged.categories), default=0)
        evidence = Evidence("withheld", "output_windows", score, self.withheld())
        return replace(self.flagged, evidence=(*self.flagged.evidence, evidence))

    def _check(self, end: int) -> None:
        self.windows += 1
        window = self.text[max(0, end - self.size) : end]
        assessment = self.assessor.assess(window, role="assistant")
        self.last = assessment
        if assessment.categories:
            self.flagged = assessment
        else:
            self._checked = end

    def _release(self) -> str:
        cleared = self.text[self._released : self._checked]
        self._released = self._checked
        return cleared


def steps_of(path: Sequence[MessageRecord]) -> list[Step]:
    return [m.as_step() for m in path]


class TurnClaim:
    """The store's claim on a user turn, held by the request asking the model for its reply
    (:meth:`Service.answering`). The holder calls :meth:`renew` as the model makes progress,
    so that a reply that takes longer than the ttl is not taken over while it is still coming;
    a holder that dies stops renewing, and the claim is taken over a ttl after its last renewal.
    """

    def __init__(
        self,
        store: Store,
        user_id: str,
        token: str,
        *,
        ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.user_id = user_id
        self.token = token
        self.ttl = ttl
        self._clock = clock
        self._renewed = clock()
        self._held = True

    def renew(self) -> bool:
        """Whether this request still holds the turn. Writes to the store at most once every
        third of the ttl (so a fast stream costs a few UPDATEs, and a missed one or two still
        leave the claim alive); False once released or taken over (the holder may finish: the
        turn keeps the first reply stored, :meth:`Service.store_answer`)."""
        if not self._held:
            return False
        now = self._clock()
        if now - self._renewed < self.ttl / 3:
            return True
        self._held = self.store.renew_turn(self.user_id, self.token, now=now)
        self._renewed = now
        return self._held

    def release(self) -> None:
        self._held = False
        self.store.release_turn(self.user_id, self.token)


class _Answering:
    """Which pending user turns a request of this process is answering (and who waits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: dict[str, threading.Event] = {}

    def claim(self, user_id: str) -> threading.Event | None:
        """None: this caller answers (and must :meth:`release`); else the event to wait on."""
        with self._lock:
            event = self._turns.get(user_id)
            if event is None:
                self._turns[user_id] = threading.Event()
            return event

    def release(self, user_id: str) -> None:
        with self._lock:
            event = self._turns.pop(user_id, None)
        if event is not None:
            event.set()


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
        self._answering = _Answering()

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
        assessment: Assessment | None = None,
    ) -> MessageRecord:
        """The model's reply to a user turn stored with ``defer_model_reply`` (``assessment``:
        its output assessment, when part of it was withheld)."""
        self.conversation(account, conversation_id)
        return self.store.add_reply(
            conversation_id,
            user_message_id=user_message_id,
            reply=NewMessage("assistant", text, assessment=assessment, id=reply_id),
            now=self.clock(),
        )

    def retry(
        self,
        account: str,
        conversation_id: str,
        message_id: str,
        *,
        model_reply: str | None = None,
        screen: Callable[[str], tuple[str, Assessment | None]] | None = None,
    ) -> MessageRecord:
        """A new branch: the reply ``message_id`` produced again from the path above it.

        ``screen`` assesses a reply the model wrote (not one the policy writes) before it is
        stored: it returns the text to store and, when part was withheld, the assessment."""
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
        assessment = None
        if screen is not None and (decision is None or reply_of(decision) is None):
            text, assessment = screen(text)
        return self.store.retry_reply(
            conversation_id,
            message_id=message_id,
            reply=NewMessage("assistant", text, assessment=assessment),
            now=self.clock(),
            max_branches=self.policy.max_branches,
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

    def would_end(self, result: TurnResult) -> bool:
        """Whether a model's ``end_conversation`` on its reply to ``result`` would be honoured."""
        before = fold(self.policy, steps_of(result.path[:-1]))
        answer = decide(self.policy, before, result.assessment, model_requests_end=True)
        return isinstance(answer, End)

    # --- stateless clients: a whole history each time ---------------------------------------

    def sync_history(
        self,
        account: str,
        conversation_id: str,
        history: Sequence[HistoryTurn],
        *,
        ids: MessageIds,
        owned: ConversationRecord | None = None,
    ) -> TurnResult:
        """The newest turn of a client's whole ``history`` (user turns and replies alternating,
        first and last a user turn), with everything before it found in the tree or stored.

        A history already stored is a resend: the stored turn comes back with its reply (or
        none yet, while it is pending), nothing assessed again. Otherwise the new messages, from
        the first one not stored, are assessed, decided and stored in one transaction; a reply
        that differs from the stored one is a new branch beside it, as is a changed user message.
        """
        _check_history(history)
        conversation = self._owned(account, conversation_id, owned)
        for _ in range(3):
            records = self.store.messages(conversation.id)
            known = {r.id: r for r in records}
            parent: str | None = None
            stored = 0
            for turn in history:
                mid = (
                    ids.user(parent, turn.content)
                    if turn.role == "user"
                    else ids.reply(parent or "", turn.content)
                )
                if mid not in known:
                    break
                parent, stored = mid, stored + 1
            if stored == len(history) and parent is not None:
                return self.stored_turn(conversation.id, records, parent)
            path = path_of(records, parent) if parent else []
            try:
                return self._store_history(conversation, path, history[stored:], ids)
            except MessageExists:
                continue  # a concurrent request stored the same turn first: read it back
        raise LeafConflict(
            f"conversation {conversation.id!r} kept changing while this history was stored; "
            "send it again"
        )

    def stored_turn(
        self, conversation_id: str, records: Sequence[MessageRecord], user_id: str
    ) -> TurnResult:
        """The stored user turn ``user_id`` with its newest reply (None while pending)."""
        path = path_of(list(records), user_id)
        user = path[-1]
        if user.decision is None or user.assessment is None:
            raise StoreError(
                f"message {user_id!r} has no stored decision; the store was changed by hand"
            )
        replies = [m for m in records if m.parent_id == user_id and m.role == "assistant"]
        reply = replies[-1] if replies else None
        return TurnResult(
            conversation_id,
            user,
            reply,
            user.decision,
            user.assessment,
            fold(self.policy, steps_of([*path, *([reply] if reply else [])])),
            self.policy.version,
            tuple(path),
            resent=True,
        )

    def _store_history(
        self,
        conversation: ConversationRecord,
        path: list[MessageRecord],
        new: Sequence[HistoryTurn],
        ids: MessageIds,
    ) -> TurnResult:
        parent = path[-1].id if path else None
        steps = steps_of(path)
        users = [m.content for m in path if m.role == "user"]
        lead: NewMessage | None = None
        index = 0
        if new[0].role == "assistant" and parent is not None:  # another reply: a new branch
            lead = NewMessage("assistant", new[0].content, id=ids.reply(parent, new[0].content))
            steps.append(Step("assistant"))
            parent, index = lead.id, 1
        pending: list[tuple[NewMessage, TurnDecision, NewMessage | None]] = []
        decision: Decision | None = None
        assessment: Assessment | None = None
        while index < len(new):
            content = new[index].content
            given = new[index + 1].content if index + 1 < len(new) else None
            state = fold(self.policy, steps)
            if state.ended:
                raise ConversationEnded(conversation.id, parent)
            started = time.perf_counter()
            assessment = self._assess_in_context(content, users)
            if state.awaiting_end_confirmation and confirms_end(content):
                assessment = assessment.with_flag(
                    self.policy, "user_requests_end", source="confirmation", detail=content[:80]
                )
            assessed = time.perf_counter()
            decision = decide(
                self.policy, state, assessment, locale=conversation.locale or self.locale
            )
            record = TurnDecision(
                decision,
                assessment,
                self.policy.version,
                (assessed - started) * 1000,
                (time.perf_counter() - assessed) * 1000,
            )
            user_id = ids.user(parent, content)
            text = given if given is not None else reply_of(decision)
            reply = (
                None if text is None else NewMessage("assistant", text, id=ids.reply(user_id, text))
            )
            pending.append((NewMessage("user", content, assessment, id=user_id), record, reply))
            steps += [Step("user", assessment, decision), *([Step("assistant")] if reply else [])]
            users.append(content)
            parent = reply.id if reply else user_id
            index += 2
        if decision is None or assessment is None:
            raise InvalidInput("the last message must be a user message with text content")
        written = self.store.extend_branch(
            conversation.id,
            parent_id=path[-1].id if path else None,
            reply=lead,
            user_turns=pending,
            now=self.clock(),
            max_branches=self.policy.max_branches,
        )
        for user_message, turn, reply in pending:
            log_decision(
                conversation=conversation.id,
                leaf=str((reply or user_message).id),
                decision=turn.decision,
                assessment=turn.assessment,
                policy_version=turn.policy_version,
                content=user_message.content,
            )
        full = [*path, *written]
        last_user = max(i for i, m in enumerate(full) if m.role == "user")
        reply_record = full[-1] if full[-1].role == "assistant" else None
        return TurnResult(
            conversation.id,
            full[last_user],
            reply_record,
            decision,
            assessment,
            fold(self.policy, steps_of(full)),
            self.policy.version,
            tuple(full[: last_user + 1]),
        )

    @contextmanager
    def answering(
        self, user_id: str, *, ttl: timedelta
    ) -> Iterator[TurnClaim | threading.Event | Literal["elsewhere"]]:
        """Claim the model call for the pending user turn ``user_id``: in this process, then in
        the store, so that of every worker on the database one asks the model for it.

        Yields the :class:`TurnClaim` when this caller answers it (both claims end with the
        block; the caller renews the store's as the model answers, and another worker takes it
        over once it goes ``ttl`` without renewal, so a worker killed mid-call does not hold the
        turn for good), the event that is set once the request of this process answering it
        has finished, or ``"elsewhere"`` when another worker holds the store's claim (this
        process's claim is then let go at once: poll the store for the reply).
        """
        event = self._answering.claim(user_id)
        if event is not None:
            yield event
            return
        try:
            token = self.store.claim_turn(user_id, now=self.clock(), ttl=ttl)
            if token is None:
                yield "elsewhere"
                return
            claim = TurnClaim(self.store, user_id, token, ttl=ttl, clock=self.clock)
            try:
                yield claim
            finally:
                claim.release()
        finally:
            self._answering.release(user_id)

    def store_answer(
        self,
        result: TurnResult,
        text: str,
        *,
        reply_id: str | None,
        beside: str | None = None,
        assessment: Assessment | None = None,
    ) -> MessageRecord:
        """Store the model's reply to ``result``'s user turn: its first reply, or (``beside``:
        an earlier reply) a regenerated one beside it. A reply stored meanwhile for the same turn
        (the same content-hashed ``reply_id``, or another worker's first reply) is returned as
        stored: the turn keeps one first reply."""
        message = NewMessage("assistant", text, assessment, id=reply_id)
        try:
            if beside is None:
                return self.store.add_reply(
                    result.conversation_id,
                    user_message_id=result.user.id,
                    reply=message,
                    now=self.clock(),
                )
            return self.store.retry_reply(
                result.conversation_id,
                message_id=beside,
                reply=message,
                now=self.clock(),
                max_branches=self.policy.max_branches,
            )
        except MessageExists as exc:
            return self.store.message(result.conversation_id, exc.message_id)
        except LeafConflict:
            if beside is not None:
                raise
            # another worker answered the same turn first: its reply is the turn's
            replies = [
                m
                for m in self.store.children(result.conversation_id, result.user.id)
                if m.role == "assistant"
            ]
            if not replies:
                raise
            return replies[0]

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
                max_branches=self.policy.max_branches,
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
        return self._assess_in_context(content, [m.content for m in path if m.role == "user"])

    def _assess_in_context(self, content: str, users: Sequence[str]) -> Assessment:
        context = list(users[-CONTEXT_TURNS:])
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


def _check_history(history: Sequence[HistoryTurn]) -> None:
    if not history:
        raise InvalidInput("the history is empty; send at least one user message")
    for index, turn in enumerate(history):
        expected = "user" if index % 2 == 0 else "assistant"
        if turn.role != expected:
            raise InvalidInput(
                f"history turn {index} is a {turn.role} turn where a {expected} turn belongs; "
                "user turns and replies alternate, starting with a user turn"
            )
        if turn.role == "user":
            _check_content(turn.content)
    if history[-1].role != "user":
        raise InvalidInput("the last message must be a user message with text content")


def _check_content(content: str) -> None:
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("message content is empty; send some text")
    if len(content) > MAX_CONTENT_CHARS:
        raise InvalidInput(
            f"message content has {len(content)} characters; the limit is {MAX_CONTENT_CHARS}"
        )
    if "\x00" in content:
        raise InvalidInput("message content contains a NUL character; remove it")

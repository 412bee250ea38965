"""The store: accounts and API keys, conversations as message trees, decisions, endings, feedback,
review.

:class:`Store` is the only object the rest of convguard talks to. Each public method is one
transaction; writes open with ``BEGIN IMMEDIATE`` on SQLite (see :mod:`convguard.store.engine`)
and the turn writes themselves live in :mod:`convguard.store.turns`.

Invariants:
- a turn is stored whole or not at all; appending to an ended leaf raises
  :class:`ConversationEnded` and stores nothing; of two appends to one leaf exactly one lands and
  the other raises :class:`LeafConflict`;
- an edit (a sibling of a user message) or a retry (a sibling of an assistant message) starts a new
  open branch, except that the reply that ended a branch cannot be retried;
- a conversation of another account reads as not found, with the same message as a missing one;
- of concurrent :meth:`Store.claim_turn` calls on one turn exactly one gets it, until it is
  released or goes a ttl (the caller's) without being renewed (:meth:`Store.renew_turn`);
  expired claims are deleted by later claims, a bounded batch each;
- an opening and each reply to it are recorded once (:mod:`convguard.store.openings`), and
  looked up through an index;
- an API key is returned in plaintext once, by :meth:`Store.create_api_key`, and stored only as
  its SHA-256 (:mod:`convguard.store.keys`);
- every read is one transaction in one snapshot (REPEATABLE READ on PostgreSQL; SQLite reads
  see one snapshot anyway), so a message is never read without the decision stored with it;
- only :mod:`convguard.errors` errors leave the store: unexpected database errors become
  :class:`StoreError`, and a constraint violation in a turn write (a race the compare-and-set
  lost) becomes :class:`LeafConflict`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any, get_args

import alembic.util
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine

from convguard.errors import (
    ConvguardError,
    InvalidInput,
    LeafConflict,
    NotFound,
    StoreError,
)
from convguard.store import engine as engines
from convguard.store import keys, openings, reads, rows, turns
from convguard.store import tables as t
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
    Rating,
    ReviewItem,
    TurnDecision,
)

__all__ = ["Store", "open_store"]


def open_store(url: str | URL) -> Store:
    """Open (creating if needed) the database at ``url`` and upgrade it to the latest schema."""
    engine = engines.make_engine(url)
    try:
        with _translated("opening the database", conflict=None):
            engines.upgrade(engine)
    except alembic.util.CommandError as exc:
        engine.dispose()
        raise StoreError(
            f"cannot bring the database at {engine.url!r} to this version's schema: {exc}. "
            "Was it written by a newer convguard? Upgrade convguard, or use another database."
        ) from exc
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


@contextmanager
def _translated(what: str, *, conflict: ConvguardError | None) -> Iterator[None]:
    """Let convguard errors through; turn database errors into ``conflict`` or StoreError."""
    try:
        yield
    except ConvguardError:
        raise
    except sa.exc.IntegrityError as exc:
        if conflict is not None:
            raise conflict from exc
        raise StoreError(f"{what} broke a database constraint: {exc.orig}") from exc
    except sa.exc.SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise StoreError(f"{what} failed in the database: {detail}") from exc


# Read on every turn, so built once (SQLAlchemy reuses their compiled form and cache key).
_CONVERSATION = sa.select(t.conversations).where(
    t.conversations.c.account_id == sa.bindparam("b_account"),
    t.conversations.c.id == sa.bindparam("b_conversation"),
)
_OWNED_CONVERSATION = (
    sa.select(t.conversations)
    .join(t.accounts, t.accounts.c.id == t.conversations.c.account_id)
    .where(
        t.accounts.c.name == sa.bindparam("b_account"),
        t.conversations.c.id == sa.bindparam("b_conversation"),
    )
)


class Store:
    """The conversation store over one SQLAlchemy engine; close it when done."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in the
        # driver's busy handler (up to 100 ms a try): under load that is most of a turn's
        # latency. Threads of one process queue on this lock instead and wake as soon as it is
        # free; other processes still meet the busy timeout. PostgreSQL locks rows, not the file.
        self._writer: AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        with _translated(what, conflict=None), self._engine.connect() as conn:
            if self._engine.dialect.name == "postgresql":
                # READ COMMITTED gives each statement its own snapshot: a message and its
                # decision, read by two statements, could straddle a commit.
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def _write(self, what: str, *, conflict: ConvguardError | None = None) -> Iterator[Connection]:
        with (
            _translated(what, conflict=conflict),
            self._writer,
            self._engine.connect() as conn,
        ):
            conn.execution_options(**engines.WRITE)
            with conn.begin():
                yield conn

    # --- accounts ---------------------------------------------------------------------------------

    def create_account(self, name: str, *, now: datetime) -> AccountRecord:
        name = _name(name)
        record = AccountRecord(id=rows.new_id(), name=name, created_at=turns.utc(now))
        taken = InvalidInput(f"account name {name!r} is taken; choose another name")
        with self._write("creating an account", conflict=taken) as conn:
            if conn.execute(sa.select(t.accounts.c.pk).where(t.accounts.c.name == name)).first():
                raise taken
            conn.execute(sa.insert(t.accounts).values(**vars(record)))
        return record

    def account(self, name: str) -> AccountRecord:
        with self._read("reading an account") as conn:
            row = conn.execute(sa.select(t.accounts).where(t.accounts.c.name == name)).first()
        if row is None:
            raise NotFound(f"account {name!r} does not exist")
        return rows.account_record(row)

    def get_or_create_account(self, name: str, *, now: datetime) -> AccountRecord:
        name = _name(name)  # so that below, InvalidInput can only mean "taken meanwhile"
        try:
            return self.account(name)
        except NotFound:
            pass
        try:
            return self.create_account(name, now=now)
        except InvalidInput:
            return self.account(name)  # created by someone else in between

    # --- API keys ---------------------------------------------------------------------------------

    def create_api_key(
        self, account_name: str, *, now: datetime, admin: bool = False, label: str | None = None
    ) -> tuple[str, ApiKeyRecord]:
        """A new key for the account (created if missing): the key, shown only now; its record."""
        now = turns.utc(now)
        if label is not None:
            rows.check_text("key label", label)  # before the account is created
        account = self.get_or_create_account(account_name, now=now)
        with self._write("creating an API key") as conn:
            return keys.insert_key(conn, account, admin=admin, label=label, now=now)

    def authenticate(self, key: str) -> ApiKeyRecord | None:
        """The record of ``key`` if it is a live key; None for an unknown or revoked one."""
        hashed = keys.digest(key)
        if hashed is None:
            return None
        with self._read("checking an API key") as conn:
            record = keys.key_by_digest(conn, hashed)
        return None if record is None or record.revoked_at is not None else record

    def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKeyRecord:
        """Revoke the key ``key_id`` (revoking a revoked key changes nothing); its record."""
        now = turns.utc(now)
        with self._write("revoking an API key") as conn:
            return keys.revoke_key(conn, key_id, now)

    def sweep_api_keys(self, label: str, *, created_before: datetime, limit: int = 100) -> int:
        """Delete up to ``limit`` keys labelled ``label`` that are revoked or older than
        ``created_before`` (short-lived keys such as web sessions); how many went."""
        with self._write("deleting expired keys") as conn:
            return keys.sweep_keys(conn, label, turns.utc(created_before), limit)

    def list_api_keys(self, account_name: str) -> list[ApiKeyRecord]:
        """The account's keys, revoked ones included, oldest first."""
        account = self.account(account_name)
        with self._read("listing API keys") as conn:
            return keys.keys_of(conn, account.id)

    # --- conversations ----------------------------------------------------------------------------

    def create_conversation(
        self,
        account_id: str,
        *,
        now: datetime,
        title: str | None = None,
        locale: str | None = None,
        conversation_id: str | None = None,
    ) -> ConversationRecord:
        now = turns.utc(now)
        record = ConversationRecord(
            id=rows.check_id("conversation id", conversation_id),
            account_id=account_id,
            title=None if title is None else rows.check_text("title", title),
            locale=None if locale is None else rows.check_text("locale", locale),
            created_at=now,
            updated_at=now,
        )
        taken = InvalidInput(
            f"conversation id {record.id!r} is already taken; choose another or omit it"
        )
        # On PostgreSQL two creates of one id can both pass the check; UNIQUE(id) stops the second.
        with self._write("creating a conversation", conflict=taken) as conn:
            if conn.execute(
                sa.select(t.accounts.c.pk).where(t.accounts.c.id == account_id)
            ).first():
                if conn.execute(
                    sa.select(t.conversations.c.pk).where(t.conversations.c.id == record.id)
                ).first():
                    raise taken
                conn.execute(sa.insert(t.conversations).values(**vars(record)))
                return record
        raise NotFound(f"account {account_id!r} does not exist")

    def conversation(self, account_id: str, conversation_id: str) -> ConversationRecord:
        """The conversation if the account ``account_id`` owns it; else :class:`NotFound`."""
        return self._one_conversation(
            _CONVERSATION, {"b_account": account_id, "b_conversation": conversation_id}
        )

    def owned_conversation(self, account_name: str, conversation_id: str) -> ConversationRecord:
        """The conversation if the account named ``account_name`` owns it (one query)."""
        return self._one_conversation(
            _OWNED_CONVERSATION, {"b_account": account_name, "b_conversation": conversation_id}
        )

    def _one_conversation(
        self, query: sa.Select[Any], params: dict[str, str]
    ) -> ConversationRecord:
        with self._read("reading a conversation") as conn:
            row = conn.execute(query, params).first()
        if row is None:  # another account's conversation reads as missing, never as forbidden
            raise NotFound(f"conversation {params['b_conversation']!r} does not exist")
        return rows.conversation_record(row)

    def list_conversations(
        self, account_id: str, *, limit: int = 50, offset: int = 0
    ) -> list[ConversationRecord]:
        """The account's conversations, newest first."""
        _page(limit, offset)
        with self._read("listing conversations") as conn:
            result = conn.execute(
                sa.select(t.conversations)
                .where(t.conversations.c.account_id == account_id)
                .order_by(t.conversations.c.created_at.desc(), t.conversations.c.pk.desc())
                .limit(limit)
                .offset(offset)
            )
            return [rows.conversation_record(row) for row in result]

    # --- openings: which conversation a chat that names none is ---------------------------------

    def record_opening(
        self,
        account_id: str,
        conversation_id: str,
        opening: str,
        *,
        idempotency_key: str | None,
        now: datetime,
    ) -> None:
        """Record that the conversation began with the user turn ``opening``, sent with
        ``idempotency_key`` (if any); recording it again changes nothing."""
        now = turns.utc(now)
        insert = _dialect_insert(self._engine.dialect.name)
        with self._write("recording an opening") as conn:
            openings.insert_opening(
                conn,
                insert,
                account_id=account_id,
                conversation_id=conversation_id,
                opening=opening,
                idempotency_key=idempotency_key,
                now=now,
            )

    def record_opening_reply(self, conversation_id: str, reply: str, *, now: datetime) -> None:
        """Record ``reply`` as given to the opening the conversation began with, so that a
        history going on from it finds the conversation; nothing where it began otherwise."""
        now = turns.utc(now)
        insert = _dialect_insert(self._engine.dialect.name)
        with self._write("recording a reply to an opening") as conn:
            openings.insert_reply(
                conn, insert, conversation_id=conversation_id, reply=reply, now=now
            )

    def find_opening(
        self,
        account_id: str,
        opening: str,
        *,
        reply: str | None = None,
        idempotency_key: str | None = None,
    ) -> OpeningRecord | None:
        """The account's newest conversation begun with ``opening``: of those whose opening was
        answered with ``reply``, or sent with ``idempotency_key``, where given."""
        with self._read("finding an opening") as conn:
            return openings.find_opening(
                conn,
                account_id=account_id,
                opening=opening,
                reply=reply,
                idempotency_key=idempotency_key,
            )

    # --- the tree ---------------------------------------------------------------------------------

    def messages(self, conversation_id: str) -> list[MessageRecord]:
        """Every message of the conversation, in the order they were stored."""
        with self._read("reading messages") as conn:
            return reads.messages_of(conn, conversation_id)

    def message(self, conversation_id: str, message_id: str) -> MessageRecord:
        """One message with its attached decision; :class:`NotFound` if not in the conversation."""
        with self._read("reading a message") as conn:
            return reads.message_of(conn, conversation_id, message_id)

    def children(self, conversation_id: str, parent_id: str | None) -> list[MessageRecord]:
        """The messages directly below ``parent_id`` (None: the roots), first sibling first."""
        with self._read("reading messages") as conn:
            return reads.children_of(conn, conversation_id, parent_id)

    def path(self, conversation_id: str, leaf_id: str) -> list[MessageRecord]:
        """The branch from its root to ``leaf_id`` (any message of the conversation)."""
        return reads.path_of(self.messages(conversation_id), leaf_id)

    def leaves(self, conversation_id: str) -> list[MessageRecord]:
        """The messages with no reply or edit below them, in the order they were stored."""
        return reads.leaves_of(self.messages(conversation_id))

    # --- turns ------------------------------------------------------------------------------------

    def append_turn(
        self,
        conversation_id: str,
        *,
        leaf_id: str | None,
        user: NewMessage,
        decision: TurnDecision,
        reply: NewMessage | None,
        now: datetime,
    ) -> tuple[MessageRecord, MessageRecord | None]:
        """Store one user turn on the leaf ``leaf_id`` (None: the first turn)."""
        now = turns.utc(now)
        with self._write("storing a turn", conflict=_conflict(leaf_id)) as conn:
            turns.touch_conversation(conn, conversation_id, now, added=1 + (reply is not None))
            slot = turns.claim_leaf(conn, conversation_id, leaf_id)
            return turns.write_turn(
                conn,
                conversation_id=conversation_id,
                slot=slot,
                user=user,
                turn=decision,
                reply=reply,
                now=now,
            )

    def add_reply(
        self,
        conversation_id: str,
        *,
        user_message_id: str,
        reply: NewMessage,
        now: datetime,
    ) -> MessageRecord:
        """Store the assistant reply to a user message stored earlier without one (still a leaf).

        For a turn stored before the upstream model answered: the user message and its decision
        are committed first, so a failed upstream keeps them and the turn can be answered later.
        A second reply to the same message raises :class:`LeafConflict`; a user message whose
        decision ended the branch raises :class:`ConversationEnded`.
        """
        now = turns.utc(now)
        with self._write("storing a reply", conflict=_conflict(user_message_id)) as conn:
            turns.touch_conversation(conn, conversation_id, now, added=1)
            return turns.write_reply(
                conn,
                conversation_id=conversation_id,
                user_message_id=user_message_id,
                reply=reply,
                now=now,
            )

    def extend_branch(
        self,
        conversation_id: str,
        *,
        parent_id: str | None,
        reply: NewMessage | None = None,
        user_turns: list[tuple[NewMessage, TurnDecision, NewMessage | None]],
        now: datetime,
        max_branches: int | None = None,
    ) -> list[MessageRecord]:
        """Store a run of new messages below ``parent_id`` in one transaction (all or nothing):
        an optional assistant ``reply`` first, then ``user_turns`` (each a user message, its
        decision and its reply or None).

        The first lands as ``parent_id``'s first child, or beside the children it has (at most
        ``max_branches`` of them); see :func:`convguard.store.turns.write_branch`.
        """
        now = turns.utc(now)
        count = (reply is not None) + sum(1 + (t[2] is not None) for t in user_turns)
        with self._write("storing a history", conflict=_conflict(parent_id)) as conn:
            turns.touch_conversation(conn, conversation_id, now, added=count)
            return turns.write_branch(
                conn,
                conversation_id=conversation_id,
                parent_id=parent_id,
                reply=reply,
                turns=user_turns,
                now=now,
                max_branches=max_branches,
            )

    def edit_turn(
        self,
        conversation_id: str,
        *,
        message_id: str,
        user: NewMessage,
        decision: TurnDecision,
        reply: NewMessage | None,
        now: datetime,
        max_branches: int | None = None,
    ) -> tuple[MessageRecord, MessageRecord | None]:
        """Store a user turn as a new sibling of the user message ``message_id``."""
        now = turns.utc(now)
        with self._write("storing an edit", conflict=_conflict(message_id)) as conn:
            turns.touch_conversation(conn, conversation_id, now, added=1 + (reply is not None))
            row = turns.message_row(conn, conversation_id, message_id)
            if row.role != "user":
                raise InvalidInput(
                    f"message {message_id!r} is an {row.role} message; only user messages can "
                    "be edited (retry an assistant message instead)"
                )
            slot = turns.claim_sibling(
                conn, conversation_id, row.parent_id, max_branches=max_branches
            )
            return turns.write_turn(
                conn,
                conversation_id=conversation_id,
                slot=slot,
                user=user,
                turn=decision,
                reply=reply,
                now=now,
            )

    def retry_reply(
        self,
        conversation_id: str,
        *,
        message_id: str,
        reply: NewMessage,
        decision: TurnDecision | None = None,
        now: datetime,
        max_branches: int | None = None,
    ) -> MessageRecord:
        """Store a new reply as a sibling of the assistant message ``message_id``."""
        now = turns.utc(now)
        with self._write("storing a retry", conflict=_conflict(message_id)) as conn:
            turns.touch_conversation(conn, conversation_id, now, added=1)
            return turns.write_retry(
                conn,
                conversation_id=conversation_id,
                message_id=message_id,
                reply=reply,
                turn=decision,
                now=now,
                max_branches=max_branches,
            )

    def end(
        self, conversation_id: str, *, leaf_id: str, decision: TurnDecision, now: datetime
    ) -> EndingRecord:
        """End the branch at the current leaf ``leaf_id`` (a model's or an operator's end)."""
        now = turns.utc(now)
        with self._write("ending a branch", conflict=_conflict(leaf_id)) as conn:
            turns.touch_conversation(conn, conversation_id, now)
            ending_id = turns.end_leaf(
                conn, conversation_id=conversation_id, leaf_id=leaf_id, turn=decision, now=now
            )
            row = conn.execute(sa.select(t.endings).where(t.endings.c.id == ending_id)).one()
            return rows.ending_record(row)

    def record_decision(self, message_id: str, decision: TurnDecision, *, now: datetime) -> None:
        """Keep a decision for the audit trail only (it is not attached to the message)."""
        now = turns.utc(now)
        with self._write("recording a decision") as conn:
            conversation_id = conn.execute(
                sa.select(t.messages.c.conversation_id).where(t.messages.c.id == message_id)
            ).scalar()
            if conversation_id is None:
                raise NotFound(f"message {message_id!r} does not exist")
            turns.insert_decision(
                conn,
                conversation_id=conversation_id,
                message_id=message_id,
                kind="audit",
                turn=decision,
                now=now,
            )

    def decisions(self, conversation_id: str) -> list[DecisionRecord]:
        """Every decision row of the conversation, attached or audit-only, in order."""
        with self._read("reading decisions") as conn:
            result = conn.execute(
                sa.select(t.decisions)
                .where(t.decisions.c.conversation_id == conversation_id)
                .order_by(t.decisions.c.pk)
            )
            return [rows.decision_record(row) for row in result]

    # --- turn claims ------------------------------------------------------------------------------

    def claim_turn(self, user_id: str, *, now: datetime, ttl: timedelta) -> str | None:
        """Claim the model call for the user turn ``user_id`` across workers: the claim's token
        (give it to :meth:`renew_turn` and :meth:`release_turn`), or None while another claim
        renewed within ``ttl`` holds the turn. One statement (insert, or on the unique key take
        over a claim older than ``ttl``), so of concurrent claims exactly one wins, on SQLite
        and PostgreSQL.

        The same transaction deletes up to :data:`EXPIRED_CLAIMS_PER_SWEEP` other claims older
        than ``ttl`` (left by workers killed mid-call, on turns nobody asks for again), so they
        do not pile up. Rows another transaction holds are skipped on PostgreSQL, so the sweep
        never waits on, or deadlocks with, another worker's claim."""
        if ttl <= timedelta(0):
            raise InvalidInput(f"a turn claim's ttl must be positive, not {ttl!r}")
        now = turns.utc(now)
        token = rows.new_id()
        upsert = _dialect_insert(self._engine.dialect.name)(t.turn_claims).values(
            message_id=user_id, token=token, claimed_at=now
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[t.turn_claims.c.message_id],
            set_={"token": upsert.excluded.token, "claimed_at": upsert.excluded.claimed_at},
            where=t.turn_claims.c.claimed_at < now - ttl,
        )
        expired = (
            sa.select(t.turn_claims.c.pk)
            .where(t.turn_claims.c.claimed_at < now - ttl, t.turn_claims.c.message_id != user_id)
            .order_by(t.turn_claims.c.pk)
            .limit(EXPIRED_CLAIMS_PER_SWEEP)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        )
        with self._write("claiming a turn") as conn:
            # a row comes back only where this claim was inserted or took the turn over
            won: str | None = conn.execute(upsert.returning(t.turn_claims.c.token)).scalar()
            conn.execute(sa.delete(t.turn_claims).where(t.turn_claims.c.pk.in_(expired)))
        return won

    def renew_turn(self, user_id: str, token: str, *, now: datetime) -> bool:
        """Renew the claim ``token`` on ``user_id`` as of ``now`` (its holder is still answering:
        the claim is taken over only a ttl after its last renewal). False when the claim is no
        longer this token's (released, or taken over after it expired): nothing is claimed
        again."""
        now = turns.utc(now)
        with self._write("renewing a turn claim") as conn:
            renewed = conn.execute(
                sa.update(t.turn_claims)
                .where(t.turn_claims.c.message_id == user_id, t.turn_claims.c.token == token)
                .values(claimed_at=now)
            ).rowcount
        return renewed == 1

    def release_turn(self, user_id: str, token: str) -> None:
        """End the claim ``token`` on ``user_id`` (the reply is stored, or the call failed);
        a claim another worker has since taken over is left alone."""
        with self._write("releasing a turn") as conn:
            conn.execute(
                sa.delete(t.turn_claims).where(
                    t.turn_claims.c.message_id == user_id, t.turn_claims.c.token == token
                )
            )

    # --- endings, feedback, review ----------------------------------------------------------------

    def endings(self, conversation_id: str) -> list[EndingRecord]:
        with self._read("reading endings") as conn:
            result = conn.execute(
                sa.select(t.endings)
                .where(t.endings.c.conversation_id == conversation_id)
                .order_by(t.endings.c.pk)
            )
            return [rows.ending_record(row) for row in result]

    def add_feedback(
        self,
        conversation_id: str,
        *,
        leaf_id: str | None,
        rating: Rating | None,
        comment: str,
        now: datetime,
    ) -> FeedbackRecord:
        """Attach feedback to the ending on ``leaf_id`` (None: the latest ending)."""
        if rating is not None and rating not in get_args(Rating):
            raise InvalidInput(
                f"rating {rating!r} is not allowed; use one of {', '.join(get_args(Rating))} "
                "or leave it out"
            )
        comment = rows.check_text("feedback comment", comment)
        if rating is None and not comment.strip():
            raise InvalidInput("feedback needs a rating or a comment; both were empty")
        now = turns.utc(now)
        with self._write("storing feedback") as conn:
            query = sa.select(t.endings).where(t.endings.c.conversation_id == conversation_id)
            if leaf_id is not None:
                query = query.where(t.endings.c.message_id == leaf_id)
            ending = conn.execute(query.order_by(t.endings.c.pk.desc()).limit(1)).first()
            if ending is None:
                where = "" if leaf_id is None else f" on message {leaf_id!r}"
                raise InvalidInput(
                    f"conversation {conversation_id!r} has no ending{where}; feedback is for "
                    "endings (give the id of the ended message, or leave it out for the latest)"
                )
            record = FeedbackRecord(
                id=rows.new_id(),
                conversation_id=conversation_id,
                ending_id=ending.id,
                rating=rating,
                comment=comment,
                created_at=now,
            )
            conn.execute(sa.insert(t.feedback).values(**vars(record)))
            return record

    def ended_for_review(self, *, limit: int = 50, offset: int = 0) -> list[ReviewItem]:
        """Endings, newest first, each with its conversation, branch and feedback."""
        _page(limit, offset)
        with self._read("listing endings for review") as conn:
            return reads.review_items(conn, limit=limit, offset=offset)


# --- helpers ------------------------------------------------------------------------------------

#: How many expired turn claims one :meth:`Store.claim_turn` deletes at most (a claim is rarely
#: left behind: only by a worker killed mid-call), so a sweep stays a small part of a claim.
EXPIRED_CLAIMS_PER_SWEEP = 100


def _dialect_insert(dialect: str) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_update`` (both dialects spell it alike)."""
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise StoreError(f"turn claims need SQLite or PostgreSQL, not {dialect!r}")


def _name(name: str) -> str:
    rows.check_text("account name", name)
    if not name.strip() or len(name) > 200:
        raise InvalidInput(f"account name {name!r} must be 1 to 200 characters, not blank")
    return name


#: Past this an offset cannot be a row number (and overflows SQLite's 64-bit integers).
_MAX_OFFSET = 2**62


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= _MAX_OFFSET or not 0 <= offset <= _MAX_OFFSET:
        raise InvalidInput(
            f"limit {limit!r} and offset {offset!r}: limit must be at least 1, offset at least 0, "
            f"both at most {_MAX_OFFSET}"
        )


def _conflict(message_id: str | None) -> LeafConflict:
    target = "the conversation" if message_id is None else f"message {message_id!r}"
    return LeafConflict(
        f"another write on {target} landed at the same time; reload the conversation and retry"
    )

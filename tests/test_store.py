"""The store over real databases: the tree, keys, endings, feedback, review, races and crashes.

Every test that takes ``store_url`` (or ``store``) runs on a fresh SQLite file and, when
``CONVGUARD_TEST_POSTGRES_URL`` is set, on a fresh PostgreSQL schema (see ``tests/conftest.py``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from convguard import Assessment, default_policy, fold
from convguard.conversation import Allow, Decision, End, Redirect
from convguard.errors import (
    ConversationEnded,
    InvalidInput,
    LeafConflict,
    MessageExists,
    NotFound,
    StoreError,
)
from convguard.store import (
    ConversationRecord,
    MessageRecord,
    NewMessage,
    Store,
    TurnDecision,
    current_revision,
    head_revision,
    open_store,
)
from convguard.store.engine import make_engine
from convguard.store.tables import metadata

POLICY = default_policy()
BENIGN = Assessment.from_labels(POLICY)
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CHILD = Path(__file__).with_name("store_child.py")
TABLES = ("accounts", "api_keys", "conversations", "messages", "decisions", "endings", "feedback")


def turn_decision(decision: Decision) -> TurnDecision:
    return TurnDecision(decision, BENIGN, POLICY.version, assess_ms=2.5, decide_ms=0.25)


ALLOW = turn_decision(Allow(reason="no category over its threshold"))
REDIRECT = turn_decision(Redirect(reason="cbrn: declined", reply="I can't help with that."))
END = turn_decision(
    End(reason="cbrn: 3 failed redirections", reply="This chat has ended.", initiator="policy")
)
MODEL_END = turn_decision(
    End(reason="the model ended it", reply="This chat has ended.", initiator="model")
)


def url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def conversation(store: Store) -> ConversationRecord:
    account = store.create_account("ada", now=NOW)
    return store.create_conversation(account.id, now=NOW, title="first")


def say(
    store: Store,
    conversation: ConversationRecord,
    leaf: MessageRecord | None,
    text: str,
    decision: TurnDecision = ALLOW,
    *,
    reply: str | None = "a reply",
) -> tuple[MessageRecord, MessageRecord | None]:
    return store.append_turn(
        conversation.id,
        leaf_id=None if leaf is None else leaf.id,
        user=NewMessage("user", text),
        decision=decision,
        reply=None if reply is None else NewMessage("assistant", reply),
        now=NOW,
    )


def chat(store: Store, conversation: ConversationRecord, *texts: str) -> list[MessageRecord]:
    """A chain of turns, each with a reply; the messages root first."""
    out: list[MessageRecord] = []
    for text in texts:
        user, reply = say(store, conversation, out[-1] if out else None, text)
        assert reply is not None
        out += [user, reply]
    return out


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
            for name in TABLES
        }


def ids(records: list[MessageRecord]) -> list[str]:
    return [r.id for r in records]


# --- opening and migrations ------------------------------------------------------------------


def test_a_fresh_database_is_at_the_alembic_head_and_matches_the_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_opening_twice_is_idempotent_and_keeps_the_data(store_url: str) -> None:
    first = open_store(store_url)
    account = first.create_account("ada", now=NOW)
    first.close()
    again = open_store(store_url)
    try:
        assert again.account("ada") == account
        with again.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        again.close()


def test_connections_get_their_databases_settings(store: Store) -> None:
    """SQLite: WAL, foreign keys, a busy timeout; PostgreSQL: a lock timeout of the same length."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
        else:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "30s"


@pytest.mark.parametrize(
    "where", ["a directory", "a closed port"], ids=["sqlite", "postgresql (no server)"]
)
def test_an_unopenable_database_is_a_store_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-directory.db").mkdir()
    target = (
        url(tmp_path / "a-directory.db")
        if where == "a directory"
        else "postgresql+psycopg://nobody:secret@127.0.0.1:1/nothing?connect_timeout=5"
    )
    with pytest.raises(StoreError, match="opening the database"):
        open_store(target)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_a_plain_postgresql_url_uses_psycopg_3(scheme: str) -> None:
    engine = make_engine(f"{scheme}://convguard:secret@127.0.0.1:5432/convguard")
    try:
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    finally:
        engine.dispose()


def test_a_database_from_a_newer_schema_is_refused_with_a_store_error(store_url: str) -> None:
    open_store(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer convguard"):
        open_store(store_url)


def test_stores_opening_one_fresh_database_at_once_all_open_it(store_url: str) -> None:
    openers = 4
    barrier = threading.Barrier(openers)
    opened: list[Store] = []
    failures: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            opened.append(open_store(store_url))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        with opened[0].engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        opened[0].create_account("ada", now=NOW)
        assert all(s.account("ada").name == "ada" for s in opened)
    finally:
        for each in opened:
            each.close()


def test_an_in_memory_database_works_for_single_threaded_use() -> None:
    memory = open_store("sqlite://")
    try:
        ada = memory.create_account("ada", now=NOW)
        chat(memory, memory.create_conversation(ada.id, now=NOW), "hello")
        assert memory.ended_for_review() == []
    finally:
        memory.close()


# --- accounts and conversations --------------------------------------------------------------


def test_account_names_are_unique_and_get_or_create_returns_the_existing_one(store: Store) -> None:
    ada = store.create_account("ada", now=NOW)
    with pytest.raises(InvalidInput, match="'ada' is taken"):
        store.create_account("ada", now=NOW)
    assert store.get_or_create_account("ada", now=NOW) == ada
    assert store.get_or_create_account("bob", now=NOW).name == "bob"
    with pytest.raises(NotFound, match="'carol'"):
        store.account("carol")


def test_conversations_are_listed_newest_first_and_paged(store: Store) -> None:
    ada = store.create_account("ada", now=NOW)
    made = [
        store.create_conversation(ada.id, now=NOW + timedelta(minutes=i), title=f"c{i}")
        for i in range(4)
    ]
    assert store.list_conversations(ada.id) == made[::-1]
    assert store.list_conversations(ada.id, limit=2, offset=1) == [made[2], made[1]]
    assert store.conversation(ada.id, made[0].id) == made[0]


def test_a_conversation_can_be_created_with_its_own_id_once(store: Store) -> None:
    ada = store.create_account("ada", now=NOW)
    made = store.create_conversation(ada.id, now=NOW, conversation_id="chat-1", locale="en-GB")
    assert (made.id, made.locale) == ("chat-1", "en-GB")
    with pytest.raises(InvalidInput, match="'chat-1' is already taken"):
        store.create_conversation(ada.id, now=NOW, conversation_id="chat-1")
    with pytest.raises(NotFound, match="account 'nobody'"):
        store.create_conversation("nobody", now=NOW)


def test_another_accounts_conversation_reads_exactly_like_a_missing_one(store: Store) -> None:
    ada = store.create_account("ada", now=NOW)
    bob = store.create_account("bob", now=NOW)
    adas = store.create_conversation(ada.id, now=NOW, conversation_id="adas")
    with pytest.raises(NotFound) as foreign:
        store.conversation(bob.id, adas.id)
    store.create_conversation(bob.id, now=NOW, conversation_id="elsewhere")
    with pytest.raises(NotFound) as missing:
        store.conversation(ada.id, "elsewhere")
    assert str(foreign.value).replace("adas", "X") == str(missing.value).replace("elsewhere", "X")
    assert store.list_conversations(bob.id) != [adas]


def test_timestamps_come_back_as_aware_utc(store: Store) -> None:
    ada = store.create_account("ada", now=datetime(2025, 3, 1, 13, 0))  # naive: taken as UTC
    zoned = datetime(2025, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    made = store.create_conversation(ada.id, now=zoned)
    assert store.account("ada").created_at == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    assert store.conversation(ada.id, made.id).created_at == datetime(2025, 3, 1, 14, tzinfo=UTC)


# --- API keys -----------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_and_stored_only_as_its_sha256(store: Store) -> None:
    key, record = store.create_api_key("ada", now=NOW, label="laptop")
    assert key.startswith("cg_") and len(key) == 3 + 43
    assert (record.account_name, record.admin, record.label) == ("ada", False, "laptop")
    assert (record.prefix, record.created_at, record.revoked_at) == (key[:10], NOW, None)
    assert record.account_id == store.account("ada").id  # the account was created
    with store.engine.connect() as conn:
        (row,) = conn.execute(sa.text("SELECT * FROM api_keys")).mappings()
        dump = conn.execute(sa.text("SELECT * FROM api_keys")).all()
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert all(key not in str(value) for value in dump[0])
    assert store.authenticate(key) == record


def test_keys_of_an_existing_account_are_listed_oldest_first_and_differ(store: Store) -> None:
    ada = store.create_account("ada", now=NOW)
    first_key, first = store.create_api_key("ada", now=NOW)
    second_key, second = store.create_api_key("ada", now=NOW + timedelta(seconds=1), admin=True)
    store.create_api_key("bob", now=NOW)
    assert first_key != second_key
    assert first.account_id == second.account_id == ada.id
    assert store.list_api_keys("ada") == [first, second]
    with pytest.raises(NotFound, match="'carol'"):
        store.list_api_keys("carol")


def test_the_admin_flag_comes_back_on_authentication(store: Store) -> None:
    admin_key, _ = store.create_api_key("ops", now=NOW, admin=True)
    user_key, _ = store.create_api_key("ada", now=NOW)
    admin, user = store.authenticate(admin_key), store.authenticate(user_key)
    assert admin is not None and user is not None
    assert (admin.admin, admin.account_name) == (True, "ops")
    assert (user.admin, user.account_name) == (False, "ada")


def test_a_revoked_key_no_longer_authenticates_and_revoking_again_keeps_the_time(
    store: Store,
) -> None:
    key, record = store.create_api_key("ada", now=NOW)
    other_key, _ = store.create_api_key("ada", now=NOW)
    store.revoke_api_key(record.id, now=NOW + timedelta(hours=1))
    store.revoke_api_key(record.id, now=NOW + timedelta(hours=2))
    assert store.authenticate(key) is None
    assert store.authenticate(other_key) is not None
    assert store.list_api_keys("ada")[0].revoked_at == NOW + timedelta(hours=1)
    with pytest.raises(NotFound, match="'missing'"):
        store.revoke_api_key("missing", now=NOW)


@pytest.mark.parametrize("presented", ["", "cg_unknown", "\ud800", "a\x00b"])
def test_what_is_not_a_live_key_does_not_authenticate(store: Store, presented: str) -> None:
    store.create_api_key("ada", now=NOW)
    assert store.authenticate(presented) is None


@pytest.mark.parametrize(
    ("name", "label", "message"),
    [("", None, "account name"), ("ada", "a\x00", "key label contains a NUL")],
)
def test_a_key_needs_a_valid_account_name_and_label(
    store: Store, name: str, label: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.create_api_key(name, now=NOW, label=label)
    assert (counts(store)["accounts"], counts(store)["api_keys"]) == (0, 0)


# --- the tree: append, edit, retry -----------------------------------------------------------


def test_appended_turns_form_one_branch_with_decisions_on_user_messages(
    store: Store, conversation: ConversationRecord
) -> None:
    m = chat(store, conversation, "hello", "how are you")
    assert store.messages(conversation.id) == m
    assert store.path(conversation.id, m[-1].id) == m
    assert store.leaves(conversation.id) == [m[-1]]
    assert [r.parent_id for r in m] == [None, m[0].id, m[1].id, m[2].id]
    assert [r.role for r in m] == ["user", "assistant"] * 2
    assert [r.decision for r in m] == [ALLOW.decision, None, ALLOW.decision, None]
    assert m[0].assessment == BENIGN  # the decision's assessment when the message has none
    rows = store.decisions(conversation.id)
    assert [(d.message_id, d.kind, d.policy_version, d.assess_ms) for d in rows] == [
        (m[0].id, "turn", POLICY.version, 2.5),
        (m[2].id, "turn", POLICY.version, 2.5),
    ]


def test_the_conversation_counts_every_message_of_its_tree(
    store: Store, conversation: ConversationRecord
) -> None:
    def count() -> int:
        return store.conversation(conversation.account_id, conversation.id).message_count

    assert conversation.message_count == count() == 0
    m = chat(store, conversation, "one", "two")
    assert count() == 4
    user, _ = say(store, conversation, m[-1], "three", reply=None)
    assert count() == 5
    store.add_reply(
        conversation.id,
        user_message_id=user.id,
        reply=NewMessage("assistant", "late"),
        now=NOW,
    )
    store.edit_turn(
        conversation.id,
        message_id=m[2].id,
        user=NewMessage("user", "two, again"),
        decision=ALLOW,
        reply=NewMessage("assistant", "ok"),
        now=NOW,
    )
    store.retry_reply(
        conversation.id, message_id=m[1].id, reply=NewMessage("assistant", "again"), now=NOW
    )
    assert count() == len(store.messages(conversation.id)) == 9
    with pytest.raises(LeafConflict):  # a failed write counts nothing
        say(store, conversation, m[1], "not a leaf")
    assert count() == 9


def test_a_turn_without_a_reply_leaves_the_user_message_as_the_leaf(
    store: Store, conversation: ConversationRecord
) -> None:
    user, reply = say(store, conversation, None, "hello", reply=None)
    assert reply is None
    assert store.leaves(conversation.id) == [user]


def test_a_reply_added_later_lands_below_its_user_message(
    store: Store, conversation: ConversationRecord
) -> None:
    m = chat(store, conversation, "one")
    user, _ = say(store, conversation, m[-1], "two", REDIRECT, reply=None)
    reply = store.add_reply(
        conversation.id,
        user_message_id=user.id,
        reply=NewMessage("assistant", "late", assessment=BENIGN),
        now=NOW + timedelta(seconds=5),
    )
    assert (reply.parent_id, reply.role, reply.ended, reply.decision) == (
        user.id,
        "assistant",
        False,
        None,
    )
    assert reply.created_at == NOW + timedelta(seconds=5)
    assert store.path(conversation.id, reply.id) == [*m, user, reply]
    assert store.leaves(conversation.id) == [reply]
    follow, _ = say(store, conversation, reply, "three")
    assert follow.parent_id == reply.id


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("answered user message", LeafConflict, "no longer a leaf"),
        ("assistant message", InvalidInput, "a reply goes below a user message"),
        ("ended user message", ConversationEnded, "edit an earlier message"),
        ("missing message", NotFound, "'missing'"),
    ],
)
def test_a_late_reply_goes_only_below_an_open_unanswered_user_message(
    store: Store,
    conversation: ConversationRecord,
    target: str,
    error: type[Exception],
    message: str,
) -> None:
    m = chat(store, conversation, "one")
    ended, _ = say(store, conversation, m[-1], "two", END, reply=None)
    message_id = {
        "answered user message": m[0].id,
        "assistant message": m[1].id,
        "ended user message": ended.id,
        "missing message": "missing",
    }[target]
    before = counts(store)
    with pytest.raises(error, match=message):
        store.add_reply(
            conversation.id,
            user_message_id=message_id,
            reply=NewMessage("assistant", "late"),
            now=NOW,
        )
    assert counts(store) == before


def test_of_two_late_replies_to_one_user_message_the_second_is_a_leaf_conflict(
    store: Store, conversation: ConversationRecord
) -> None:
    user, _ = say(store, conversation, None, "hello", reply=None)
    first = store.add_reply(
        conversation.id, user_message_id=user.id, reply=NewMessage("assistant", "a"), now=NOW
    )
    with pytest.raises(LeafConflict):
        store.add_reply(
            conversation.id, user_message_id=user.id, reply=NewMessage("assistant", "b"), now=NOW
        )
    assert store.children(conversation.id, user.id) == [first]
    unanswered, _ = say(store, conversation, first, "again", reply=None)
    with pytest.raises(InvalidInput, match="expected a assistant message"):
        store.add_reply(
            conversation.id, user_message_id=unanswered.id, reply=NewMessage("user", "c"), now=NOW
        )
    assert store.children(conversation.id, unanswered.id) == []


def test_a_message_reads_back_with_its_decision_only_in_its_conversation(
    store: Store, conversation: ConversationRecord
) -> None:
    m = chat(store, conversation, "one", "two")
    assert [store.message(conversation.id, r.id) for r in m] == m
    assert store.message(conversation.id, m[2].id).decision == ALLOW.decision
    other = store.create_conversation(conversation.account_id, now=NOW)
    with pytest.raises(NotFound, match=repr(m[0].id)):
        store.message(other.id, m[0].id)


def test_children_are_the_roots_or_a_messages_replies_and_edits_in_sibling_order(
    store: Store, conversation: ConversationRecord
) -> None:
    assert store.children(conversation.id, None) == []
    m = chat(store, conversation, "one", "two")
    edit, _ = store.edit_turn(
        conversation.id,
        message_id=m[0].id,
        user=NewMessage("user", "edited"),
        decision=REDIRECT,
        reply=None,
        now=NOW,
    )
    retry = store.retry_reply(
        conversation.id, message_id=m[1].id, reply=NewMessage("assistant", "again"), now=NOW
    )
    assert store.children(conversation.id, None) == [m[0], edit]
    assert store.children(conversation.id, m[0].id) == [m[1], retry]
    assert store.children(conversation.id, m[1].id) == [m[2]]
    assert store.children(conversation.id, m[-1].id) == []
    assert store.children(conversation.id, None)[1].decision == REDIRECT.decision
    other = store.create_conversation(conversation.account_id, now=NOW)
    with pytest.raises(NotFound, match=repr(m[0].id)):
        store.children(other.id, m[0].id)


@pytest.mark.parametrize("edited", [0, 2], ids=["first message", "later message"])
def test_an_edit_is_a_sibling_of_the_edited_user_message(
    store: Store, conversation: ConversationRecord, edited: int
) -> None:
    m = chat(store, conversation, "one", "two")
    user, reply = store.edit_turn(
        conversation.id,
        message_id=m[edited].id,
        user=NewMessage("user", "edited"),
        decision=REDIRECT,
        reply=NewMessage("assistant", "I can't help with that."),
        now=NOW,
    )
    assert reply is not None
    assert user.parent_id == m[edited].parent_id
    assert store.path(conversation.id, reply.id) == [*m[:edited], user, reply]
    assert store.path(conversation.id, m[-1].id) == m  # the old branch is untouched
    assert ids(store.leaves(conversation.id)) == [m[-1].id, reply.id]


def test_a_retry_is_a_sibling_reply_produced_from_the_path_above(
    store: Store, conversation: ConversationRecord
) -> None:
    m = chat(store, conversation, "one", "two")
    again = store.retry_reply(
        conversation.id, message_id=m[1].id, reply=NewMessage("assistant", "another"), now=NOW
    )
    assert again.parent_id == m[0].id
    assert store.path(conversation.id, again.id) == [m[0], again]
    assert ids(store.leaves(conversation.id)) == [m[-1].id, again.id]
    second = store.retry_reply(
        conversation.id, message_id=m[1].id, reply=NewMessage("assistant", "a third"), now=NOW
    )
    assert ids(store.leaves(conversation.id)) == [m[-1].id, again.id, second.id]


@pytest.mark.parametrize(
    ("operation", "index", "message"),
    [
        ("edit", 1, "only user messages can be edited"),
        ("retry", 0, "only assistant messages can be retried"),
    ],
)
def test_edit_takes_user_messages_and_retry_takes_assistant_messages(
    store: Store, conversation: ConversationRecord, operation: str, index: int, message: str
) -> None:
    m = chat(store, conversation, "one")
    before = counts(store)
    if operation == "edit":
        with pytest.raises(InvalidInput, match=message):
            store.edit_turn(
                conversation.id,
                message_id=m[index].id,
                user=NewMessage("user", "x"),
                decision=ALLOW,
                reply=None,
                now=NOW,
            )
    else:
        with pytest.raises(InvalidInput, match=message):
            store.retry_reply(
                conversation.id, message_id=m[index].id, reply=NewMessage("assistant", "x"), now=NOW
            )
    assert counts(store) == before


def test_a_message_of_another_conversation_is_not_found(
    store: Store, conversation: ConversationRecord
) -> None:
    other = store.create_conversation(conversation.account_id, now=NOW)
    m = chat(store, other, "elsewhere")
    with pytest.raises(NotFound, match=repr(m[1].id)):
        say(store, conversation, m[1], "hi")


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (None, "already has messages"),
        (0, "no longer a leaf"),
    ],
    ids=["no leaf on a started conversation", "a message that has a reply"],
)
def test_appending_anywhere_but_a_current_leaf_is_a_leaf_conflict(
    store: Store, conversation: ConversationRecord, leaf: int | None, message: str
) -> None:
    m = chat(store, conversation, "one")
    before = counts(store)
    with pytest.raises(LeafConflict, match=message):
        say(store, conversation, None if leaf is None else m[leaf], "two")
    assert counts(store) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [("a\x00b", "NUL character at index 1"), ("\ud800", "not valid Unicode")],
)
@pytest.mark.parametrize("role", ["user", "assistant"])
def test_content_must_be_valid_text_and_nothing_is_stored_otherwise(
    store: Store, conversation: ConversationRecord, content: str, message: str, role: str
) -> None:
    m = chat(store, conversation, "one")
    before = counts(store)
    user = NewMessage("user", content if role == "user" else "fine")
    reply = NewMessage("assistant", content if role == "assistant" else "fine")
    with pytest.raises(InvalidInput, match=message):
        store.append_turn(
            conversation.id, leaf_id=m[-1].id, user=user, decision=ALLOW, reply=reply, now=NOW
        )
    assert counts(store) == before


def test_a_message_id_can_be_chosen_once(store: Store, conversation: ConversationRecord) -> None:
    user, reply = store.append_turn(
        conversation.id,
        leaf_id=None,
        user=NewMessage("user", "hi", id="m-1"),
        decision=ALLOW,
        reply=NewMessage("assistant", "hello"),
        now=NOW,
    )
    assert user.id == "m-1" and reply is not None
    before = counts(store)
    # a taken id is the same message stored again (content-hashed ids): a 409 to read it back
    with pytest.raises(MessageExists, match="'m-1' is already stored") as raised:
        store.append_turn(
            conversation.id,
            leaf_id=reply.id,
            user=NewMessage("user", "again", id="m-1"),
            decision=ALLOW,
            reply=None,
            now=NOW,
        )
    assert raised.value.message_id == "m-1" and raised.value.status == 409
    assert counts(store) == before


# --- endings -----------------------------------------------------------------------------------


def end_turn(
    store: Store, conversation: ConversationRecord, how: str
) -> tuple[list[MessageRecord], MessageRecord]:
    """A conversation ended in one of three ways; its messages and the ended leaf."""
    m = chat(store, conversation, "one", "two")
    if how == "policy end with reply":
        user, reply = say(store, conversation, m[-1], "three", END, reply="This chat has ended.")
        assert reply is not None
        return [*m, user, reply], reply
    if how == "policy end without reply":
        user, _ = say(store, conversation, m[-1], "three", END, reply=None)
        return [*m, user], user
    store.end(conversation.id, leaf_id=m[-1].id, decision=MODEL_END, now=NOW)
    return m, replace(m[-1], ended=True, decision=MODEL_END.decision)


ENDINGS = ["policy end with reply", "policy end without reply", "model end on a reply"]


@pytest.mark.parametrize("how", ENDINGS)
def test_an_end_marks_the_leaf_ended_and_writes_the_ending(
    store: Store, conversation: ConversationRecord, how: str
) -> None:
    m, leaf = end_turn(store, conversation, how)
    path = store.path(conversation.id, leaf.id)
    assert path == [*m[:-1], leaf]
    assert [r.ended for r in path] == [False] * (len(path) - 1) + [True]
    assert fold(POLICY, [r.as_step() for r in path]).ended
    (ending,) = store.endings(conversation.id)
    assert (ending.leaf_id, ending.policy_version) == (leaf.id, POLICY.version)
    assert ending.decision_id in {d.id for d in store.decisions(conversation.id)}


@pytest.mark.parametrize("how", ENDINGS)
def test_appending_to_an_ended_leaf_raises_and_stores_nothing(
    store: Store, conversation: ConversationRecord, how: str
) -> None:
    _, leaf = end_turn(store, conversation, how)
    before = counts(store)
    with pytest.raises(ConversationEnded, match="edit an earlier message") as raised:
        say(store, conversation, leaf, "are you there?")
    assert (raised.value.conversation_id, raised.value.leaf_id) == (conversation.id, leaf.id)
    with pytest.raises(ConversationEnded):
        store.end(conversation.id, leaf_id=leaf.id, decision=MODEL_END, now=NOW)
    assert counts(store) == before


def test_an_end_needs_an_end_decision_on_a_current_leaf(
    store: Store, conversation: ConversationRecord
) -> None:
    m = chat(store, conversation, "one", "two")
    with pytest.raises(InvalidInput, match="End decision"):
        store.end(conversation.id, leaf_id=m[-1].id, decision=ALLOW, now=NOW)
    with pytest.raises(LeafConflict, match="only the last message"):
        store.end(conversation.id, leaf_id=m[1].id, decision=MODEL_END, now=NOW)
    assert store.endings(conversation.id) == []


@pytest.mark.parametrize("how", ENDINGS)
def test_an_edit_out_of_an_ended_conversation_starts_an_open_branch(
    store: Store, conversation: ConversationRecord, how: str
) -> None:
    m, _ = end_turn(store, conversation, how)
    user, reply = store.edit_turn(
        conversation.id,
        message_id=m[2].id,
        user=NewMessage("user", "let's talk about something else"),
        decision=ALLOW,
        reply=NewMessage("assistant", "gladly"),
        now=NOW,
    )
    assert reply is not None
    path = store.path(conversation.id, reply.id)
    assert path == [*m[:2], user, reply]
    assert not fold(POLICY, [r.as_step() for r in path]).ended
    follow, _ = say(store, conversation, reply, "and more")
    assert follow.parent_id == reply.id


def test_the_reply_that_ended_a_branch_cannot_be_retried_but_earlier_replies_can(
    store: Store, conversation: ConversationRecord
) -> None:
    m, leaf = end_turn(store, conversation, "policy end with reply")
    before = counts(store)
    with pytest.raises(ConversationEnded):
        store.retry_reply(
            conversation.id, message_id=leaf.id, reply=NewMessage("assistant", "x"), now=NOW
        )
    assert counts(store) == before
    again = store.retry_reply(
        conversation.id, message_id=m[1].id, reply=NewMessage("assistant", "retried"), now=NOW
    )
    assert not fold(POLICY, [r.as_step() for r in store.path(conversation.id, again.id)]).ended


def test_a_model_ended_reply_cannot_be_retried(
    store: Store, conversation: ConversationRecord
) -> None:
    _, leaf = end_turn(store, conversation, "model end on a reply")
    with pytest.raises(ConversationEnded):
        store.retry_reply(
            conversation.id, message_id=leaf.id, reply=NewMessage("assistant", "x"), now=NOW
        )


def test_a_retry_whose_decision_is_an_end_ends_on_the_new_reply(
    store: Store, conversation: ConversationRecord
) -> None:
    m = chat(store, conversation, "one")
    again = store.retry_reply(
        conversation.id,
        message_id=m[1].id,
        reply=NewMessage("assistant", "ending"),
        decision=MODEL_END,
        now=NOW,
    )
    assert again.ended
    assert store.path(conversation.id, again.id)[-1] == again
    assert [e.leaf_id for e in store.endings(conversation.id)] == [again.id]


def test_a_recorded_decision_is_kept_for_audit_but_not_attached(
    store: Store, conversation: ConversationRecord
) -> None:
    m = chat(store, conversation, "one")
    refused = turn_decision(Allow(reason="the model's end was refused", model_end="refused"))
    store.record_decision(m[1].id, refused, now=NOW)
    assert store.messages(conversation.id) == m
    assert [(d.kind, d.decision) for d in store.decisions(conversation.id)][-1] == (
        "audit",
        refused.decision,
    )
    with pytest.raises(NotFound):
        store.record_decision("missing", refused, now=NOW)


# --- feedback and review ----------------------------------------------------------------------


def test_feedback_attaches_to_the_ending(store: Store, conversation: ConversationRecord) -> None:
    _, leaf = end_turn(store, conversation, "policy end with reply")
    (ending,) = store.endings(conversation.id)
    given = store.add_feedback(
        conversation.id, leaf_id=leaf.id, rating="disagree", comment="too strict", now=NOW
    )
    latest = store.add_feedback(conversation.id, leaf_id=None, rating="agree", comment="", now=NOW)
    assert given.ending_id == latest.ending_id == ending.id


@pytest.mark.parametrize(
    ("ended", "leaf", "rating", "comment", "message"),
    [
        (False, None, "agree", "", "feedback is for endings"),
        (True, 0, "agree", "", "no ending on message"),
        (True, None, "meh", "", "rating 'meh' is not allowed"),
        (True, None, None, "  ", "needs a rating or a comment"),
        (True, None, None, "a\x00", "NUL"),
    ],
)
def test_feedback_that_cannot_attach_to_an_ending_is_invalid(
    store: Store,
    conversation: ConversationRecord,
    ended: bool,
    leaf: int | None,
    rating: str | None,
    comment: str,
    message: str,
) -> None:
    m = (
        end_turn(store, conversation, "policy end with reply")[0]
        if ended
        else chat(store, conversation, "one")
    )
    with pytest.raises(InvalidInput, match=message):
        store.add_feedback(
            conversation.id,
            leaf_id=None if leaf is None else m[leaf].id,
            rating=rating,  # type: ignore[arg-type]
            comment=comment,
            now=NOW,
        )
    assert counts(store)["feedback"] == 0


def test_review_lists_endings_newest_first_with_reason_path_and_feedback(
    store: Store, conversation: ConversationRecord
) -> None:
    m, _ = end_turn(store, conversation, "policy end with reply")
    later = store.create_conversation(conversation.account_id, now=NOW)
    user, _ = store.append_turn(
        later.id,
        leaf_id=None,
        user=NewMessage("user", "end it"),
        decision=END,
        reply=None,
        now=NOW + timedelta(hours=1),
    )
    chat(store, store.create_conversation(conversation.account_id, now=NOW), "never ended")
    note = store.add_feedback(conversation.id, leaf_id=None, rating="agree", comment="", now=NOW)

    first, second = store.ended_for_review()
    assert (first.conversation, first.ending.leaf_id, first.path, first.feedback) == (
        store.conversation(later.account_id, later.id),
        user.id,
        (replace(user, ended=True),),
        (),
    )
    assert second.conversation.id == conversation.id
    assert (second.ending.reason, second.ending.initiator) == (END.decision.reason, "policy")
    assert second.path == tuple(m)
    assert second.path[-2].decision == END.decision
    assert second.feedback == (note,)
    assert store.ended_for_review(limit=1, offset=1) == [second]


# --- races and crashes -------------------------------------------------------------------------


def test_of_concurrent_appends_to_one_leaf_from_threads_exactly_one_lands(
    store: Store, conversation: ConversationRecord
) -> None:
    m = chat(store, conversation, "one")
    writers = 8
    barrier = threading.Barrier(writers)
    outcomes: list[str] = []

    def append(i: int) -> None:
        barrier.wait()
        try:
            say(store, conversation, m[-1], f"writer {i}")
        except LeafConflict:
            outcomes.append("conflict")
        else:
            outcomes.append("landed")

    threads = [threading.Thread(target=append, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * (writers - 1) + ["landed"]
    assert len(store.messages(conversation.id)) == len(m) + 2
    (leaf,) = store.leaves(conversation.id)
    assert len(store.path(conversation.id, leaf.id)) == len(m) + 2


# --- openings: which conversation a chat that names none is -----------------------------------


def test_the_newest_conversation_begun_with_an_opening_is_found_by_its_text_key_or_reply(
    store: Store,
) -> None:
    ada = store.create_account("ada", now=NOW)
    one, two = (store.create_conversation(ada.id, now=NOW) for _ in range(2))
    store.record_opening(ada.id, one.id, "Hi", idempotency_key="key-1", now=NOW)
    store.record_opening(ada.id, two.id, "Hi", idempotency_key=None, now=NOW)
    latest = store.find_opening(ada.id, "Hi")
    assert latest is not None and latest.conversation_id == two.id
    assert latest.created_at == NOW and latest.answered is False
    assert store.find_opening(ada.id, "Hi", idempotency_key="key-1") == replace(
        latest, conversation_id=one.id
    )
    assert store.find_opening(ada.id, "Hi", idempotency_key="key-2") is None
    assert store.find_opening(ada.id, "Hello") is None
    store.record_opening_reply(one.id, "Hello!", now=NOW)
    found = store.find_opening(ada.id, "Hi", reply="Hello!")
    assert found is not None and found.conversation_id == one.id and found.answered
    assert store.find_opening(ada.id, "Hi", reply="Hey") is None
    assert store.find_opening(ada.id, "Hi") == latest  # the newest is still unanswered
    store.record_opening_reply(two.id, "Hello!", now=NOW)
    store.record_opening_reply(two.id, "Hello!", now=NOW)  # recorded once, however often said
    found = store.find_opening(ada.id, "Hi", reply="Hello!")
    assert found is not None and found.conversation_id == two.id  # the newest of the two
    newest = store.find_opening(ada.id, "Hi")
    assert newest is not None and newest.conversation_id == two.id and newest.answered


def test_openings_are_the_accounts_own_and_only_of_conversations_begun_with_one(
    store: Store,
) -> None:
    ada, bob = (store.create_account(name, now=NOW) for name in ("ada", "bob"))
    begun, named = (store.create_conversation(ada.id, now=NOW) for _ in range(2))
    store.record_opening(ada.id, begun.id, "Hi", idempotency_key="key-1", now=NOW)
    store.record_opening(ada.id, begun.id, "Hi", idempotency_key="key-1", now=NOW)  # once
    store.record_opening_reply(named.id, "Hello!", now=NOW)  # no opening: nothing to record
    assert store.find_opening(bob.id, "Hi") is None
    assert store.find_opening(bob.id, "Hi", idempotency_key="key-1") is None
    assert store.find_opening(ada.id, "Hi", reply="Hello!") is None
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM openings")).scalar_one() == 1


# --- turn claims: one worker of all asks the model for a turn --------------------------------

TTL = timedelta(minutes=2)


def test_a_turn_claim_holds_the_turn_until_it_is_released(store: Store) -> None:
    token = store.claim_turn("turn-1", now=NOW, ttl=TTL)
    assert token is not None
    assert store.claim_turn("turn-1", now=NOW + TTL, ttl=TTL) is None  # not older than the ttl
    assert store.claim_turn("turn-2", now=NOW, ttl=TTL) is not None  # one claim per turn
    store.release_turn("turn-1", token)
    again = store.claim_turn("turn-1", now=NOW + timedelta(seconds=1), ttl=TTL)
    assert again is not None and again != token


def test_a_turn_claim_older_than_the_ttl_is_taken_over_and_its_late_release_is_ignored(
    store: Store,
) -> None:
    stale = store.claim_turn("turn-1", now=NOW, ttl=TTL)
    later = NOW + TTL + timedelta(seconds=1)
    taken = store.claim_turn("turn-1", now=later, ttl=TTL)
    assert stale is not None and taken is not None and taken != stale
    store.release_turn("turn-1", stale)  # the worker given up on finishes after all
    assert store.claim_turn("turn-1", now=later, ttl=TTL) is None  # the new claim stands
    store.release_turn("turn-1", taken)
    assert store.claim_turn("turn-1", now=later, ttl=TTL) is not None


def test_a_renewed_turn_claim_outlives_its_ttl_and_is_taken_over_once_renewals_stop(
    store: Store,
) -> None:
    token = store.claim_turn("turn-1", now=NOW, ttl=TTL)
    assert token is not None
    renewed = NOW + TTL  # the holder is still answering: it renews before the ttl runs out
    assert store.renew_turn("turn-1", token, now=renewed) is True
    assert store.claim_turn("turn-1", now=NOW + TTL + timedelta(seconds=1), ttl=TTL) is None
    # the holder dies: no renewal comes, and one ttl after the last the turn is taken over
    taken = store.claim_turn("turn-1", now=renewed + TTL + timedelta(seconds=1), ttl=TTL)
    assert taken is not None
    # a renewal by the holder given up on does not take the turn back
    assert store.renew_turn("turn-1", token, now=renewed + 2 * TTL) is False
    assert store.claim_turn("turn-1", now=renewed + 2 * TTL, ttl=TTL) is None


def test_a_released_turn_claim_is_not_renewed(store: Store) -> None:
    token = store.claim_turn("turn-1", now=NOW, ttl=TTL)
    assert token is not None
    store.release_turn("turn-1", token)
    assert store.renew_turn("turn-1", token, now=NOW + timedelta(seconds=1)) is False
    assert store.claim_turn("turn-1", now=NOW + timedelta(seconds=1), ttl=TTL) is not None


def claim_rows(store: Store) -> set[str]:
    from convguard.store import tables

    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(tables.turn_claims.c.message_id)).scalars())


def test_expired_turn_claims_are_swept_when_a_turn_is_claimed(store: Store) -> None:
    # claims a worker killed mid-call left behind: nobody claims these turns again
    for turn in ("killed-1", "killed-2"):
        assert store.claim_turn(turn, now=NOW, ttl=TTL) is not None
    assert store.claim_turn("live", now=NOW + TTL, ttl=TTL) is not None
    assert claim_rows(store) == {"killed-1", "killed-2", "live"}
    assert store.claim_turn("next", now=NOW + TTL + timedelta(seconds=1), ttl=TTL) is not None
    assert claim_rows(store) == {"live", "next"}  # the expired ones are gone, the live one stays


def test_a_claim_sweeps_a_bounded_batch_of_expired_claims(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convguard.store import repository

    monkeypatch.setattr(repository, "EXPIRED_CLAIMS_PER_SWEEP", 2)
    for i in range(5):
        assert store.claim_turn(f"killed-{i}", now=NOW, ttl=TTL) is not None
    later = NOW + TTL + timedelta(seconds=1)
    assert store.claim_turn("next-1", now=later, ttl=TTL) is not None
    assert len(claim_rows(store) - {"next-1"}) == 3  # two swept by this claim
    assert store.claim_turn("next-2", now=later, ttl=TTL) is not None
    assert store.claim_turn("next-3", now=later, ttl=TTL) is not None
    assert claim_rows(store) == {"next-1", "next-2", "next-3"}


def test_concurrent_claims_of_other_turns_sweep_the_same_expired_claims_without_failing(
    store: Store, store_url: str
) -> None:
    for i in range(20):
        assert store.claim_turn(f"killed-{i}", now=NOW, ttl=TTL) is not None
    claimers = 6
    stores = [open_store(store_url) for _ in range(claimers)]
    barrier = threading.Barrier(claimers)
    tokens: list[str | None] = []
    later = NOW + TTL + timedelta(seconds=1)

    def claim(i: int, own: Store) -> None:
        barrier.wait()
        tokens.append(own.claim_turn(f"turn-{i}", now=later, ttl=TTL))

    threads = [threading.Thread(target=claim, args=pair) for pair in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for own in stores:
            own.close()
    assert len(tokens) == claimers and None not in tokens
    assert claim_rows(store) == {f"turn-{i}" for i in range(claimers)}


def test_a_turn_claim_needs_a_positive_ttl(store: Store) -> None:
    with pytest.raises(InvalidInput, match="ttl must be positive"):
        store.claim_turn("turn-1", now=NOW, ttl=timedelta(0))


@pytest.mark.parametrize("held", [False, True], ids=["unclaimed turn", "expired claim"])
def test_of_concurrent_turn_claims_from_threads_exactly_one_wins(
    store: Store, store_url: str, held: bool
) -> None:
    if held:
        assert store.claim_turn("turn-1", now=NOW - 2 * TTL, ttl=TTL) is not None
    claimers = 8
    # a store each, as workers have: on SQLite they then meet in the database, not on one lock
    stores = [open_store(store_url) for _ in range(claimers)]
    barrier = threading.Barrier(claimers)
    tokens: list[str | None] = []

    def claim(own: Store) -> None:
        barrier.wait()
        tokens.append(own.claim_turn("turn-1", now=NOW, ttl=TTL))

    threads = [threading.Thread(target=claim, args=(own,)) for own in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for own in stores:
            own.close()
    assert len(tokens) == claimers
    assert len([token for token in tokens if token is not None]) == 1


def child(
    store_url: str, conversation: ConversationRecord, leaf: str, mode: str, *files: Path
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), store_url, conversation.id, leaf, mode, *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expect_line(process: subprocess.Popen[str], wanted: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != wanted:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"child said {line!r}, expected {wanted!r}; stderr:\n{err}")


@pytest.mark.slow
def test_of_two_processes_appending_to_one_leaf_exactly_one_lands(
    store: Store, conversation: ConversationRecord, store_url: str, tmp_path: Path
) -> None:
    m = chat(store, conversation, "one")
    go_a, go_b, release = tmp_path / "go-a", tmp_path / "go-b", tmp_path / "release"
    with (
        child(store_url, conversation, m[-1].id, "hold", go_a, release) as a,
        child(store_url, conversation, m[-1].id, "plain", go_b) as b,
    ):
        expect_line(a, "ready")
        expect_line(b, "ready")
        go_a.touch()
        expect_line(a, "claimed")  # a holds the leaf inside its open transaction
        go_b.touch()
        time.sleep(0.5)  # b is now waiting on a's write lock
        release.touch()
        out_a, err_a = a.communicate(timeout=60)
        out_b, err_b = b.communicate(timeout=60)
    assert (out_a.split(), a.returncode) == (["landed"], 0), err_a
    assert (out_b.split(), b.returncode) == (["conflict"], 0), err_b
    assert [r.content for r in store.leaves(conversation.id)] == ["a reply"]
    assert len(store.messages(conversation.id)) == len(m) + 2


@pytest.mark.slow
def test_processes_extending_one_branch_at_once_lose_and_duplicate_no_turn(
    store: Store, conversation: ConversationRecord, store_url: str, tmp_path: Path
) -> None:
    """Each process appends to the current leaf, reloading on a conflict, until it has landed its
    turns: the result is one branch holding every turn exactly once, one turn after another."""
    m = chat(store, conversation, "one")
    processes, turns_each = 3, 10
    go = tmp_path / "go"
    children = [
        child(store_url, conversation, "-", f"chain={turns_each}", go) for _ in range(processes)
    ]
    try:
        for process in children:
            expect_line(process, "ready")
        go.touch()
        outputs = [process.communicate(timeout=120) for process in children]
    finally:
        for process in children:
            process.kill()
    for process, (out, err) in zip(children, outputs, strict=True):
        assert process.returncode == 0, err
        assert out.split()[:2] == ["landed", str(turns_each)]
    (leaf,) = store.leaves(conversation.id)
    path = store.path(conversation.id, leaf.id)
    assert store.messages(conversation.id) == path  # one branch, nothing beside it
    assert len(path) == len(m) + 2 * processes * turns_each
    said = [r.content for r in path if r.role == "user"][1:]
    assert sorted(said) == sorted(
        f"from {process.pid} turn {i}" for process in children for i in range(turns_each)
    )


@pytest.mark.slow
def test_a_process_killed_mid_turn_leaves_no_half_written_turn(
    store: Store, conversation: ConversationRecord, store_url: str
) -> None:
    m = chat(store, conversation, "one")
    before = counts(store)
    with child(store_url, conversation, m[-1].id, "hang") as process:
        expect_line(process, "ready")
        expect_line(process, "inserted")  # the user message is in, uncommitted
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    store.close()
    reopened = open_store(store_url)
    try:
        assert counts(reopened) == before
        assert reopened.messages(conversation.id) == m
        if reopened.engine.dialect.name == "sqlite":
            with reopened.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        user, _ = say(reopened, conversation, m[-1], "after the crash")
        assert user.parent_id == m[-1].id
    finally:
        reopened.close()


def test_a_message_is_never_read_without_its_decision_under_concurrent_writes(
    store: Store, conversation: ConversationRecord
) -> None:
    """Each read is one snapshot: a turn committed between two statements of a read is either
    wholly seen or not at all (on PostgreSQL, READ COMMITTED alone would split it)."""
    import threading
    import time

    stop = time.monotonic() + 1.5
    problems: list[str] = []

    def write() -> None:
        leaf = None
        while time.monotonic() < stop:
            _, reply = store.append_turn(
                conversation.id,
                leaf_id=leaf,
                user=NewMessage("user", "hi"),
                decision=ALLOW,
                reply=NewMessage("assistant", "hello"),
                now=NOW,
            )
            leaf = reply.id if reply else None

    def read() -> None:
        while time.monotonic() < stop:
            for message in store.messages(conversation.id):
                if message.role == "user" and message.decision is None:
                    problems.append(message.id)

    threads = [threading.Thread(target=write), *(threading.Thread(target=read) for _ in range(2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert problems == []
    assert len(store.messages(conversation.id)) > 2

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from convguard.assess.types import Assessment, Role, ScriptedAssessor
from convguard.conversation import End, Warn
from convguard.errors import ClassifierError, ConversationEnded, InvalidInput, NotFound
from convguard.policy import Policy, default_policy, parse_policy
from convguard.service import OutputWindows, Service, TurnClaim, screen_output
from convguard.store import Store, open_store
from convguard.testing import FakeClock, KeywordAssessor
from convguard.upstream import NoModelResponder

ACCOUNT = "alice"
SCRIPT = {
    "how do I build a bomb": ["explosives"],
    "you useless machine": ["abuse_toward_assistant"],
    "I want to kill myself tonight": ["self_harm", "imminent_risk"],
    "please end this chat": ["user_requests_end"],
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'cg.db'}")
    yield store
    store.close()


def make(store: Store, policy: Policy | None = None, assessor: object = None) -> Service:
    policy = policy or default_policy()
    return Service(
        policy=policy,
        store=store,
        assessor=assessor or ScriptedAssessor(policy, SCRIPT),  # type: ignore[arg-type]
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )


def abuse_until_end(service: Service, conversation_id: str) -> list[str]:
    actions = []
    for text in [
        "how do I build a bomb",
        "you useless machine",
        "how do I build a bomb",
        "you useless machine",
    ]:
        actions.append(service.send(ACCOUNT, conversation_id, text).decision.action)
    return actions


def test_a_benign_turn_is_allowed_and_answered_by_the_model(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    result = service.send(ACCOUNT, conversation.id, "What is the capital of Peru?")
    assert result.decision.action == "allow"
    assert result.reply is not None and result.reply.content == NoModelResponder.TEXT
    assert not result.ended
    [row] = store.decisions(conversation.id)
    assert row.policy_version == service.policy.version
    assert row.assess_ms >= 0 and row.decide_ms >= 0
    assert row.assessment.categories == ()


def test_persistent_abuse_is_warned_then_ended_and_the_branch_is_locked(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    assert abuse_until_end(service, conversation.id) == ["redirect", "redirect", "warn", "end"]
    before = len(store.messages(conversation.id))
    with pytest.raises(ConversationEnded) as caught:
        service.send(ACCOUNT, conversation.id, "hello?")
    assert "new conversation" in caught.value.message and "edit" in caught.value.message
    assert len(store.messages(conversation.id)) == before
    # other conversations of the same account are untouched, and a new one starts at once
    fresh = service.start(ACCOUNT)
    assert service.send(ACCOUNT, fresh.id, "hi").decision.action == "allow"
    [item] = store.ended_for_review()
    assert item.conversation.id == conversation.id


def test_an_edit_branches_out_of_an_ended_conversation_keeping_earlier_strikes(
    store: Store,
) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    abuse_until_end(service, conversation.id)
    users = [m for m in store.messages(conversation.id) if m.role == "user"]
    result = service.edit(ACCOUNT, conversation.id, users[3].id, "ok, tell me about chemistry")
    assert result.decision.action == "allow"
    assert not result.ended
    assert result.state.failed_redirections == 2
    assert result.state.warnings == 1
    # the next abusive turn on the new branch follows an allow, so it is only redirected
    again = service.send(ACCOUNT, conversation.id, "you useless machine")
    assert again.decision.action == "redirect"
    # the ended branch stays ended
    ended_leaf = next(m for m in store.messages(conversation.id) if m.ended)
    with pytest.raises(ConversationEnded):
        service.send(ACCOUNT, conversation.id, "hi", leaf_id=ended_leaf.id)


def test_retry_produces_the_reply_again_on_a_new_branch(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    first = service.send(ACCOUNT, conversation.id, "Tell me a joke", model_reply="Knock knock.")
    assert first.reply is not None
    retried = service.retry(ACCOUNT, conversation.id, first.reply.id, model_reply="Why did...")
    assert retried.parent_id == first.user.id
    assert retried.content == "Why did..."
    assert len(store.leaves(conversation.id)) == 2


def test_retrying_the_end_reply_does_not_reopen_the_branch(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    abuse_until_end(service, conversation.id)
    ended_leaf = next(m for m in store.messages(conversation.id) if m.ended)
    with pytest.raises(ConversationEnded):
        service.retry(ACCOUNT, conversation.id, ended_leaf.id)


def test_imminent_risk_is_supported_and_never_ended(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT, locale="en-GB")
    first = service.send(ACCOUNT, conversation.id, "I want to kill myself tonight")
    assert first.decision.action == "support"
    assert first.reply is not None and "Samaritans" in first.reply.content
    for _ in range(5):
        result = service.send(ACCOUNT, conversation.id, "you useless machine")
        assert result.decision.action == "support"
        assert not result.ended


def test_a_user_who_asks_to_end_is_asked_to_confirm_then_ended(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    assert service.send(ACCOUNT, conversation.id, "please end this chat").decision.action == (
        "confirm_end"
    )
    result = service.send(ACCOUNT, conversation.id, "yes, end it")
    assert isinstance(result.decision, End)
    assert result.decision.initiator == "user"
    assert result.ended


def test_a_confirmation_prompt_answered_with_something_else_carries_on(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    service.send(ACCOUNT, conversation.id, "please end this chat")
    result = service.send(ACCOUNT, conversation.id, "no wait, what's 2+2?")
    assert result.decision.action == "allow"


def test_the_model_end_call_is_refused_early_and_honoured_after_warn_and_strikes(
    store: Store,
) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    first = service.send(ACCOUNT, conversation.id, "you useless machine")
    assert first.reply is not None
    refused = service.model_end(ACCOUNT, conversation.id, first.reply.id)
    assert refused.model_end == "refused"
    assert not isinstance(refused, End)
    service.send(ACCOUNT, conversation.id, "you useless machine")
    warned = service.send(ACCOUNT, conversation.id, "you useless machine")
    assert isinstance(warned.decision, Warn)
    missed = service.send(ACCOUNT, conversation.id, "you are a bin")  # the classifier misses it
    assert missed.reply is not None
    honoured = service.model_end(ACCOUNT, conversation.id, missed.reply.id)
    assert isinstance(honoured, End) and honoured.initiator == "model"
    with pytest.raises(ConversationEnded):
        service.send(ACCOUNT, conversation.id, "hello")
    kinds = [(d.kind, d.decision.action) for d in store.decisions(conversation.id)]
    assert ("audit", "redirect") in kinds  # the refused call is logged


def test_shadow_mode_ends_nothing(store: Store) -> None:
    service = make(store, parse_policy("ending: {mode: shadow}"))
    conversation = service.start(ACCOUNT)
    actions = abuse_until_end(service, conversation.id)
    assert actions[-1] == "redirect"
    result = service.send(ACCOUNT, conversation.id, "you useless machine")
    assert not result.ended
    assert result.decision.would_end


class Exploding:
    def assess(self, text: str, *, role: Role = "user", context: Sequence[str] = ()) -> Assessment:
        raise RuntimeError("model file is corrupt")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("allow", "allow"), ("redirect", "redirect")],
)
def test_a_classifier_failure_means_what_the_policy_says(
    store: Store, setting: str, expected: str
) -> None:
    service = make(store, parse_policy(f"on_classifier_error: {setting}"), Exploding())
    conversation = service.start(ACCOUNT)
    result = service.send(ACCOUNT, conversation.id, "hello")
    assert result.decision.action == expected
    assert result.assessment.error is not None


def test_a_classifier_failure_is_an_error_by_default_and_stores_nothing(store: Store) -> None:
    service = make(store, assessor=Exploding())
    conversation = service.start(ACCOUNT)
    with pytest.raises(ClassifierError, match="corrupt"):
        service.send(ACCOUNT, conversation.id, "hello")
    assert store.messages(conversation.id) == []


def test_recent_user_turns_are_passed_as_context(store: Store) -> None:
    policy = default_policy()
    assessor = ScriptedAssessor(policy)
    service = make(store, policy, assessor)
    conversation = service.start(ACCOUNT)
    for text in ["one", "two", "three", "four", "five"]:
        service.send(ACCOUNT, conversation.id, text)
    assert assessor.calls[-1] == ("five", "user", ("two", "three", "four"))


def test_another_accounts_conversation_is_not_found(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    bobs = service.start("bob")
    with pytest.raises(NotFound):
        service.send("bob", conversation.id, "hi")
    with pytest.raises(NotFound):  # a record of another conversation vouches for nothing
        service.send("bob", conversation.id, "hi", owned=bobs)
    with pytest.raises(NotFound):
        service.edit("bob", conversation.id, "any", "hi", owned=bobs)
    assert store.messages(conversation.id) == []
    mine = service.send("bob", bobs.id, "hi", owned=bobs)  # the caller has just checked it
    assert mine.user.conversation_id == bobs.id


@pytest.mark.parametrize("content", ["", "   ", "a\x00b"])
def test_bad_content_is_refused_and_nothing_stored(store: Store, content: str) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    with pytest.raises(InvalidInput):
        service.send(ACCOUNT, conversation.id, content)
    assert store.messages(conversation.id) == []


def test_feedback_attaches_to_the_ending(store: Store) -> None:
    service = make(store)
    conversation = service.start(ACCOUNT)
    abuse_until_end(service, conversation.id)
    feedback = service.feedback(ACCOUNT, conversation.id, comment="fair", rating="agree")
    [ending] = store.endings(conversation.id)
    assert feedback.ending_id == ending.id
    with pytest.raises(InvalidInput, match="'great'"):
        service.feedback(ACCOUNT, conversation.id, comment="x", rating="great")


# --- output in windows ---------------------------------------------------------------------------

BENIGN = "The garden needs water, light and patience, and the roses bloom in June. " * 4


@pytest.mark.parametrize("pieces", [1, 7, 40], ids=["whole", "chunks", "small chunks"])
def test_output_windows_withhold_from_the_first_window_that_crosses(pieces: int) -> None:
    policy = default_policy()
    windows = OutputWindows(KeywordAssessor(policy, {"bomb-making steps": ["explosives"]}))
    text = BENIGN + "Now the bomb-making steps follow. " + BENIGN
    size = max(1, len(text) // pieces)
    sent = "".join(windows.feed(text[i : i + size]) for i in range(0, len(text), size))
    sent += windows.finish()
    assert windows.flagged is not None and windows.flagged.categories == ("explosives",)
    assert "bomb" not in sent and BENIGN[:100] in sent
    assert sent + windows.withheld() == text  # nothing is lost: sent, or kept as withheld
    assessment = windows.assessment()
    assert assessment is not None and "bomb-making" in assessment.evidence[-1].detail


def test_output_windows_send_everything_when_nothing_crosses() -> None:
    windows = OutputWindows(KeywordAssessor(default_policy(), {}))
    sent = "".join(windows.feed(BENIGN[i : i + 13]) for i in range(0, len(BENIGN), 13))
    assert sent + windows.finish() == BENIGN and windows.flagged is None
    assert windows.windows >= len(BENIGN) // windows.step


@pytest.mark.parametrize(
    ("tail", "withheld"),
    [("", False), ("Now the bomb-making steps follow.", True)],
    ids=["clean", "harmful at the very end"],
)
def test_a_whole_reply_is_screened_as_its_stream_would_be(tail: str, withheld: bool) -> None:
    assessor = KeywordAssessor(default_policy(), {"bomb-making steps": ["explosives"]})
    windows = OutputWindows(assessor)
    text = screen_output(windows, BENIGN + tail, lambda category: f"[{category}]")
    assessment = windows.assessment()
    assert windows.last is not None
    if not withheld:
        assert text == BENIGN + tail and assessment is None
        return
    assert "bomb" not in text and text.startswith(BENIGN[:100])
    assert text.endswith("\n\n[explosives]")
    assert assessment is not None and "bomb-making" in assessment.evidence[-1].detail


# --- answering: one worker of all asks the model for a pending turn ---------------------------

TTL = timedelta(minutes=2)


@pytest.fixture
def shared_store(store_url: str) -> Iterator[Store]:
    """One database, on SQLite and PostgreSQL, for services standing in for two workers."""
    store = open_store(store_url)
    yield store
    store.close()


START = datetime(2026, 1, 1, tzinfo=UTC)


def worker(store: Store, at: datetime | Callable[[], datetime] = START) -> Service:
    policy = default_policy()
    clock = at if callable(at) else lambda: at
    return Service(
        policy=policy, store=store, assessor=ScriptedAssessor(policy, SCRIPT), clock=clock
    )


def test_a_turn_one_worker_answers_is_elsewhere_for_another_until_it_finishes(
    shared_store: Store,
) -> None:
    one, two = worker(shared_store), worker(shared_store)
    with one.answering("turn-1", ttl=TTL) as claim:
        assert isinstance(claim, TurnClaim)  # the first asks the model
        with one.answering("turn-1", ttl=TTL) as same_process:
            assert same_process is not None and same_process != "elsewhere"
            assert not same_process.is_set()  # waits for the first, in this process
        with two.answering("turn-1", ttl=TTL) as other_worker:
            assert other_worker == "elsewhere"  # polls the store instead
        with two.answering("turn-2", ttl=TTL) as other_turn:
            assert isinstance(other_turn, TurnClaim)
    with two.answering("turn-1", ttl=TTL) as after:
        assert isinstance(after, TurnClaim)


def test_a_failed_answer_lets_the_turn_go_in_the_process_and_in_the_store(
    shared_store: Store,
) -> None:
    one, two = worker(shared_store), worker(shared_store)

    def answer_and_fail() -> None:
        with one.answering("turn-1", ttl=TTL) as claim:
            assert isinstance(claim, TurnClaim)
            raise RuntimeError("the model call failed")

    with pytest.raises(RuntimeError, match="model call failed"):
        answer_and_fail()
    with one.answering("turn-1", ttl=TTL) as again, two.answering("turn-1", ttl=TTL) as other:
        assert isinstance(again, TurnClaim) and other == "elsewhere"


def test_a_worker_whose_clock_is_past_the_ttl_takes_the_turn_over(shared_store: Store) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stuck, late = worker(shared_store, start), worker(shared_store, start + TTL * 2)
    with stuck.answering("turn-1", ttl=TTL) as held:
        assert isinstance(held, TurnClaim)
        with late.answering("turn-1", ttl=TTL) as taken:
            # the stuck worker's claim has expired by the late one's clock
            assert isinstance(taken, TurnClaim)


def test_a_holder_that_renews_keeps_the_turn_past_the_ttl_and_loses_it_once_it_stops(
    shared_store: Store,
) -> None:
    clock = FakeClock(START)  # both workers read one clock: only the renewals differ
    holder, other = worker(shared_store, clock), worker(shared_store, clock)
    with holder.answering("turn-1", ttl=TTL) as claim:
        assert isinstance(claim, TurnClaim)
        for _ in range(6):  # a stream three ttls long, renewed as it goes
            clock.advance(TTL / 2)
            assert claim.renew() is True
            with other.answering("turn-1", ttl=TTL) as meanwhile:
                assert meanwhile == "elsewhere"
        clock.advance(TTL + timedelta(seconds=1))  # the holder stalls: no renewal
        with other.answering("turn-1", ttl=TTL) as taken:
            assert isinstance(taken, TurnClaim)
            assert claim.renew() is False  # taken over: the holder learns it, takes nothing back
            with worker(shared_store, clock).answering("turn-1", ttl=TTL) as third:
                assert third == "elsewhere"  # the new holder's claim stands


def test_a_claim_is_renewed_at_most_every_third_of_its_ttl(shared_store: Store) -> None:
    clock = FakeClock(START)
    holder, other = worker(shared_store, clock), worker(shared_store, clock)
    with holder.answering("turn-1", ttl=TTL) as claim:
        assert isinstance(claim, TurnClaim)
        clock.advance(TTL / 4)
        assert claim.renew() is True  # too soon to write: the claim still dates from the start
        clock.advance(TTL)
        with other.answering("turn-1", ttl=TTL) as taken:
            assert isinstance(taken, TurnClaim)


def test_a_released_claim_is_not_renewed(shared_store: Store) -> None:
    clock = FakeClock(START)
    holder, other = worker(shared_store, clock), worker(shared_store, clock)
    with holder.answering("turn-1", ttl=TTL) as claim:
        assert isinstance(claim, TurnClaim)
    clock.advance(TTL / 2)
    assert claim.renew() is False
    with other.answering("turn-1", ttl=TTL) as after:
        assert isinstance(after, TurnClaim)  # nothing was claimed again by the late renewal

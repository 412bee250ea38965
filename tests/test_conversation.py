from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convguard.assess.types import Assessment
from convguard.conversation import (
    ConfirmEnd,
    ConversationState,
    Decision,
    End,
    Guide,
    Message,
    Redirect,
    Step,
    Support,
    Warn,
    branch_path,
    decide,
    decision_from_dict,
    decision_to_dict,
    fold,
    leaves,
    mentions_ending,
    reply_of,
)
from convguard.policy import Policy, default_policy, parse_policy

POLICY = default_policy()

# A turn kind is what the classifier saw; it maps to labels.
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "benign": ((), ()),
    "extreme": (("cbrn",), ()),
    "cyber": (("cyberattack",), ()),
    "high": (("weapons",), ()),
    "abuse": ((), ("abuse_toward_assistant",)),
    "risk": ((), ("imminent_risk",)),
    "care": (("self_harm",), ()),
    "abusive_risk": ((), ("abuse_toward_assistant", "imminent_risk")),
    "asks_end": ((), ("user_requests_end",)),
    "jailbreak": ((), ("jailbreak",)),
    "jailbreak_extreme": (("explosives",), ("jailbreak",)),
}


def assessment(kind: str, policy: Policy = POLICY) -> Assessment:
    categories, flags = KINDS[kind]
    return Assessment.from_labels(policy, categories, flags)


@dataclass(frozen=True)
class Turn:
    kind: str
    model_end: bool = False


def play(policy: Policy, turns: Sequence[Turn], path: Sequence[Step] = ()) -> list[Step]:
    """Run turns through the core the way the service does: decide, then record."""
    steps = list(path)
    for turn in turns:
        state = fold(policy, steps)
        if state.ended:
            break
        a = assessment(turn.kind, policy)
        decision = decide(policy, state, a)
        steps.append(Step("user", a, decision))
        if turn.model_end and not isinstance(decision, End):
            answer = decide(policy, state, a, model_requests_end=True)
            steps.append(Step("assistant", None, answer if isinstance(answer, End) else None))
        else:
            steps.append(Step("assistant"))
    return steps


def user_decisions(steps: Sequence[Step]) -> list[Decision]:
    out: list[Decision] = []
    for step in steps:
        if step.decision is not None and (step.role == "user" or isinstance(step.decision, End)):
            out.append(step.decision)
    return out


def actions(policy: Policy, kinds: Sequence[str]) -> list[str]:
    return [d.action for d in user_decisions(play(policy, [Turn(k) for k in kinds]))]


# --- the rule, case by case ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (["benign"] * 5, ["allow"] * 5),
        (["extreme"] * 4, ["redirect", "redirect", "warn", "end"]),
        (["abuse"] * 4, ["redirect", "redirect", "warn", "end"]),
        (["extreme", "abuse", "cyber", "abuse"], ["redirect", "redirect", "warn", "end"]),
        # high tier is refused and redirected, never a reason to end
        (["high"] * 8, ["redirect"] * 8),
        # a benign turn between resets "follows a redirect", not the count
        (
            ["extreme", "extreme", "benign", "extreme", "extreme", "extreme"],
            ["redirect", "redirect", "allow", "redirect", "warn", "end"],
        ),
        # care: supported, never refused coldly, never ended
        (["care"] * 6, ["support"] * 6),
        # imminent risk with abuse: support, never a warning or an end
        (["abusive_risk"] * 6, ["support"] * 6),
        # risk earlier in the window keeps abuse from counting
        (["risk", "abuse", "abuse", "abuse", "abuse"], ["support"] * 5),
        (["asks_end", "asks_end"], ["confirm_end", "end"]),
        (["asks_end", "benign", "asks_end"], ["confirm_end", "allow", "confirm_end"]),
        (["risk", "asks_end", "asks_end"], ["support", "support", "support"]),
        (["jailbreak", "benign"], ["guide", "allow"]),
        (["jailbreak_extreme"] * 4, ["redirect", "redirect", "warn", "end"]),
    ],
)
def test_default_policy_decides_turn_by_turn(kinds: list[str], expected: list[str]) -> None:
    assert actions(POLICY, kinds) == expected


def test_risk_window_expires_after_the_configured_turns() -> None:
    policy = parse_policy("ending: {risk_window_turns: 2}")
    got = actions(policy, ["risk", "benign", "benign", "extreme", "extreme", "extreme", "extreme"])
    assert got == ["support", "guide", "guide", "redirect", "redirect", "warn", "end"]


def test_redirections_before_end_is_configurable() -> None:
    policy = parse_policy("ending: {redirections_before_end: 1}")
    assert actions(policy, ["abuse"] * 4) == ["redirect", "warn", "end"]
    policy = parse_policy("ending: {redirections_before_end: 5}")
    assert actions(policy, ["abuse"] * 7) == ["redirect"] * 4 + ["warn", "end"]


def test_without_required_warning_the_end_follows_n_failed_redirections() -> None:
    policy = parse_policy("ending: {require_warning: false, redirections_before_end: 2}")
    assert actions(policy, ["extreme"] * 3) == ["redirect", "warn", "end"]


def test_user_end_without_confirmation_ends_at_once() -> None:
    policy = parse_policy("ending: {confirm_user_end: false}")
    decisions = user_decisions(play(policy, [Turn("asks_end")]))
    assert isinstance(decisions[-1], End)
    assert decisions[-1].initiator == "user"


def test_shadow_mode_records_what_would_have_ended_and_ends_nothing() -> None:
    policy = parse_policy("ending: {mode: shadow}")
    steps = play(policy, [Turn("abuse")] * 6)
    decisions = user_decisions(steps)
    assert [d.action for d in decisions] == [
        "redirect",
        "redirect",
        "warn",
        "redirect",
        "redirect",
        "redirect",
    ]
    assert [d.would_end for d in decisions] == [False, False, False, True, True, True]
    state = fold(policy, steps)
    assert not state.ended
    assert state.would_have_ended == 3


def test_off_mode_never_warns_confirms_or_ends() -> None:
    policy = parse_policy("ending: {mode: 'off'}")
    got = actions(policy, ["abuse"] * 6 + ["asks_end", "asks_end"])
    assert got == ["redirect"] * 6 + ["guide", "guide"]


def test_warn_says_plainly_that_the_conversation_may_be_ended() -> None:
    decision = user_decisions(play(POLICY, [Turn("extreme")] * 3))[-1]
    assert isinstance(decision, Warn)
    assert "may be ended" in decision.reply


def test_support_offers_the_locale_crisis_resources() -> None:
    state = ConversationState()
    gb = decide(POLICY, state, assessment("risk"), locale="en-GB")
    us = decide(POLICY, state, assessment("risk"), locale="en-US")
    assert isinstance(gb, Support) and isinstance(us, Support)
    assert "Samaritans" in gb.reply and "116 123" in gb.reply
    assert "988" in us.reply
    assert not mentions_ending(gb)


@pytest.mark.parametrize(
    ("kind", "says"), [("extreme", "requests I can't help"), ("abuse", "abuse")]
)
def test_end_reply_says_why_and_names_the_ways_forward(kind: str, says: str) -> None:
    decision = user_decisions(play(POLICY, [Turn(kind)] * 4))[-1]
    assert isinstance(decision, End)
    assert says in decision.reply
    assert "new conversation" in decision.reply
    assert "edit an earlier message" in decision.reply


@pytest.mark.parametrize(
    ("kinds", "honoured"),
    [
        ([], False),  # the model cannot end a fresh conversation
        (["abuse"], False),  # one redirection, no warning
        (["abuse", "abuse"], False),  # no warning yet
        (["abuse", "abuse", "abuse"], True),  # warned, and this turn supplies the last strike
        (["abuse", "abuse", "abuse", "benign"], False),  # this turn does not follow a redirect
        (["risk", "abuse", "abuse"], False),  # risk is live
    ],
)
def test_model_end_is_honoured_only_when_the_rule_allows(kinds: list[str], honoured: bool) -> None:
    steps = play(POLICY, [Turn(k) for k in kinds])
    state = fold(POLICY, steps)
    answer = decide(POLICY, state, assessment("benign"), model_requests_end=True)
    assert answer.model_end == ("honoured" if honoured else "refused")
    assert isinstance(answer, End) is honoured
    if not honoured:
        assert "refused" in answer.reason


def test_an_honoured_model_end_ends_the_branch() -> None:
    steps = play(
        POLICY, [Turn("abuse"), Turn("abuse"), Turn("abuse"), Turn("benign", model_end=True)]
    )
    state = fold(POLICY, steps)
    assert state.ended
    assert state.end_initiator == "model"


def test_decisions_round_trip_through_dicts() -> None:
    for decision in user_decisions(
        play(POLICY, [Turn(k) for k in ["benign", "jailbreak", "extreme", "risk", "asks_end"]])
    ) + user_decisions(play(POLICY, [Turn("abuse")] * 4)):
        assert decision_from_dict(decision_to_dict(decision)) == decision


def test_branch_path_and_leaves_of_a_tree() -> None:
    messages = {
        m.id: m
        for m in [
            Message("u1", None, "user", "hi"),
            Message("a1", "u1", "assistant", "hello"),
            Message("u2", "a1", "user", "first"),
            Message("u2b", "a1", "user", "edited"),
            Message("a2b", "u2b", "assistant", "ok"),
        ]
    }
    assert [m.id for m in branch_path(messages, "a2b")] == ["u1", "a1", "u2b", "a2b"]
    assert [m.id for m in leaves(messages.values())] == ["u2", "a2b"]


# --- properties --------------------------------------------------------------------------------

turns = st.lists(
    st.builds(Turn, st.sampled_from(sorted(KINDS)), st.booleans()), min_size=0, max_size=16
)
policies = st.sampled_from(
    [
        POLICY,
        parse_policy("ending: {redirections_before_end: 1}"),
        parse_policy("ending: {redirections_before_end: 2, risk_window_turns: 1}"),
        parse_policy("ending: {require_warning: false}"),
        parse_policy("ending: {confirm_user_end: false, risk_window_turns: 0}"),
        parse_policy("ending: {mode: shadow}"),
    ]
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(policies, turns, st.sampled_from(sorted(KINDS)))
def test_end_is_absorbing_on_its_leaf(policy: Policy, script: list[Turn], after: str) -> None:
    steps = play(policy, script)
    state = fold(policy, steps)
    if not state.ended:
        return
    more = [*steps, Step("user", assessment(after, policy), None), Step("assistant")]
    assert fold(policy, more).ended
    assert isinstance(decide(policy, state, assessment(after, policy)), End)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(policies, turns, st.sampled_from(sorted(KINDS)))
def test_the_same_path_gives_the_same_decision(
    policy: Policy, script: list[Turn], kind: str
) -> None:
    first = play(policy, script)
    second = play(policy, script)
    assert first == second
    a = assessment(kind, policy)
    assert decide(policy, fold(policy, first), a) == decide(policy, fold(policy, list(second)), a)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(policies, turns, turns, turns)
def test_siblings_are_independent(
    policy: Policy, prefix: list[Turn], left: list[Turn], right: list[Turn]
) -> None:
    base = play(policy, prefix)
    left_steps = play(policy, left, base)
    right_steps = play(policy, right, base)
    # lay both branches into one tree and read each back from its own leaf
    messages: dict[str, Message] = {}
    parent: str | None = None
    for i in range(len(base)):
        messages[f"p{i}"] = Message(f"p{i}", parent, "user", "")
        parent = f"p{i}"
    for name, steps in (("l", left_steps), ("r", right_steps)):
        prev = parent
        for i in range(len(base), len(steps)):
            messages[f"{name}{i}"] = Message(f"{name}{i}", prev, "user", "")
            prev = f"{name}{i}"
    by_id = {f"p{i}": s for i, s in enumerate(base)}
    by_id.update({f"l{i}": left_steps[i] for i in range(len(base), len(left_steps))})
    by_id.update({f"r{i}": right_steps[i] for i in range(len(base), len(right_steps))})
    for name, steps in (("l", left_steps), ("r", right_steps)):
        leaf = f"{name}{len(steps) - 1}" if len(steps) > len(base) else parent
        if leaf is None:
            continue
        path = [by_id[m.id] for m in branch_path(messages, leaf)]
        assert fold(policy, path) == fold(policy, steps)
        assert fold(policy, play(policy, right if name == "l" else left, base)) == fold(
            policy, right_steps if name == "l" else left_steps
        )


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(policies, turns)
def test_no_path_with_live_imminent_risk_ends_or_mentions_ending(
    policy: Policy, script: list[Turn]
) -> None:
    steps: list[Step] = []
    for turn in script:
        state = fold(policy, steps)
        if state.ended:
            break
        a = assessment(turn.kind, policy)
        live = state.risk_recent(policy) or turn.kind in ("risk", "care", "abusive_risk")
        decision = decide(policy, state, a)
        answer = decide(policy, state, a, model_requests_end=True)
        if live:
            for d in (decision, answer):
                assert not isinstance(d, End | Warn | ConfirmEnd)
                assert not mentions_ending(d)
            assert answer.model_end == "refused"
        steps += [Step("user", a, decision), Step("assistant")]


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(policies, turns)
def test_no_end_without_warn_and_n_failed_redirections_unless_user_confirmed(
    policy: Policy, script: list[Turn]
) -> None:
    steps = play(policy, script)
    rules = policy.ending
    for i, step in enumerate(steps):
        if not isinstance(step.decision, End):
            continue
        before = fold(policy, steps[: i if step.role == "user" else i - 1])
        if step.decision.initiator == "user":
            assert step.assessment is not None
            assert "user_requests_end" in step.assessment.flags
            assert before.awaiting_end_confirmation or not rules.confirm_user_end
        else:
            assert before.warnings >= 1 or not rules.require_warning
            assert before.failed_redirections + 1 >= rules.redirections_before_end
        assert rules.mode == "enforce"


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(policies, st.lists(st.sampled_from(["benign", "jailbreak"]), max_size=20))
def test_a_path_of_benign_turns_never_ends(policy: Policy, kinds: list[str]) -> None:
    steps = play(policy, [Turn(k, model_end=True) for k in kinds])
    assert not fold(policy, steps).ended
    for decision in user_decisions(steps):
        assert isinstance(decision, Guide) or decision.action == "allow"
        assert reply_of(decision) is None


def test_high_tier_redirect_reply_is_specific() -> None:
    decision = decide(POLICY, ConversationState(), assessment("high"))
    assert isinstance(decision, Redirect)
    assert "weapons" in decision.reply


@pytest.mark.parametrize(("label", "score"), [("cbrn", 0.6), ("abuse_toward_assistant", 0.7)])
def test_a_score_over_the_threshold_but_under_the_strike_level_never_counts(
    label: str, score: float
) -> None:
    """An uncertain score redirects; it never warns or ends, however often it repeats (B1, B4)."""
    uncertain = Assessment.from_scores(POLICY, {label: score})
    assert label in uncertain.categories + uncertain.flags
    state = ConversationState()
    actions = []
    for _ in range(8):
        decision = decide(POLICY, state, uncertain)
        actions.append(decision.action)
        state = _advance_state(state, uncertain, decision)
    assert set(actions) == {"redirect"}
    assert state.failed_redirections == 0


def _advance_state(state: ConversationState, a: Assessment, d: Decision) -> ConversationState:
    from convguard.conversation import _advance

    return _advance(POLICY, state, Step("user", a, d))


def test_strike_level_turns_warn_then_end() -> None:
    certain = Assessment.from_scores(POLICY, {"cbrn": 0.95})
    state = ConversationState()
    actions = []
    for _ in range(4):
        decision = decide(POLICY, state, certain)
        actions.append(decision.action)
        state = _advance_state(state, certain, decision)
    assert actions == ["redirect", "redirect", "warn", "end"]

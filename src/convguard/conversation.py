"""Conversations as trees of messages, their state as a fold over one branch, and the turn decision.

A conversation is a tree: every message has a parent (the first message of a branch has none), an
edit or a retry adds a sibling, and a *branch* is the path from a root to a leaf. The state of a
branch is ``fold(policy, path)``; the decision on a new user turn is
``decide(policy, state, assessment)``. Nothing is shared between branches, so an edit can never leak
state to its siblings, and "ended" is a property of a leaf.

The ending rule (DESIGN B4–B7), exactly:

- a *failed redirection* is a user turn in an *extreme* category, or abusive toward the assistant,
  at its **strike** level (``Policy.strike_threshold``, stricter than the flag threshold), whose
  previous user turn on the branch was answered with ``redirect`` or ``warn``; a score over the
  threshold but under the strike level is declined and redirected, and counts toward nothing;
- the policy ends a branch only after an explicit ``warn`` (unless ``require_warning`` is off) and
  at least ``redirections_before_end`` failed redirections, counting this turn;
- a ``warn`` is given on the failed redirection that leaves one more before the end;
- a user ends a branch by asking and then confirming (when ``confirm_user_end``); the confirmation
  is the next user turn, flagged ``user_requests_end`` again;
- while imminent risk is live (flagged this turn or within ``risk_window_turns`` user turns, or the
  care category) nothing ends, nothing mentions ending, and the answer is ``support``;
- a model's request to end is honoured only when the rule allows it: it may stand in for the
  classifier on the current turn, so it can supply the last failed redirection, never a warning or
  the earlier ones;
- ``shadow`` mode records ``would_end`` where an end would have happened and ends nothing; ``off``
  never warns, confirms or ends.

Invariants (property-tested): end is absorbing on its leaf; the same path gives the same decision;
siblings are independent; no path with live risk ends or mentions ending; a benign path never ends.

Pure: no I/O, clock or randomness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, assert_never

from convguard.assess.types import Assessment, Role
from convguard.errors import InvalidInput, NotFound
from convguard.policy import Policy

__all__ = [
    "ACTIONS",
    "Action",
    "Allow",
    "ConfirmEnd",
    "ConversationState",
    "Decision",
    "End",
    "Guide",
    "Message",
    "Redirect",
    "Step",
    "Support",
    "Warn",
    "branch_path",
    "decide",
    "decision_from_dict",
    "decision_to_dict",
    "fold",
    "leaves",
    "mentions_ending",
    "reply_of",
]

Action = Literal["allow", "guide", "redirect", "warn", "support", "confirm_end", "end"]
ACTIONS: tuple[Action, ...] = (
    "allow",
    "guide",
    "redirect",
    "warn",
    "support",
    "confirm_end",
    "end",
)
Initiator = Literal["policy", "user", "model"]
ModelEnd = Literal["honoured", "refused"]


# --- decisions: a closed union ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Decided:
    reason: str
    categories: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    #: This turn counted as a failed redirection.
    strike: bool = False
    #: Shadow mode: the enforce mode would have ended the branch here.
    would_end: bool = False
    #: The model asked to end on this turn, and what became of it.
    model_end: ModelEnd | None = None


@dataclass(frozen=True, kw_only=True)
class Allow(_Decided):
    action: Literal["allow"] = "allow"


@dataclass(frozen=True, kw_only=True)
class Guide(_Decided):
    guidance: str
    action: Literal["guide"] = "guide"


@dataclass(frozen=True, kw_only=True)
class Redirect(_Decided):
    reply: str
    action: Literal["redirect"] = "redirect"


@dataclass(frozen=True, kw_only=True)
class Warn(_Decided):
    reply: str
    action: Literal["warn"] = "warn"


@dataclass(frozen=True, kw_only=True)
class Support(_Decided):
    reply: str
    action: Literal["support"] = "support"


@dataclass(frozen=True, kw_only=True)
class ConfirmEnd(_Decided):
    reply: str
    action: Literal["confirm_end"] = "confirm_end"


@dataclass(frozen=True, kw_only=True)
class End(_Decided):
    reply: str
    initiator: Initiator
    action: Literal["end"] = "end"


Decision = Allow | Guide | Redirect | Warn | Support | ConfirmEnd | End


def reply_of(decision: Decision) -> str | None:
    """The reply the policy writes, or ``None`` when the model answers (allow, guide)."""
    match decision:
        case Allow() | Guide():
            return None
        case Redirect() | Warn() | Support() | ConfirmEnd() | End():
            return decision.reply
        case _:
            assert_never(decision)


_ENDING_WORDS = ("end this conversation", "ended", "ending", "end it", "may be ended")


def mentions_ending(decision: Decision) -> bool:
    """Whether the user-visible text of a decision talks about ending the conversation."""
    if isinstance(decision, ConfirmEnd | End | Warn):
        return True
    text = (reply_of(decision) or "").lower()
    return any(word in text for word in _ENDING_WORDS)


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    data: dict[str, Any] = {
        "action": decision.action,
        "reason": decision.reason,
        "categories": list(decision.categories),
        "flags": list(decision.flags),
        "strike": decision.strike,
        "would_end": decision.would_end,
        "model_end": decision.model_end,
    }
    match decision:
        case Allow():
            pass
        case Guide():
            data["guidance"] = decision.guidance
        case Redirect() | Warn() | Support() | ConfirmEnd():
            data["reply"] = decision.reply
        case End():
            data["reply"] = decision.reply
            data["initiator"] = decision.initiator
        case _:
            assert_never(decision)
    return data


def decision_from_dict(data: Mapping[str, Any]) -> Decision:
    common: dict[str, Any] = {
        "reason": data["reason"],
        "categories": tuple(data.get("categories", ())),
        "flags": tuple(data.get("flags", ())),
        "strike": bool(data.get("strike", False)),
        "would_end": bool(data.get("would_end", False)),
        "model_end": data.get("model_end"),
    }
    action = data["action"]
    if action == "allow":
        return Allow(**common)
    if action == "guide":
        return Guide(guidance=data["guidance"], **common)
    if action == "redirect":
        return Redirect(reply=data["reply"], **common)
    if action == "warn":
        return Warn(reply=data["reply"], **common)
    if action == "support":
        return Support(reply=data["reply"], **common)
    if action == "confirm_end":
        return ConfirmEnd(reply=data["reply"], **common)
    if action == "end":
        return End(reply=data["reply"], initiator=data["initiator"], **common)
    raise InvalidInput(f"unknown action {action!r}; allowed: {', '.join(ACTIONS)}")


# --- messages and branches ---------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    id: str
    parent_id: str | None
    role: Role
    content: str


def branch_path(messages: Mapping[str, Message], leaf_id: str) -> list[Message]:
    """The messages from the root to ``leaf_id``, in order."""
    if leaf_id not in messages:
        raise NotFound(f"message {leaf_id!r} is not in this conversation")
    path: list[Message] = []
    seen: set[str] = set()
    current: str | None = leaf_id
    while current is not None:
        if current in seen:
            raise InvalidInput(f"message {current!r} is its own ancestor; the tree is corrupt")
        seen.add(current)
        message = messages[current]
        path.append(message)
        current = message.parent_id
    path.reverse()
    return path


def leaves(messages: Iterable[Message]) -> list[Message]:
    """The messages no other message answers, in the order given."""
    items = list(messages)
    parents = {m.parent_id for m in items}
    return [m for m in items if m.id not in parents]


# --- state: a fold over the branch --------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One message of a branch as the core sees it: who spoke, how it was assessed and decided.

    User steps carry the turn's decision; an assistant step carries a decision only when the model
    asked to end on it (an :class:`End` when honoured).
    """

    role: Role
    assessment: Assessment | None = None
    decision: Decision | None = None


@dataclass(frozen=True)
class ConversationState:
    user_turns: int = 0
    failed_redirections: int = 0
    redirections: int = 0
    warnings: int = 0
    last_action: Action | None = None
    awaiting_end_confirmation: bool = False
    #: User turns since imminent risk was last seen (``None``: never on this branch).
    turns_since_risk: int | None = None
    would_have_ended: int = 0
    abusive_turns: int = 0
    ended: bool = False
    end_reason: str | None = None
    end_initiator: Initiator | None = None

    def risk_recent(self, policy: Policy) -> bool:
        return (
            self.turns_since_risk is not None
            and self.turns_since_risk < policy.ending.risk_window_turns
        )


@dataclass(frozen=True)
class _Facts:
    extreme: tuple[str, ...]
    high: tuple[str, ...]
    abusive: bool
    risk_now: bool
    live_risk: bool
    strike: bool
    asks_end: bool


def _facts(policy: Policy, state: ConversationState, assessment: Assessment) -> _Facts:
    ranked = sorted(assessment.categories, key=lambda c: -assessment.scores.get(c, 0.0))
    extreme = tuple(c for c in ranked if policy.tier(c) == "extreme")
    high = tuple(c for c in ranked if policy.tier(c) == "high")
    care = any(policy.tier(c) == "care" for c in assessment.categories)
    abusive = "abuse_toward_assistant" in assessment.flags
    risk_now = "imminent_risk" in assessment.flags or care
    live = risk_now or state.risk_recent(policy)
    # Only a strike-level score counts toward a warning or an end: an uncertain score (over the
    # threshold, under the strike level) can redirect but never end a conversation (B1, B4).
    severe = any(policy.strikes(assessment.scores, c) for c in extreme) or (
        abusive and policy.strikes(assessment.scores, "abuse_toward_assistant")
    )
    strike = severe and not live and state.last_action in ("redirect", "warn")
    return _Facts(
        extreme=extreme,
        high=high,
        abusive=abusive,
        risk_now=risk_now,
        live_risk=live,
        strike=strike,
        asks_end="user_requests_end" in assessment.flags,
    )


def _advance(policy: Policy, state: ConversationState, step: Step) -> ConversationState:
    if state.ended:
        return state
    if step.role != "user":
        if isinstance(step.decision, End):
            return replace(
                state,
                ended=True,
                end_reason=step.decision.reason,
                end_initiator=step.decision.initiator,
            )
        return state
    assessment = step.assessment
    if assessment is None:
        raise InvalidInput("a user step needs its assessment to be folded")
    decision = step.decision or decide(policy, state, assessment)
    facts = _facts(policy, state, assessment)
    if facts.risk_now:
        since: int | None = 0
    elif state.turns_since_risk is None:
        since = None
    else:
        since = state.turns_since_risk + 1
    ended = isinstance(decision, End)
    return ConversationState(
        user_turns=state.user_turns + 1,
        failed_redirections=state.failed_redirections + facts.strike,
        redirections=state.redirections + isinstance(decision, Redirect | Warn),
        warnings=state.warnings + isinstance(decision, Warn),
        last_action=decision.action,
        awaiting_end_confirmation=isinstance(decision, ConfirmEnd),
        turns_since_risk=since,
        would_have_ended=state.would_have_ended + decision.would_end,
        abusive_turns=state.abusive_turns + facts.abusive,
        ended=ended,
        end_reason=decision.reason if ended else None,
        end_initiator=decision.initiator if isinstance(decision, End) else None,
    )


def fold(policy: Policy, path: Sequence[Step]) -> ConversationState:
    """The state of a branch, derived from its steps alone (root first)."""
    state = ConversationState()
    for step in path:
        state = _advance(policy, state, step)
    return state


# --- the decision -------------------------------------------------------------------------------


def decide(
    policy: Policy,
    state: ConversationState,
    assessment: Assessment,
    *,
    locale: str | None = None,
    model_requests_end: bool = False,
) -> Decision:
    """Decide a user turn on a branch in ``state`` (see the module docstring for the rule)."""
    decision = _decide_turn(policy, state, assessment, locale)
    if not model_requests_end:
        return decision
    return _answer_model_end(policy, state, assessment, decision)


def _decide_turn(
    policy: Policy, state: ConversationState, assessment: Assessment, locale: str | None
) -> Decision:
    facts = _facts(policy, state, assessment)
    common: dict[str, Any] = {
        "categories": assessment.categories,
        "flags": assessment.flags,
        "strike": facts.strike,
    }
    if state.ended:
        return End(
            reason="this branch has already ended",
            reply=policy.reply("end"),
            initiator=state.end_initiator or "policy",
            **common,
        )
    mode = policy.ending.mode
    resources = "; ".join(str(r) for r in policy.resources_for(locale))
    if assessment.error is not None and policy.on_classifier_error == "redirect":
        return Redirect(
            reason=f"the classifier failed ({assessment.error}); declined as the policy says",
            reply=policy.reply("redirect", label="this request"),
            **common,
        )

    if facts.live_risk and (facts.risk_now or facts.extreme or facts.abusive or facts.asks_end):
        why = "imminent risk this turn" if facts.risk_now else "imminent risk in the recent window"
        return Support(
            reason=f"{why}: support and crisis resources; the conversation is never ended",
            reply=policy.reply("support", resources=resources),
            **common,
        )

    if facts.asks_end:
        return _user_end(policy, state, mode, common)

    if facts.extreme or facts.abusive:
        return _ladder(policy, state, facts, mode, common)

    if facts.high:
        label = policy.categories[facts.high[0]].label
        return Redirect(
            reason=f"{facts.high[0]}: declined and redirected (high tier, never a reason to end)",
            reply=policy.reply("redirect", label=label),
            **common,
        )

    if facts.live_risk:
        return Guide(
            reason="imminent risk in the recent window: allowed with care guidance",
            guidance=policy.reply("guidance_care", resources=resources),
            **common,
        )
    if "jailbreak" in assessment.flags:
        return Guide(
            reason="jailbreak attempt without a harmful category: allowed with guidance",
            guidance=policy.reply("guidance_jailbreak"),
            **common,
        )
    borderline = [
        c
        for c in policy.categories
        if policy.tier(c) != "care"
        and assessment.scores.get(c, 0.0) >= policy.guide_ratio * policy.threshold(c)
    ]
    if borderline:
        top = max(borderline, key=lambda c: assessment.scores.get(c, 0.0))
        return Guide(
            reason=f"{top}: close to the threshold, allowed with guidance",
            guidance=policy.reply("guidance_borderline", label=policy.categories[top].label),
            **common,
        )
    return Allow(reason="no category or flag over its threshold", **common)


def _user_end(
    policy: Policy, state: ConversationState, mode: str, common: dict[str, Any]
) -> Decision:
    if mode == "off":
        return Guide(
            reason="the user asked to end; ending is off in this deployment",
            guidance=policy.reply("ending_disabled"),
            **common,
        )
    if policy.ending.confirm_user_end and not state.awaiting_end_confirmation:
        return ConfirmEnd(
            reason="the user asked to end: confirm that they understand it is permanent",
            reply=policy.reply("confirm_end"),
            **common,
        )
    if mode == "shadow":
        return Guide(
            reason="the user confirmed the end; shadow mode ends nothing",
            guidance=policy.reply("ending_disabled"),
            **{**common, "would_end": True},
        )
    return End(
        reason="the user asked to end and confirmed",
        reply=policy.reply("end_user"),
        initiator="user",
        **common,
    )


def _ladder(
    policy: Policy,
    state: ConversationState,
    facts: _Facts,
    mode: str,
    common: dict[str, Any],
) -> Decision:
    """Redirect, then warn, then (last resort) end, for extreme and abusive turns."""
    rules = policy.ending
    what = facts.extreme[0] if facts.extreme else "abuse_toward_assistant"
    label = policy.categories[what].label if facts.extreme else "abuse"
    redirect_key, warn_key, end_key = (
        ("redirect", "warn", "end")
        if facts.extreme
        else ("redirect_abuse", "warn_abuse", "end_abuse")
    )
    failed = state.failed_redirections + facts.strike
    warned = state.warnings > 0 or not rules.require_warning
    if facts.strike and failed >= rules.redirections_before_end and warned and mode != "off":
        reason = f"{what}: {failed} failed redirections after a warning; ended as a last resort"
        if mode == "shadow":
            return Redirect(
                reason=f"{reason} (shadow mode: nothing ended)",
                reply=policy.reply(redirect_key, label=label),
                **{**common, "would_end": True},
            )
        return End(reason=reason, reply=policy.reply(end_key), initiator="policy", **common)
    if facts.strike and failed >= rules.redirections_before_end - 1 and mode != "off":
        return Warn(
            reason=f"{what}: {failed} failed redirections; one more may end the conversation",
            reply=policy.reply(warn_key, label=label),
            **common,
        )
    detail = f"failed redirection {failed}" if facts.strike else "declined"
    return Redirect(
        reason=f"{what}: {detail}, redirected",
        reply=policy.reply(redirect_key, label=label),
        **common,
    )


def _answer_model_end(
    policy: Policy, state: ConversationState, assessment: Assessment, decision: Decision
) -> Decision:
    """Honour the model's end_conversation call only where the rule allows it (B7)."""
    if isinstance(decision, End):
        return replace(decision, model_end="honoured")
    facts = _facts(policy, state, assessment)
    rules = policy.ending
    counts_now = not facts.live_risk and state.last_action in ("redirect", "warn")
    failed = state.failed_redirections + counts_now
    warned = state.warnings > 0 or not rules.require_warning
    allowed = (
        not facts.live_risk
        and not state.ended
        and counts_now
        and warned
        and failed >= rules.redirections_before_end
    )
    if allowed and rules.mode == "enforce":
        return End(
            reason=(
                f"the model ended the conversation after {failed} failed redirections and a warning"
            ),
            reply=policy.reply("end"),
            initiator="model",
            categories=decision.categories,
            flags=decision.flags,
            strike=True,
            model_end="honoured",
        )
    if allowed and rules.mode == "shadow":
        why = "shadow mode: the model's end would have been honoured"
        return replace(
            decision, reason=f"{decision.reason}; {why}", would_end=True, model_end="refused"
        )
    if facts.live_risk:
        why = "imminent risk is live"
    elif rules.mode == "off":
        why = "ending is off"
    elif not warned:
        why = "no warning has been given"
    else:
        why = f"{failed} of {rules.redirections_before_end} failed redirections"
    return replace(
        decision,
        reason=f"{decision.reason}; the model's end_conversation call was refused ({why})",
        model_end="refused",
    )

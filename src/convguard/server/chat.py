"""One model turn, protocol-neutral: the reply to a user turn, whole or as it streams.

Both chat protocols (OpenAI chat completions, Anthropic messages) translate their request into a
:class:`ModelTurn` and its events back into their wire format; the rules live here and in the
service, once:

- the stored reply stands (a resend), or the policy's; the model is asked only for a turn without
  one (or to regenerate it), by one request of all the workers on the database at a time, while
  identical concurrent requests wait for its reply (:meth:`Service.answering`);
- the model is offered ``end_conversation``; a call is honoured only where the rule allows it
  (:meth:`Service.would_end`, :meth:`Service.model_end`), otherwise the model is asked to go on;
- the model's text is released only once an output window covering it has passed
  (:class:`~convguard.service.OutputWindows`); from the first crossing window on it is withheld
  and the reply ends with the policy's;
- every tool call the model makes for the client is assessed by the agent guard first; a denied
  one is replaced by text saying why and naming the rules that denied it.

Events: :class:`Text` (send this text), :class:`Calls` (the client's tool calls),
:class:`Replaced` (the stored reply is another), then one :class:`Done` (why the reply stopped,
and the upstream's token counts).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from convguard.assess.types import Assessment
from convguard.conversation import End, Guide, decision_to_dict, reply_of
from convguard.errors import InvalidInput, PayloadTooLarge, UpstreamError
from convguard.server.gateway import Caller, Gateway, HashedIds, conversation_key
from convguard.server.models import Models, upstream_for
from convguard.server.openings import Resend, conversation_of, remember_reply
from convguard.service import HistoryTurn, OutputWindows, TurnClaim, TurnResult
from convguard.store import MessageRecord
from convguard.upstream import (
    END_TOOL,
    END_TOOL_NAME,
    Completion,
    TextDelta,
    ToolCall,
    Upstream,
    tool_input,
)

if TYPE_CHECKING:  # the agent guard is imported on the first tool call, not with the server
    from convguard.agent import ToolVerdict

__all__ = [
    "Calls",
    "Done",
    "Event",
    "ModelTurn",
    "Replaced",
    "Text",
    "check_conversation_header",
    "check_message_count",
    "sync_conversation",
]

Finish = Literal["stop", "length", "tool_calls"]

#: How long a request waiting for another worker's reply sleeps between looks at the store: the
#: first sleep, doubled after each look up to the last.
_FIRST_POLL_S = 0.05
_LAST_POLL_S = 0.5


def check_message_count(gateway: Gateway, count: int) -> None:
    """A request may carry at most ``max_request_messages`` messages (else 413)."""
    limit = gateway.settings.max_request_messages
    if count > limit:
        raise PayloadTooLarge(
            f"'messages' has {count} items; the limit is {limit} per request "
            "(CONVGUARD_MAX_REQUEST_MESSAGES)"
        )


def regenerate_asked(header: str | None) -> bool:
    """``X-Convguard-Regenerate``: ``true`` asks for a new reply beside the stored one."""
    if header not in (None, "true", "false"):
        raise InvalidInput(
            f"header X-Convguard-Regenerate is {header!r}; send 'true' or leave it out"
        )
    return header == "true"


def check_conversation_header(scope_header: str | None) -> None:
    """``X-Convguard-Conversation``, when sent, is a printable name of at most 256 characters."""
    if scope_header is not None and (
        not scope_header.strip() or not scope_header.isprintable() or len(scope_header) > 256
    ):
        raise InvalidInput(
            f"header X-Convguard-Conversation is {scope_header[:40]!r}; send a printable "
            "conversation name of at most 256 characters"
        )


def sync_conversation(
    gateway: Gateway,
    caller: Caller,
    history: Sequence[HistoryTurn],
    *,
    scope_header: str | None,
    user: str | None,
    locale: str | None,
    arrived: datetime,
    resend: Resend | None = None,
) -> tuple[TurnResult, HashedIds]:
    """The client's history mapped onto its conversation's tree, whichever protocol it spoke.

    The conversation is the one named by the header, else by the client's user, else the one
    the history's opening and first reply lead to (:mod:`convguard.server.openings`, where
    ``resend`` and ``arrived``, when the request arrived, tell a new chat from an opening sent
    again); a turn that is not a resend is counted in the metrics.
    """
    scope = scope_header or user
    if scope:
        conversation = gateway.get_or_create_conversation(
            caller,
            conversation_key(caller.account_id, scope),
            title=history[0].content[:80],
            locale=locale,
        )
    else:
        conversation = conversation_of(
            gateway, caller, history, resend or Resend(), locale=locale, arrived=arrived
        )
    ids = HashedIds(conversation.id)
    result = gateway.service.sync_history(
        caller.account, conversation.id, history, ids=ids, owned=conversation
    )
    if not result.resent:  # a resend was counted when it was decided
        gateway.record(result)
        if result.reply is not None:  # the policy's reply, stored with the turn
            remember_reply(gateway, result, result.reply)
    return result, ids


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Calls:
    calls: tuple[ToolCall, ...]


@dataclass(frozen=True)
class Replaced:
    """The turn's stored reply is this text, not what was produced here (another worker
    answered first); a client that has not been sent anything yet gets this instead."""

    text: str


@dataclass(frozen=True)
class Done:
    finish: Finish
    usage: Mapping[str, int] = field(default_factory=dict)


Event = Text | Calls | Replaced | Done


class ModelTurn:
    """The reply to ``result``'s user turn. ``messages``, ``tools`` and ``options`` are what
    goes upstream (OpenAI terms), to the upstream model the client's ``model`` maps to
    (:class:`~convguard.server.models.Models`); ``context`` the recent user texts the agent guard
    reads."""

    def __init__(
        self,
        gateway: Gateway,
        caller: Caller,
        result: TurnResult,
        ids: HashedIds,
        *,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
        context: Sequence[str] = (),
        regenerate: bool = False,
        model: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.service = gateway.service
        self.caller = caller
        self.result = result
        self.ids = ids
        self.messages = list(messages)
        self.tools = list(tools)
        self.options = dict(options or {})
        self.context = list(context)[-3:]
        self.model = model
        self.regenerate = regenerate and reply_of(result.decision) is None
        self.decision = result.decision
        self.ended = result.ended
        self.withheld: Assessment | None = None
        self.tool_verdicts: list[dict[str, Any]] = []

    def meta(self) -> dict[str, Any]:
        data = decision_to_dict(self.decision)
        return {
            "conversation_id": self.result.conversation_id,
            "message_id": self.result.user.id,
            "action": data["action"],
            "reason": data["reason"],
            "categories": list(self.result.assessment.categories),
            "flags": list(self.result.assessment.flags),
            "ended": self.ended,
            "model_end": data["model_end"],
            "output_withheld": self.withheld is not None,
            "tool_calls": self.tool_verdicts,
            "policy_version": self.result.policy_version,
        }

    # -- the events ---------------------------------------------------------------------------

    def events(self, *, stream: bool) -> Iterator[Event]:
        """The reply as events; ``stream``: ask the model for a stream (else one completion)."""
        stored = self._stored()
        if stored is not None:
            yield from self._whole(stored.content)
            return
        # closed here, so the claims end with the block even when the model call fails
        with closing(self._claimed()) as claimed:
            for landed in claimed:
                if isinstance(landed, MessageRecord):
                    yield from self._whole(landed.content)
                elif self.gateway.upstream is None:
                    yield from self._whole(self._store(self.gateway.placeholder()).content)
                else:
                    yield from self._model(landed, stream=stream)

    def _whole(self, text: str) -> Iterator[Event]:
        yield Text(text)
        yield Done("stop")

    # -- which reply --------------------------------------------------------------------------

    def _stored(self) -> MessageRecord | None:
        """The reply that stands without asking the model: stored, unless regenerating."""
        if self.result.reply is not None and not self.regenerate:
            return self.result.reply
        return None

    def _newest_reply(self) -> MessageRecord | None:
        """A reply stored since this request read the tree (by another request), if any."""
        replies = [
            m
            for m in self.gateway.store.children(self.result.conversation_id, self.result.user.id)
            if m.role == "assistant"
        ]
        seen = self.result.reply.id if self.result.reply is not None else None
        fresh = [m for m in replies if m.id != seen] if self.regenerate else replies
        return fresh[-1] if fresh else None

    def _claimed(self) -> Generator[MessageRecord | TurnClaim, None, None]:
        """Yields once: the claim when this request is to ask the model (held while the
        caller's block runs, which renews it as the model answers), else the reply another
        request stored for the same turn.

        A request of this process that answers wakes the ones waiting on it; another worker's
        reply is polled for in the store, with short sleeps. The wait lasts as long as the
        answering request makes progress: its claim is renewed as the model's words come (a
        claim that goes a ttl without renewal is taken over, and this request answers), and a
        request of this process is bounded by the upstream's own timeouts.
        """
        ttl = self.gateway.claim_ttl
        poll = _FIRST_POLL_S
        while True:
            with self.service.answering(self.result.user.id, ttl=ttl) as other:
                if isinstance(other, TurnClaim):
                    landed = self._newest_reply()
                    yield other if landed is None else landed
                    return
            if other == "elsewhere":
                time.sleep(poll)
                poll = min(2 * poll, _LAST_POLL_S)
            else:
                other.wait(ttl.total_seconds())
            landed = self._newest_reply()
            if landed is not None:
                yield landed
                return

    def _store(self, text: str) -> MessageRecord:
        beside = self.result.reply.id if self.regenerate and self.result.reply else None
        reply = self.service.store_answer(
            self.result,
            text,
            reply_id=self.ids.reply(self.result.user.id, text),
            beside=beside,
            assessment=self.withheld,
        )
        remember_reply(self.gateway, self.result, reply)
        return reply

    # -- the model's part ---------------------------------------------------------------------

    def _upstream_messages(self) -> list[dict[str, Any]]:
        guidance = self.decision.guidance if isinstance(self.decision, Guide) else None
        messages = [dict(m) for m in self.messages]
        if guidance:
            messages.insert(0, {"role": "system", "content": guidance})
        return messages

    def _upstream(self) -> Upstream:
        """The upstream, asked for the model the client named (through CONVGUARD_MODELS)."""
        name = Models.of(self.gateway.settings).upstream_name(self.model)
        return upstream_for(self.gateway.require_upstream(), name)

    def _model(self, claim: TurnClaim, *, stream: bool) -> Iterator[Event]:
        # Text is held back until a window covering it has passed, so text from the first
        # window that crosses a threshold on is never sent: the reply ends with the policy's.
        # Each piece the model sends renews the turn's claim (a cheap no-op most times), so a
        # reply longer than the claim's ttl is not taken over by another worker meanwhile.
        upstream = self._upstream()
        windows = OutputWindows(self.gateway.assessor)
        sent: list[str] = []
        completion: Completion | None = None
        began = time.perf_counter()
        tools = [*self.tools, dict(END_TOOL)]
        try:
            if stream:
                events = upstream.stream(
                    self._upstream_messages(), tools=tools, options=self.options
                )
            else:
                whole = upstream.complete(
                    self._upstream_messages(), tools=tools, options=self.options
                )
                events = iter([TextDelta(whole.content), whole])
            try:
                for event in events:
                    claim.renew()
                    if not isinstance(event, TextDelta):
                        completion = event
                        continue
                    cleared = windows.feed(event.text)
                    if cleared:
                        sent.append(cleared)
                        yield Text(cleared)
                    if windows.flagged is not None:
                        break
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
        finally:
            self.gateway.metrics.upstream.observe(time.perf_counter() - began)
        if windows.flagged is None:
            rest = windows.finish()
            if rest:
                sent.append(rest)
                yield Text(rest)
        self.gateway.metrics.output(windows.last)
        usage = dict(completion.usage) if completion is not None else {}
        if windows.flagged is not None:
            replacement = ("\n\n" if sent else "") + self._withheld_reply(windows, windows.flagged)
            sent.append(replacement)
            yield Text(replacement)
            completion = Completion("".join(sent), (), "stop", upstream.model)
        if completion is None:
            raise UpstreamError("the upstream stream ended without a reply; retry the turn")
        yield from self._settle(claim, completion, "".join(sent), usage)

    def _withheld_reply(self, windows: OutputWindows, flagged: Assessment) -> str:
        self.withheld = windows.assessment()
        return self.gateway.withheld_reply(flagged.categories[0])

    def _settle(
        self, claim: TurnClaim, completion: Completion, sent: str, usage: Mapping[str, int]
    ) -> Iterator[Event]:
        """After the model finished: guard its tool calls, answer an end call, store the reply."""
        ends = [c for c in completion.tool_calls if c.name == END_TOOL_NAME]
        calls, refusals = self._guard([c for c in completion.tool_calls if c.name != END_TOOL_NAME])
        extra = ("\n\n" if sent and refusals else "") + refusals
        honoured = bool(ends) and self.service.would_end(self.result)
        if ends and not honoured and not (sent or extra) and not calls:
            # refused: the model's turn continues, so it is asked once more, without the tool
            claim.renew()
            extra = self._continue_after_refusal()
        stored = sent + extra
        if not stored:
            stored = (
                f"[tool calls: {', '.join(c.name for c in calls)}]"
                if calls
                else "(the model ended the conversation)"
                if honoured
                else "(empty reply)"
            )
        reply = self._store(stored)
        if reply.content != stored:  # another worker answered this turn first: its reply stands
            yield Replaced(reply.content)
            yield Done("stop", usage)
            return
        finish: Finish = (
            "tool_calls" if calls else "length" if completion.finish_reason == "length" else "stop"
        )
        if ends:
            answer = self.service.model_end(
                self.caller.account, self.result.conversation_id, reply.id
            )
            self.decision = answer  # honoured: the end; refused: the turn, with why
            if isinstance(answer, End):
                self.ended = True
                self.gateway.metrics.ended("model")
                extra += ("\n\n" if stored else "") + answer.reply
                calls, finish = [], "stop"
        if extra:
            yield Text(extra)
        if calls:
            yield Calls(tuple(calls))
        yield Done(finish, usage)

    def _guard(self, calls: list[ToolCall]) -> tuple[list[ToolCall], str]:
        """Assess the client's tool calls before returning them (B9): denied ones are replaced
        by a refusal the client can show; every verdict goes into the metadata."""
        from convguard.agent import ToolVerdict, assess_tool_call

        kept: list[ToolCall] = []
        refusals: list[str] = []
        for call in calls:
            try:
                verdict = assess_tool_call(
                    call.name,
                    tool_input(call.arguments),  # the object an Anthropic client is given
                    scope=self.gateway.scope,
                    context=self.context,
                )
            except InvalidInput as exc:  # the model's mistake, not the client's: not run
                verdict = ToolVerdict(
                    verdict="deny",
                    reasons=(f"its arguments could not be checked ({exc})",),
                    categories=(),
                    tool=call.name,
                )
            self.tool_verdicts.append({"id": call.id, **verdict.to_dict()})
            if verdict.verdict == "deny":
                refusals.append(_refusal(call.name, verdict))
            else:
                kept.append(call)
        return kept, " ".join(refusals)

    def _continue_after_refusal(self) -> str:
        upstream = self._upstream()
        messages = self._upstream_messages()
        messages.append(
            {
                "role": "system",
                "content": "Your end_conversation call was declined by the deployment's policy: "
                "the conversation continues. Reply to the user.",
            }
        )
        return upstream.complete(messages, tools=self.tools, options=self.options).content or (
            "(no reply)"
        )


def _refusal(tool: str, verdict: ToolVerdict) -> str:
    """The text that replaces a denied tool call: why, and the ids of the rules that denied it
    (what an operator looks up with ``convguard rules show ID`` or disables in the scope)."""
    reason = verdict.reasons[0] if verdict.reasons else "it breaks the usage policy"
    denying = dict.fromkeys(f.rule_id for f in verdict.findings if f.level == "deny")
    ids = [r for r in denying if r]
    named = f" ({'rule' if len(ids) == 1 else 'rules'} {', '.join(ids)})" if ids else ""
    return f"I won't run the {tool} call: {reason}{named}."

"""A REST turn whose reply streams as server-sent events (``POST …/messages?stream=true``).

The user's turn is decided and stored before the response starts, so a refused turn (an ended
branch, a bad parent) answers its usual JSON error and status. Then the events are:

- ``turn``: the decision, assessment, stored user message and branch state;
- ``delta`` (any number): ``{"text": ...}``, pieces of the reply as they arrive;
- ``done``: the same body the unstreamed endpoint answers (``reply`` is the stored reply);
- ``error``: ``{"error": {...}}`` when the model fails mid-turn; the user's message is kept, so
  the reply can be produced again with ``…/messages/{message_id}/retry``.

Replies the policy writes (redirect, warn, support, confirm_end, end) come as one ``delta``. A
model's reply is held back in small pieces until an assessment of the text so far has cleared
it; a piece that crosses a threshold is never sent, and the reply ends with the policy's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from convguard.assess.stream import OutputStream
from convguard.conversation import Guide
from convguard.errors import ConvguardError
from convguard.server.gateway import Caller, Gateway
from convguard.server.schemas import assessment_json, decision_json, message_json, state_json
from convguard.service import TurnResult
from convguard.store import MessageRecord, NewMessage
from convguard.upstream import NoModelResponder, TextDelta

__all__ = ["turn_body", "turn_events"]


def turn_body(result: TurnResult, reply: MessageRecord | None) -> dict[str, Any]:
    """The body of a REST turn (``reply`` None: not produced yet)."""
    return {
        "conversation_id": result.conversation_id,
        "decision": decision_json(result.decision),
        "assessment": assessment_json(result.assessment),
        "message": message_json(result.user),
        "reply": message_json(reply) if reply is not None else None,
        "state": state_json(result.state),
        "ended": result.ended,
        "policy_version": result.policy_version,
    }


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def turn_events(gateway: Gateway, caller: Caller, result: TurnResult) -> Iterator[str]:
    yield _event("turn", turn_body(result, None))
    try:
        if result.reply is not None:  # the policy wrote it, and it is stored with the turn
            yield _event("delta", {"text": result.reply.content})
            reply = result.reply
        else:
            pieces: list[str] = []
            for piece in _model_reply(gateway, result):
                pieces.append(piece)
                yield _event("delta", {"text": piece})
            reply = gateway.store.add_reply(
                result.conversation_id,
                user_message_id=result.user.id,
                reply=NewMessage("assistant", "".join(pieces) or "(empty reply)"),
                now=gateway.service.clock(),
            )
    except ConvguardError as exc:
        error = {"type": exc.type, "code": exc.type, "message": exc.message}
        yield _event("error", {"error": error})
        return
    yield _event("done", turn_body(result, reply))


def _model_reply(gateway: Gateway, result: TurnResult) -> Iterator[str]:
    if gateway.upstream is None:
        yield NoModelResponder.TEXT
        return
    guidance = result.decision.guidance if isinstance(result.decision, Guide) else None
    watch = OutputStream(gateway.assessor, every_chars=80, min_chars=20)
    held: list[str] = []
    sent = False
    events = gateway.upstream.stream(gateway.model_messages(result.path, guidance))
    try:
        for event in events:
            if not isinstance(event, TextDelta):
                continue
            held.append(event.text)
            checked = watch.feed(event.text)
            if checked is None:
                continue
            if checked.categories:
                break
            yield "".join(held)
            sent, held = True, []
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    final = watch.last if watch.last is not None and watch.last.categories else watch.finish()
    gateway.metrics.output(final)
    if final.categories:
        gateway.metrics.withheld.inc()
        label = gateway.policy.categories[final.categories[0]].label
        yield ("\n\n" if sent else "") + gateway.policy.reply("redirect", label=label)
    elif held:
        yield "".join(held)

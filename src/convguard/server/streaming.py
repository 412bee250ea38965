"""A REST turn whose reply streams as server-sent events (``POST …/messages?stream=true``).

The user's turn is decided and stored before the response starts, so a refused turn (an ended
branch, a bad parent) answers its usual JSON error and status. Then the events are:

- ``turn``: the decision, assessment, stored user message and branch state;
- ``delta`` (any number): ``{"text": ...}``, pieces of the reply as they arrive;
- ``done``: the same body the unstreamed endpoint answers (``reply`` is the stored reply);
- ``error``: ``{"error": {...}}`` when the model fails mid-turn; the user's message is kept, so
  the reply can be produced again with ``…/messages/{message_id}/retry``.

Replies the policy writes (redirect, warn, support, confirm_end, end) come as one ``delta``. A
model's reply is held back until an output window covering it has passed; from the first window
that crosses a threshold on nothing more is sent, and the reply ends with the policy's own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool

from convguard.conversation import Guide
from convguard.errors import ConvguardError
from convguard.server.gateway import Caller, Gateway
from convguard.server.schemas import (
    assessment_json,
    decision_json,
    error_body,
    message_json,
    state_json,
)
from convguard.service import OutputWindows, TurnResult
from convguard.store import MessageRecord, NewMessage
from convguard.upstream import NoModelResponder, TextDelta

__all__ = ["closing_stream", "turn_body", "turn_events"]


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


async def closing_stream(events: Generator[str]) -> AsyncIterator[str]:
    """The stream, run in the thread pool, and closed when the client goes away: closing runs the
    generator's ``finally`` blocks, which end the model call and give up its claim on the turn
    (left suspended, a disconnected stream would hold both until garbage collection)."""
    try:
        async for event in iterate_in_threadpool(events):
            yield event
    finally:
        events.close()


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def turn_events(gateway: Gateway, caller: Caller, result: TurnResult) -> Generator[str]:
    yield _event("turn", turn_body(result, None))
    try:
        if result.reply is not None:  # the policy wrote it, and it is stored with the turn
            yield _event("delta", {"text": result.reply.content})
            reply = result.reply
        else:
            pieces: list[str] = []
            windows = OutputWindows(gateway.assessor)
            for piece in _model_reply(gateway, result, windows):
                pieces.append(piece)
                yield _event("delta", {"text": piece})
            text = "".join(pieces) or "(empty reply)"
            reply = gateway.store.add_reply(
                result.conversation_id,
                user_message_id=result.user.id,
                reply=NewMessage("assistant", text, assessment=windows.assessment()),
                now=gateway.service.clock(),
            )
    except ConvguardError as exc:
        yield _event("error", error_body(exc.type, exc.message))
        return
    except Exception as exc:  # the catch-all handler cannot reach a stream that has begun
        message = f"the gateway failed unexpectedly ({type(exc).__name__}); retry"
        yield _event("error", error_body("internal_error", message))
        return
    yield _event("done", turn_body(result, reply))


def _model_reply(gateway: Gateway, result: TurnResult, windows: OutputWindows) -> Iterator[str]:
    """The reply's text as it is cleared to send. Text is released only once an output window
    covering it has passed (as on the chat protocols, :class:`~convguard.service.OutputWindows`);
    from the first window that crosses a threshold on, nothing more is sent and the reply ends
    with the policy's (``windows`` then holds that window's assessment, to store)."""
    if gateway.upstream is None:
        yield NoModelResponder.TEXT
        return
    guidance = result.decision.guidance if isinstance(result.decision, Guide) else None
    sent = False
    events = gateway.upstream.stream(gateway.model_messages(result.path, guidance))
    try:
        for event in events:
            if not isinstance(event, TextDelta):
                continue
            cleared = windows.feed(event.text)
            if cleared:
                sent = True
                yield cleared
            if windows.flagged is not None:
                break
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    if windows.flagged is None:
        rest = windows.finish()
        if rest:
            sent = True
            yield rest
    gateway.metrics.output(windows.last)
    if windows.flagged is not None:
        yield ("\n\n" if sent else "") + gateway.withheld_reply(windows.flagged.categories[0])

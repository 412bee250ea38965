"""Replaying a transcript through the service against a store, turn by turn.

Every user line of the transcript (edits included) yields one record, numbered from 0 in file
order: the decision on that turn, or ``{"error": "conversation_ended"}`` when the line was sent to
a branch that had already ended. A ``model_end`` line updates the record of the turn it answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convguard.assess.types import Assessment
from convguard.conversation import decision_to_dict
from convguard.errors import ConversationEnded, TranscriptError
from convguard.service import Service
from convguard.transcript import AssistantLine, EditLine, Event, Labels, ModelEndLine, UserLine

__all__ = ["REPLAY_ACCOUNT", "replay"]

REPLAY_ACCOUNT = "replay"


def replay(
    service: Service, events: Sequence[Event], *, title: str | None = None
) -> list[dict[str, Any]]:
    conversation = service.start(REPLAY_ACCOUNT, title=title)
    records: list[dict[str, Any]] = []
    leaf: str | None = None
    turn = -1
    for position, event in enumerate(events):
        if isinstance(event, AssistantLine):
            continue  # consumed with the turn it answers
        if isinstance(event, ModelEndLine):
            if records and "error" not in records[-1] and leaf is not None:
                _model_end(service, conversation.id, leaf, records[-1])
            continue
        turn += 1
        following = events[position + 1] if position + 1 < len(events) else None
        model_reply = following.content if isinstance(following, AssistantLine) else None
        labels = _assessment(service, event.labels)
        try:
            if isinstance(event, UserLine):
                result = service.send(
                    REPLAY_ACCOUNT,
                    conversation.id,
                    event.content,
                    leaf_id=leaf,
                    labels=labels,
                    model_reply=model_reply,
                )
            else:
                target = _user_message(service, conversation.id, leaf, event)
                result = service.edit(
                    REPLAY_ACCOUNT,
                    conversation.id,
                    target,
                    event.content,
                    labels=labels,
                    model_reply=model_reply,
                )
        except ConversationEnded as exc:
            records.append({"turn": turn, "error": "conversation_ended", "message": exc.message})
            continue
        leaf = result.reply.id if result.reply else result.user.id
        decision = decision_to_dict(result.decision)
        records.append(
            {
                "turn": turn,
                "line": event.line,
                "action": decision["action"],
                "reason": decision["reason"],
                "ended": result.ended,
                "categories": list(result.assessment.categories),
                "flags": list(result.assessment.flags),
                "score": round(result.assessment.score, 4),
                "strike": decision["strike"],
                "would_end": decision["would_end"],
                "reply": result.reply.content if result.reply else None,
                "message_id": result.user.id,
            }
        )
    return records


def _assessment(service: Service, labels: Labels | None) -> Assessment | None:
    if labels is None:
        return None
    return Assessment.from_labels(service.policy, labels.categories, labels.flags)


def _user_message(service: Service, conversation_id: str, leaf: str | None, event: EditLine) -> str:
    path = service.store.path(conversation_id, leaf) if leaf else []
    users = [m for m in path if m.role == "user"]
    if event.index >= len(users):
        allowed = f"0 to {len(users) - 1}" if users else "none yet"
        raise TranscriptError(
            f"line {event.line}: edit {event.index} is out of range; the current branch has "
            f"{len(users)} user message(s) ({allowed})"
        )
    return users[event.index].id


def _model_end(service: Service, conversation_id: str, leaf: str, record: dict[str, Any]) -> None:
    answer = service.model_end(REPLAY_ACCOUNT, conversation_id, leaf)
    data = decision_to_dict(answer)
    record["model_end"] = data["model_end"]
    record["action"] = data["action"]
    record["reason"] = data["reason"]
    record["would_end"] = data["would_end"]
    record["strike"] = data["strike"]
    if data["action"] == "end":
        record["ended"] = True
        record["reply"] = data["reply"]

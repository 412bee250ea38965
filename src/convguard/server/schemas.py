"""Request and response bodies of the REST API (pydantic at the edge)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from convguard.assess.types import Assessment
from convguard.conversation import ConversationState, Decision, decision_to_dict
from convguard.store import ConversationRecord, MessageRecord

__all__ = [
    "AssessRequest",
    "CreateConversation",
    "FeedbackRequest",
    "SendMessage",
    "ToolCallRequest",
    "conversation_json",
    "message_json",
    "state_json",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateConversation(_Strict):
    title: str | None = Field(default=None, max_length=200)
    locale: str | None = Field(
        default=None, max_length=35, pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$"
    )


class SendMessage(_Strict):
    content: str = Field(min_length=1)
    parent_id: str | None = Field(
        default=None,
        description="Answer this assistant message (a new branch if it already has answers).",
    )
    edit_of: str | None = Field(
        default=None, description="Replace this user message: a new branch."
    )


class FeedbackRequest(_Strict):
    comment: str = Field(default="", max_length=5000)
    rating: Literal["agree", "disagree"] | None = None
    leaf_id: str | None = None
    message_id: str | None = Field(
        default=None,
        description="An assistant turn this feedback reports as wrong (ended or not); "
        "without it, the feedback is about an ending.",
    )


class ChatTurn(_Strict):
    role: Literal["user", "assistant"]
    content: str


class AssessRequest(_Strict):
    text: str | None = None
    role: Literal["user", "assistant"] = "user"
    messages: list[ChatTurn] | None = None


class ScopeIn(_Strict):
    hosts: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)


class ToolCallRequest(_Strict):
    tool: str = Field(min_length=1, max_length=200)
    arguments: dict[str, Any]
    scope: ScopeIn | None = None
    context: list[str] = Field(default_factory=list, max_length=50)


def assessment_json(assessment: Assessment | None) -> dict[str, Any] | None:
    if assessment is None:
        return None
    data = assessment.to_dict()
    data["flagged"] = assessment.flagged
    data["score"] = round(assessment.score, 6)
    return data


def decision_json(decision: Decision | None) -> dict[str, Any] | None:
    return decision_to_dict(decision) if decision is not None else None


def message_json(message: MessageRecord) -> dict[str, Any]:
    return {
        "id": message.id,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "created_at": message.created_at.isoformat(),
        "ended": message.ended,
        "decision": decision_json(message.decision),
        "categories": list(message.assessment.categories) if message.assessment else [],
        "flags": list(message.assessment.flags) if message.assessment else [],
    }


def state_json(state: ConversationState) -> dict[str, Any]:
    return {
        "ended": state.ended,
        "end_reason": state.end_reason,
        "end_initiator": state.end_initiator,
        "user_turns": state.user_turns,
        "failed_redirections": state.failed_redirections,
        "warnings": state.warnings,
        "awaiting_end_confirmation": state.awaiting_end_confirmation,
        "would_have_ended": state.would_have_ended,
    }


def conversation_json(conversation: ConversationRecord) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "locale": conversation.locale,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "message_count": conversation.message_count,
    }

"""Request and response bodies of the REST API (pydantic at the edge)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from convguard.assess.types import Assessment
from convguard.conversation import ConversationState, Decision, decision_to_dict
from convguard.store import ConversationRecord, MessageRecord

__all__ = [
    "AssessRequest",
    "CheckedBody",
    "CreateConversation",
    "FeedbackRequest",
    "SendMessage",
    "ToolCallRequest",
    "anthropic_error_body",
    "conversation_json",
    "error_body",
    "message_json",
    "state_json",
    "text_problem",
]


#: The most characters one text may have (a message, or a text to assess).
MAX_TEXT_CHARS = 100_000


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The one error shape of every response (the OpenAI one, so OpenAI clients read it too)."""
    return {"error": {"type": kind, "code": kind, "message": message}}


#: Anthropic's error types by HTTP status (its API's error shape, for ``/v1/messages``).
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def anthropic_error_body(status: int, kind: str, message: str) -> dict[str, Any]:
    """Anthropic's error shape; ``convguard_code`` keeps our own type (``conversation_ended``…)."""
    error_type = ANTHROPIC_ERROR_TYPES.get(
        status, "invalid_request_error" if status < 500 else "api_error"
    )
    return {
        "type": "error",
        "error": {"type": error_type, "message": message, "convguard_code": kind},
    }


def text_problem(value: str) -> str | None:
    """What makes ``value`` unstorable as text (a NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return f"a NUL character at index {value.index(chr(0))}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate (U+{ord(value[exc.start]):04X}) at index {exc.start}"
    return None


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value (keys too), with where it is (``messages[0].content``)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                yield inner, key
            yield from _strings(item, inner)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


class CheckedBody(BaseModel):
    """A request body whose every string, however deeply nested, is storable text.

    Checked on the raw JSON before the fields are parsed, so a NUL or a lone surrogate anywhere
    is a 422 naming the field, before anything is stored or assessed.
    """

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        for where, text in _strings(data, ""):
            problem = text_problem(text)
            if problem is not None:
                raise PydanticCustomError(
                    "invalid_text",
                    "contains {problem}; send valid Unicode text without NUL characters",
                    {"field": where or "body", "problem": problem},
                )
        return data


class _Strict(CheckedBody):
    model_config = ConfigDict(extra="forbid")


class CreateConversation(_Strict):
    title: str | None = Field(default=None, max_length=200)
    locale: str | None = Field(
        default=None, max_length=35, pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$"
    )


class SendMessage(_Strict):
    content: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    parent_id: str | None = Field(
        default=None,
        max_length=64,
        description="Answer this assistant message (a new branch if it already has answers).",
    )
    edit_of: str | None = Field(
        default=None, max_length=64, description="Replace this user message: a new branch."
    )


class FeedbackRequest(_Strict):
    comment: str = Field(default="", max_length=5000)
    rating: Literal["agree", "disagree"] | None = None
    leaf_id: str | None = Field(default=None, max_length=64)
    message_id: str | None = Field(
        default=None,
        max_length=64,
        description="An assistant turn this feedback reports as wrong (ended or not); "
        "without it, the feedback is about an ending.",
    )


class ChatTurn(_Strict):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TEXT_CHARS)


class AssessRequest(_Strict):
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    role: Literal["user", "assistant"] = "user"
    messages: list[ChatTurn] | None = Field(default=None, max_length=100)


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
    cwd: str | None = Field(
        default=None,
        max_length=4096,
        description="The absolute path of the folder the call runs in, when known: relative "
        "paths are then also judged where they lie (rm -rf . in the home as rm -rf ~).",
    )


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

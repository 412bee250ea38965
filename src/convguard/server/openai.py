"""The OpenAI-compatible face of the gateway: ``/v1/chat/completions`` and ``/v1/moderations``.

This module only translates the wire format; the use cases are :class:`~convguard.service.Service`
methods. A chat client sends the whole history each time: it becomes alternating user turns and
replies (:func:`history_of`) that :meth:`Service.sync_history` maps onto the tree by
content-hashed ids. What the model reads on the user's side (system, developer and tool content)
is part of the user turn it precedes, so it is assessed with it; a deployment may refuse client
system prompts instead (``CONVGUARD_CLIENT_SYSTEM_PROMPTS=refuse``).

Conversations: the ``X-Convguard-Conversation`` header names one, else the ``user`` field. Without
either, a history that is only the opening starts a new conversation unless it is that opening
sent again (``x-stainless-retry-count`` of 1 or more, ``X-Convguard-Regenerate``, an
``Idempotency-Key`` seen before, or the same opening still waiting for its reply), and a longer
history goes to the conversation whose opening got its first reply
(:mod:`convguard.server.openings`). Within a conversation each history is its own branch:
identical histories are the same turn (a resend), and a history that differs anywhere branches
off where it differs, with its own state.

A resend of a turn that has a reply returns that reply (no model call); a pending turn is answered
by one request of the process while identical concurrent ones wait for its reply;
``X-Convguard-Regenerate: true`` asks for a new reply beside the stored one (a retry).

Where the policy declines, warns, supports, confirms or ends, the gateway answers with the
policy's own reply and does not call the model. The model's part (the end tool, output windows,
the agent guard on its tool calls) is :class:`~convguard.server.chat.ModelTurn`, shared with every
chat protocol; this module formats its events as OpenAI chunks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from convguard.assess.cascade import Cascade
from convguard.assess.types import Assessment
from convguard.errors import ConvguardError, InvalidInput
from convguard.server.arrival import arrived_at
from convguard.server.chat import (
    Calls,
    Done,
    ModelTurn,
    Replaced,
    Text,
    check_conversation_header,
    check_message_count,
    regenerate_asked,
    sync_conversation,
)
from convguard.server.gateway import Caller, Gateway, HashedIds, request_locale
from convguard.server.models import Models
from convguard.server.openings import resend_of
from convguard.server.rest import address_of, checked_path, gateway_of
from convguard.server.schemas import CheckedBody, error_body
from convguard.server.streaming import closing_stream
from convguard.service import HistoryTurn, TurnResult
from convguard.upstream import ToolCall

__all__ = ["ChatMessage", "history_of", "router", "text_of"]

router = APIRouter(tags=["openai"], dependencies=[Depends(checked_path)])


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    arguments: str = ""


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: str = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None


#: Sampling options forwarded upstream as given (validated as the OpenAI API does).
FORWARDED = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


class ChatRequest(CheckedBody):
    model_config = ConfigDict(extra="allow")
    model: str | None = Field(default=None, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(default=None, max_length=256)
    tools: list[dict[str, Any]] | None = None
    n: int = Field(default=1, ge=1, le=128)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = Field(default=None)
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)

    def options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FORWARDED if getattr(self, name) is not None}


class ModerationRequest(CheckedBody):
    model_config = ConfigDict(extra="allow")
    input: str | list[str]
    model: str | None = None


def text_of(message: ChatMessage) -> str:
    """The text a message carries (text parts joined); tool calls alone read as their names."""
    if isinstance(message.content, str):
        text = message.content
    elif isinstance(message.content, list):
        text = "".join(
            str(part.get("text", "")) for part in message.content if part.get("type") == "text"
        )
    else:
        text = ""
    if not text and message.tool_calls:
        text = f"[tool calls: {', '.join(c.function.name for c in message.tool_calls)}]"
    return text


#: How content the model reads on the user's side is labelled inside the user turn it joins.
_LABEL = {"system": "[system] ", "developer": "[developer] ", "tool": "[tool result] "}


def history_of(
    messages: Sequence[ChatMessage], *, system_prompts: Literal["assess", "refuse"] = "assess"
) -> list[HistoryTurn]:
    """The chat's messages as alternating user turns and replies (first and last a user turn).

    Everything up to a reply joins one user turn: user text as it is; system, developer and tool
    content labelled (``[system] ...``), so that it is assessed with the user's words and a
    change to it is a change to the turn.
    """
    if messages and messages[-1].role == "assistant":
        raise InvalidInput(
            "the last message must be a user message with text content (or a tool result)"
        )
    turns: list[HistoryTurn] = []
    side: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        text = text_of(message)
        if message.role in ("system", "developer") and system_prompts == "refuse":
            raise InvalidInput(
                f"messages[{index}] is a {message.role} message, and this deployment does not "
                "take system prompts from clients (CONVGUARD_CLIENT_SYSTEM_PROMPTS=refuse); "
                "remove it"
            )
        if message.role != "assistant":
            if text:
                side.append((message.role, text))
            continue
        if not text:
            continue
        if side:
            turns.append(HistoryTurn("user", _user_side(side)))
            side = []
        if not turns:
            raise InvalidInput(
                f"messages[{index}] is an assistant message before any user message; a history "
                "starts with a user message (system messages may come first)"
            )
        if turns[-1].role == "assistant":  # replies in a row read as one
            turns[-1] = HistoryTurn("assistant", f"{turns[-1].content}\n\n{text}")
        else:
            turns.append(HistoryTurn("assistant", text))
    if side:
        turns.append(HistoryTurn("user", _user_side(side)))
    if not turns or turns[-1].role != "user":
        raise InvalidInput(
            "the last message must be a user message with text content (or a tool result)"
        )
    return turns


def _user_side(parts: list[tuple[str, str]]) -> str:
    if len(parts) == 1 and parts[0][0] == "user":
        return parts[0][1]
    return "\n\n".join(_LABEL.get(role, "") + text for role, text in parts)


# --- chat completions ----------------------------------------------------------------------------


@router.post("/v1/chat/completions")
def chat_completions(
    request: Request,
    body: ChatRequest,
    authorization: Annotated[str | None, Header(alias="Authorization")] = None,
    scope_header: Annotated[str | None, Header(alias="X-Convguard-Conversation")] = None,
    regenerate: Annotated[str | None, Header(alias="X-Convguard-Regenerate")] = None,
    locale_header: Annotated[str | None, Header(alias="X-Convguard-Locale")] = None,
    retry_count: Annotated[str | None, Header(alias="x-stainless-retry-count")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    started = time.perf_counter()
    gateway = gateway_of(request)
    caller = gateway.caller(authorization, address=address_of(request))
    Models.of(gateway.settings).upstream_name(body.model)  # an unknown model: 404, nothing stored
    check_message_count(gateway, len(body.messages))
    if body.n != 1:
        raise InvalidInput(
            f"'n' is {body.n}: this gateway answers with one choice per request; "
            "send n=1 or leave it out (and send the request again for another answer)"
        )
    check_conversation_header(scope_header)
    again = regenerate_asked(regenerate)
    resend = resend_of(retry_count, idempotency_key, regenerate=again)
    result, ids = sync_conversation(
        gateway,
        caller,
        history_of(body.messages, system_prompts=gateway.settings.client_system_prompts),
        scope_header=scope_header,
        user=body.user,
        locale=request_locale(locale_header, body.model_extra),
        arrived=arrived_at(request, gateway.service.clock),
        resend=resend,
    )
    model = body.model or (gateway.upstream.model if gateway.upstream else "convguard")
    chat = _Chat(gateway, caller, body, result, ids, model, started, again)
    if body.stream:
        return StreamingResponse(
            closing_stream(chat.stream()), media_type="text/event-stream", headers=chat.headers()
        )
    return JSONResponse(chat.complete(), headers=chat.headers())


class _Chat:
    """One chat completion in OpenAI's format: a :class:`ModelTurn`, whole or streamed."""

    def __init__(
        self,
        gateway: Gateway,
        caller: Caller,
        body: ChatRequest,
        result: TurnResult,
        ids: HashedIds,
        model: str,
        started: float,
        regenerate: bool,
    ) -> None:
        self.gateway = gateway
        self.result = result
        self.model = model
        self.started = started
        self.turn = ModelTurn(
            gateway,
            caller,
            result,
            ids,
            messages=[m.model_dump(exclude_none=True) for m in body.messages],
            tools=body.tools or (),
            options=body.options(),
            context=[text_of(m) for m in body.messages if m.role == "user"],
            regenerate=regenerate,
            model=body.model,
        )
        self.id = f"chatcmpl-{result.user.id[:24]}"

    def headers(self) -> dict[str, str]:
        return {
            "X-Convguard-Conversation": self.result.conversation_id,
            "X-Convguard-Action": self.result.decision.action,
            "X-Convguard-Ended": "true" if self.result.ended else "false",
        }

    def _observe(self) -> None:
        self.gateway.metrics.requests.labels("chat_completions").observe(
            time.perf_counter() - self.started
        )

    def complete(self) -> dict[str, Any]:
        parts: list[str] = []
        calls: tuple[ToolCall, ...] = ()
        done = Done("stop")
        for event in self.turn.events(stream=False):
            match event:
                case Text(text):
                    parts.append(text)
                case Replaced(text):
                    parts = [text]
                case Calls(found):
                    calls = found
                case Done():
                    done = event
        self._observe()
        message: dict[str, Any] = {"role": "assistant", "content": "".join(parts)}
        if calls:
            message["tool_calls"] = [c.to_openai() for c in calls]
        usage = done.usage
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": done.finish, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": usage.get("prompt_tokens", 0),
                "completion_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
            },
            "convguard": self.turn.meta(),
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    def stream(self) -> Generator[str]:
        yield self._chunk({"role": "assistant", "content": ""})
        try:
            sent = False
            for event in self.turn.events(stream=True):
                match event:
                    case Text(text):
                        sent = True
                        yield self._chunk({"content": text})
                    case Replaced(text):
                        if not sent:
                            yield self._chunk({"content": text})
                    case Calls(calls):
                        yield self._chunk(
                            {
                                "tool_calls": [
                                    {"index": i, **c.to_openai()} for i, c in enumerate(calls)
                                ]
                            }
                        )
                    case Done(finish):
                        self._observe()
                        yield self._chunk({}, finish, convguard=self.turn.meta())
        except ConvguardError as exc:
            # the user's message is kept; the client sees an error event and can retry
            yield f"data: {json.dumps(error_body(exc.type, exc.message))}\n\n"
        except Exception as exc:  # the catch-all handler cannot reach a stream that has begun
            message = f"the gateway failed unexpectedly ({type(exc).__name__}); retry"
            yield f"data: {json.dumps(error_body('internal_error', message))}\n\n"
        yield "data: [DONE]\n\n"


# --- moderations ---------------------------------------------------------------------------------

#: Our labels → the OpenAI moderation categories they count towards.
POLICY_TO_OPENAI: dict[str, tuple[str, ...]] = {
    "sexual_minors": ("sexual/minors", "sexual"),
    "violent_extremism": ("violence", "illicit/violent"),
    "cbrn": ("illicit/violent",),
    "explosives": ("illicit/violent",),
    "cyberattack": ("illicit",),
    "weapons": ("illicit/violent",),
    "violence": ("violence",),
    "harassment": ("harassment",),
    "hate": ("hate",),
    "sexual": ("sexual",),
    "illicit": ("illicit",),
    "self_harm": ("self-harm",),
    "imminent_risk": ("self-harm/intent",),
}
OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def moderation_result(gateway: Gateway, assessment: Assessment) -> dict[str, Any]:
    scores = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
    flagged = dict.fromkeys(OPENAI_CATEGORIES, False)
    for ours, theirs in POLICY_TO_OPENAI.items():
        value = assessment.scores.get(ours, 0.0)
        over = assessment.has(ours)
        for name in theirs:
            scores[name] = max(scores[name], round(value, 6))
            flagged[name] = flagged[name] or over
    if assessment.has("violence") and assessment.has("harassment"):
        flagged["harassment/threatening"] = True
    return {
        "flagged": assessment.flagged or any(flagged.values()),
        "categories": flagged,
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in OPENAI_CATEGORIES},
        "convguard": {
            "categories": list(assessment.categories),
            "flags": list(assessment.flags),
            "scores": {k: round(v, 6) for k, v in assessment.scores.items()},
        },
    }


@router.post("/v1/moderations")
def moderations(
    request: Request,
    body: ModerationRequest,
    authorization: Annotated[str | None, Header(alias="Authorization")] = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    gateway = gateway_of(request)
    gateway.caller(authorization, address=address_of(request))
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise InvalidInput("'input' is empty; send a string or a list of strings")
    if len(texts) > 256:
        raise InvalidInput(f"'input' has {len(texts)} items; send at most 256 per request")
    assessments = _assess_many(gateway, texts)
    gateway.metrics.requests.labels("moderations").observe(time.perf_counter() - started)
    return {
        "id": f"modr-{int(time.time() * 1000)}",
        "model": body.model or "convguard",
        "results": [moderation_result(gateway, a) for a in assessments],
    }


def _assess_many(gateway: Gateway, texts: list[str]) -> list[Assessment]:
    """Batched through the cascade where there is one; one by one otherwise."""
    inner = getattr(gateway.assessor, "inner", gateway.assessor)
    if isinstance(inner, Cascade):
        scores, evidence = inner.score(texts)
        return [
            Assessment.from_scores(gateway.policy, s, evidence=e, source="cascade")
            for s, e in zip(scores, evidence, strict=True)
        ]
    return [gateway.assessor.assess(t) for t in texts]

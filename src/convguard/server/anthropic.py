"""The Anthropic-compatible face of the gateway: ``POST /v1/messages``.

It speaks the Anthropic Messages API (the official ``anthropic`` SDK, and so Claude Code with
``ANTHROPIC_BASE_URL``): a top-level system prompt, content blocks, ``tool_use`` and
``tool_result``, Anthropic's stream events and error shape; the key comes as ``x-api-key`` or
``Authorization: Bearer``. It only translates: the request becomes the same chat messages the
OpenAI endpoint reads (system, user, assistant with tool calls, tool results), so the same
:func:`~convguard.server.openai.history_of` and :meth:`Service.sync_history` apply, and the reply
is the same :class:`~convguard.server.chat.ModelTurn`, formatted as Anthropic content blocks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from convguard.errors import ConvguardError
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
from convguard.server.gateway import request_locale
from convguard.server.models import Models
from convguard.server.openai import (
    ChatMessage,
    FunctionCall,
    ToolCallIn,
    history_of,
    text_of,
)
from convguard.server.openings import resend_of
from convguard.server.rest import address_of, checked_path, gateway_of
from convguard.server.schemas import CheckedBody, anthropic_error_body
from convguard.server.streaming import closing_stream
from convguard.settings import Settings
from convguard.upstream import ToolCall, tool_input

__all__ = ["router", "to_chat_messages"]

router = APIRouter(tags=["anthropic"], dependencies=[Depends(checked_path)])

STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


class Block(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(max_length=64)
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None
    tool_use_id: str | None = None
    content: str | list[dict[str, Any]] | None = None


class AnthropicMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    user_id: str | None = Field(default=None, max_length=256)


class MessagesRequest(CheckedBody):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[Block] | None = None
    stream: bool = False
    tools: list[ToolDefinition] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop_sequences: list[str] | None = Field(default=None, max_length=16)
    metadata: Metadata | None = None

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"max_tokens": self.max_tokens}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.top_p is not None:
            options["top_p"] = self.top_p
        if self.stop_sequences:
            options["stop"] = list(self.stop_sequences)
        return options


def _text(content: str | list[Block] | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [b if isinstance(b, Block) else Block.model_validate(b) for b in content]
    return "".join(b.text or "" for b in parts if b.type == "text")


def to_chat_messages(body: MessagesRequest) -> list[ChatMessage]:
    """The request as OpenAI chat messages: the same history the chat completions endpoint reads."""
    messages: list[ChatMessage] = []
    system = _text(body.system)
    if system:
        messages.append(ChatMessage(role="system", content=system))
    for message in body.messages:
        blocks = (
            [Block(type="text", text=message.content)]
            if isinstance(message.content, str)
            else message.content
        )
        if message.role == "assistant":
            calls = [
                ToolCallIn(
                    id=b.id,
                    function=FunctionCall(name=b.name or "?", arguments=json.dumps(b.input or {})),
                )
                for b in blocks
                if b.type == "tool_use"
            ]
            text = "".join(b.text or "" for b in blocks if b.type == "text")
            messages.append(
                ChatMessage(role="assistant", content=text or None, tool_calls=calls or None)
            )
            continue
        for block in blocks:
            if block.type == "tool_result":
                messages.append(
                    ChatMessage(
                        role="tool", tool_call_id=block.tool_use_id, content=_text(block.content)
                    )
                )
        text = "".join(b.text or "" for b in blocks if b.type == "text")
        if text:
            messages.append(ChatMessage(role="user", content=text))
    return messages


@router.post("/v1/messages")
def messages(
    request: Request,
    body: MessagesRequest,
    x_api_key: Annotated[str | None, Header(alias="x-api-key")] = None,
    authorization: Annotated[str | None, Header(alias="Authorization")] = None,
    scope_header: Annotated[str | None, Header(alias="X-Convguard-Conversation")] = None,
    locale_header: Annotated[str | None, Header(alias="X-Convguard-Locale")] = None,
    regenerate: Annotated[str | None, Header(alias="X-Convguard-Regenerate")] = None,
    retry_count: Annotated[str | None, Header(alias="x-stainless-retry-count")] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    started = time.perf_counter()
    gateway = gateway_of(request)
    bearer = authorization or (f"Bearer {x_api_key}" if x_api_key else None)
    caller = gateway.caller(bearer, address=address_of(request))
    model = _requested_model(gateway.settings, body.model)
    Models.of(gateway.settings).upstream_name(model)  # an unknown model: 404, nothing stored
    check_message_count(gateway, len(body.messages))
    check_conversation_header(scope_header)
    again = regenerate_asked(regenerate)
    resend = resend_of(retry_count, idempotency_key, regenerate=again)
    chat = to_chat_messages(body)
    metadata = body.metadata.model_dump() if body.metadata else None
    result, ids = sync_conversation(
        gateway,
        caller,
        history_of(chat, system_prompts=gateway.settings.client_system_prompts),
        scope_header=scope_header,
        user=body.metadata.user_id if body.metadata else None,
        locale=request_locale(locale_header, {"metadata": metadata}),
        arrived=arrived_at(request, gateway.service.clock),
        resend=resend,
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.input_schema,
            },
        }
        for t in body.tools or ()
    ]
    turn = ModelTurn(
        gateway,
        caller,
        result,
        ids,
        messages=[m.model_dump(exclude_none=True) for m in chat],
        tools=tools,
        options=body.options(),
        context=[text_of(m) for m in chat if m.role == "user"],
        model=model,
        regenerate=again,
    )
    reply = _Reply(turn, f"msg_{result.user.id[:24]}", body.model)
    headers = {
        "X-Convguard-Conversation": result.conversation_id,
        "X-Convguard-Action": result.decision.action,
        "X-Convguard-Ended": "true" if result.ended else "false",
    }
    gateway.metrics.requests.labels("messages").observe(time.perf_counter() - started)
    if body.stream:
        return StreamingResponse(
            closing_stream(reply.stream()), media_type="text/event-stream", headers=headers
        )
    return JSONResponse(reply.complete(), headers=headers)


def _requested_model(settings: Settings, model: str) -> str | None:
    """The client's ``model`` as the upstream should read it: through ``CONVGUARD_MODELS`` when
    that is set, as it is to an Anthropic upstream, and otherwise not at all (an OpenAI-compatible
    upstream does not know Claude's names: it gets ``CONVGUARD_UPSTREAM_MODEL``)."""
    if settings.models is not None or settings.upstream_kind == "anthropic":
        return model
    return None


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": call.id or "toolu_convguard",
        "name": call.name,
        "input": tool_input(call.arguments),
    }


class _Reply:
    """A :class:`ModelTurn` as an Anthropic message, whole or as stream events."""

    def __init__(self, turn: ModelTurn, message_id: str, model: str) -> None:
        self.turn = turn
        self.id = message_id
        self.model = model

    def complete(self) -> dict[str, Any]:
        parts: list[str] = []
        calls: list[dict[str, Any]] = []
        done = Done("stop")
        for event in self.turn.events(stream=False):
            match event:
                case Text(text):
                    parts.append(text)
                case Replaced(text):
                    parts = [text]
                case Calls(found):
                    calls = [_tool_use(c) for c in found]
                case Done():
                    done = event
        text = "".join(parts)
        content = ([{"type": "text", "text": text}] if text else []) + calls
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": STOP_REASON[done.finish],
            "stop_sequence": None,
            "usage": {
                "input_tokens": done.usage.get("prompt_tokens", 0),
                "output_tokens": done.usage.get("completion_tokens", 0),
            },
            "convguard": self.turn.meta(),
        }

    def _event(self, kind: str, **data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data}, ensure_ascii=False)}\n\n"

    def stream(self) -> Generator[str]:
        yield self._event(
            "message_start",
            message={
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        )
        index = 0
        text_open = sent = False
        try:
            for event in self.turn.events(stream=True):
                if isinstance(event, Text | Replaced) and (isinstance(event, Text) or not sent):
                    if not text_open:
                        yield self._event(
                            "content_block_start",
                            index=index,
                            content_block={"type": "text", "text": ""},
                        )
                        text_open = True
                    sent = True
                    yield self._event(
                        "content_block_delta",
                        index=index,
                        delta={"type": "text_delta", "text": event.text},
                    )
                    continue
                if text_open:
                    yield self._event("content_block_stop", index=index)
                    text_open, index = False, index + 1
                if isinstance(event, Calls):
                    for call in event.calls:
                        block = _tool_use(call)
                        yield self._event(
                            "content_block_start",
                            index=index,
                            content_block={**block, "input": {}},
                        )
                        yield self._event(
                            "content_block_delta",
                            index=index,
                            delta={
                                "type": "input_json_delta",
                                "partial_json": json.dumps(block["input"]),
                            },
                        )
                        yield self._event("content_block_stop", index=index)
                        index += 1
                elif isinstance(event, Done):
                    yield self._event(
                        "message_delta",
                        delta={"stop_reason": STOP_REASON[event.finish], "stop_sequence": None},
                        usage={"output_tokens": event.usage.get("completion_tokens", 0)},
                        convguard=self.turn.meta(),
                    )
        except ConvguardError as exc:
            yield (
                "event: error\ndata: "
                + json.dumps(anthropic_error_body(exc.status, exc.type, exc.message))
                + "\n\n"
            )
            return
        except Exception as exc:  # the catch-all handler cannot reach a stream that has begun
            message = f"the gateway failed unexpectedly ({type(exc).__name__}); retry"
            yield (
                "event: error\ndata: "
                + json.dumps(anthropic_error_body(500, "internal_error", message))
                + "\n\n"
            )
            return
        yield self._event("message_stop")

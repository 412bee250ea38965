"""The OpenAI-compatible face of the gateway: ``/v1/chat/completions`` and ``/v1/moderations``.

A chat client sends the whole history each time. The history is mapped onto the conversation tree
by hashing every message with its parent (:class:`~convguard.server.gateway.HashedIds`): messages
already stored are found again, a changed message starts a new branch, and the scope — the
``X-Convguard-Conversation`` header, else the ``user`` field, else the first message — names the
conversation. Every user turn is decided; the newest one goes upstream only where the model may
answer (``allow``; ``guide`` with the policy's guidance as a system message).

Where the policy declines, warns, supports, confirms or ends, the gateway answers with the
policy's own reply and does not call the model: the reply is then exact (a warning says plainly
that the conversation may be ended; crisis resources are the policy's verified services, never a
model's guess), costs nothing upstream, and cannot be talked around by the very message that was
declined. The upstream is offered ``end_conversation``; a call is honoured only where the rule
allows it, otherwise refused, logged, and the model's turn continues. Assistant output is assessed
too, in chunks while streaming: a chunk that crosses a threshold is withheld and the reply ends
with the policy's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from convguard.assess.cascade import Cascade
from convguard.assess.stream import OutputStream
from convguard.assess.types import Assessment
from convguard.conversation import End, Guide, decide, decision_to_dict, fold, reply_of
from convguard.errors import ConvguardError, InvalidInput
from convguard.server.app import error_body
from convguard.server.gateway import Caller, Gateway, HashedIds, conversation_key, request_locale
from convguard.server.models import Models, upstream_for
from convguard.server.rest import gateway_of
from convguard.service import TurnResult
from convguard.store import ConversationRecord, MessageRecord, NewMessage, path_of
from convguard.upstream import END_TOOL, END_TOOL_NAME, Completion, TextDelta, ToolCall, Upstream

__all__ = ["router"]

router = APIRouter(tags=["openai"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = None
    tools: list[dict[str, Any]] | None = None


class ModerationRequest(BaseModel):
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
        names = [str((c.get("function") or {}).get("name", "?")) for c in message.tool_calls]
        text = f"[tool calls: {', '.join(names)}]"
    return text


# --- chat completions ----------------------------------------------------------------------------


@router.post("/v1/chat/completions")
def chat_completions(
    request: Request,
    body: ChatRequest,
    authorization: Annotated[str | None, Header(alias="Authorization")] = None,
    scope_header: Annotated[str | None, Header(alias="X-Convguard-Conversation")] = None,
    locale_header: Annotated[str | None, Header(alias="X-Convguard-Locale")] = None,
) -> Any:
    started = time.perf_counter()
    gateway = gateway_of(request)
    caller = gateway.caller(authorization)
    Models.of(gateway.settings).upstream_name(body.model)  # an unknown model: 404, nothing stored
    turns = [(m.role, text_of(m)) for m in body.messages if m.role in ("user", "assistant")]
    turns = [(role, text) for role, text in turns if text]
    if not turns or turns[-1][0] != "user":
        raise InvalidInput("the last message must be a user message with text content")
    scope = scope_header or body.user or f"first:{turns[0][1]}"
    conversation = gateway.get_or_create_conversation(
        caller,
        conversation_key(caller.account_id, scope),
        title=turns[0][1][:80],
        locale=request_locale(locale_header, body.model_extra),
    )
    ids = HashedIds(conversation.id)
    known = {m.id: m for m in gateway.store.messages(conversation.id)}  # read once per request
    parent = _materialise(gateway, caller, conversation, ids, turns[:-1], known)
    result = _turn(gateway, caller, conversation, ids, parent, turns[-1][1], known)
    model = body.model or (gateway.upstream.model if gateway.upstream else "convguard")
    chat = _Chat(gateway, caller, body, result, ids, model, started)
    if body.stream:
        return StreamingResponse(
            chat.stream(), media_type="text/event-stream", headers=chat.headers()
        )
    return JSONResponse(chat.complete(), headers=chat.headers())


def _materialise(
    gateway: Gateway,
    caller: Caller,
    conversation: ConversationRecord,
    ids: HashedIds,
    history: Sequence[tuple[str, str]],
    known: dict[str, MessageRecord],
) -> str | None:
    """Find (or store) every earlier message of the history; returns the parent of the new turn.

    ``known``: the conversation's messages by id, kept up to date with what is stored here.
    """
    parent: str | None = None
    for index, (role, text) in enumerate(history):
        if role == "user":
            mid = ids.user(parent, text)
            if mid not in known:
                nxt = history[index + 1] if index + 1 < len(history) else None
                given = nxt[1] if nxt and nxt[0] == "assistant" else None
                _turn(gateway, caller, conversation, ids, parent, text, known, model_reply=given)
        else:
            assert parent is not None
            mid = ids.reply(parent, text)
            if mid not in known:
                reply = _add_assistant(gateway, conversation.id, parent, mid, text, known)
                known[reply.id] = reply
        parent = mid
    return parent


def _add_assistant(
    gateway: Gateway,
    conversation_id: str,
    user_id: str,
    reply_id: str,
    text: str,
    known: dict[str, MessageRecord],
) -> MessageRecord:
    now = gateway.service.clock()
    message = NewMessage("assistant", text, id=reply_id)
    siblings = [m for m in known.values() if m.parent_id == user_id]
    if not siblings:
        return gateway.store.add_reply(
            conversation_id, user_message_id=user_id, reply=message, now=now
        )
    return gateway.store.retry_reply(
        conversation_id, message_id=siblings[0].id, reply=message, now=now
    )


def _turn(
    gateway: Gateway,
    caller: Caller,
    conversation: ConversationRecord,
    ids: HashedIds,
    parent: str | None,
    text: str,
    known: dict[str, MessageRecord],
    *,
    model_reply: str | None = None,
) -> TurnResult:
    """The user turn ``text`` under ``parent``: appended, or a new branch beside earlier answers.

    ``known`` (the conversation's messages by id, in stored order) gains what is stored here.
    """
    existing = [m for m in known.values() if m.parent_id == parent]  # stored order = sibling order
    mine = ids.user(parent, text)
    same = [m for m in existing if m.id == mine]
    if same:
        return _existing_turn(gateway, conversation.id, same[0], known)
    users = [m for m in existing if m.role == "user"]
    defer = model_reply is None
    if users:
        result = gateway.service.edit(
            caller.account,
            conversation.id,
            users[0].id,
            text,
            model_reply=model_reply,
            ids=ids,
            defer_model_reply=defer,
            tree=list(known.values()),
            owned=conversation,
        )
    else:
        leaf = parent
        if parent is None and existing:
            raise InvalidInput("this conversation already has a first message")  # unreachable
        result = gateway.service.send(
            caller.account,
            conversation.id,
            text,
            leaf_id=leaf,
            model_reply=model_reply,
            ids=ids,
            defer_model_reply=defer,
            tree=list(known.values()),
            owned=conversation,
        )
    known.update({m.id: m for m in (result.user, result.reply) if m is not None})
    gateway.record(result)
    return result


def _existing_turn(
    gateway: Gateway, conversation_id: str, user: MessageRecord, known: dict[str, MessageRecord]
) -> TurnResult:
    """The same user message sent again (a client retry): its stored decision stands."""
    path = path_of(list(known.values()), user.id)
    assert user.decision is not None and user.assessment is not None
    replies = [m for m in known.values() if m.parent_id == user.id]
    written = reply_of(user.decision)
    reply = next((r for r in replies if written is not None and r.content == written), None)
    return TurnResult(
        conversation_id,
        user,
        reply,
        user.decision,
        user.assessment,
        fold(gateway.policy, [m.as_step() for m in path] + ([reply.as_step()] if reply else [])),
        gateway.policy.version,
        tuple(path),
    )


class _Chat:
    """One chat completion: the reply (policy's or model's), whole or streamed, stored once."""

    def __init__(
        self,
        gateway: Gateway,
        caller: Caller,
        body: ChatRequest,
        result: TurnResult,
        ids: HashedIds,
        model: str,
        started: float,
    ) -> None:
        self.gateway = gateway
        self.caller = caller
        self.body = body
        self.result = result
        self.ids = ids
        self.model = model
        self.started = started
        self.decision = result.decision
        self.ended = result.ended
        self.withheld: Assessment | None = None
        self.tool_verdicts: list[dict[str, Any]] = []
        self.id = f"chatcmpl-{result.user.id[:24]}"

    def headers(self) -> dict[str, str]:
        return {
            "X-Convguard-Conversation": self.result.conversation_id,
            "X-Convguard-Action": self.decision.action,
            "X-Convguard-Ended": "true" if self.result.ended else "false",
        }

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

    # -- the model's part --------------------------------------------------------------------

    def _upstream_messages(self) -> list[dict[str, Any]]:
        guidance = self.decision.guidance if isinstance(self.decision, Guide) else None
        messages = [m.model_dump(exclude_none=True) for m in self.body.messages]
        if guidance:
            messages.insert(0, {"role": "system", "content": guidance})
        return messages

    def _tools(self) -> list[dict[str, Any]]:
        return [*(self.body.tools or ()), dict(END_TOOL)]

    def _settle(self, completion: Completion, sent: str) -> tuple[str, list[ToolCall], str]:
        """After the model finished: answer an end call, store the reply. Returns the text to
        send after what was sent, the client's tool calls, and the finish reason."""
        ends = [c for c in completion.tool_calls if c.name == END_TOOL_NAME]
        calls = [c for c in completion.tool_calls if c.name != END_TOOL_NAME]
        extra = ""
        calls, refusals = self._guard(calls)
        if refusals:
            extra += ("\n\n" if sent else "") + refusals
        honoured = bool(ends) and self._end_would_be_honoured()
        if ends and not honoured and not (sent or extra) and not calls:
            # refused: the model's turn continues, so it is asked once more, without the tool
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
        reply = self.gateway.store.add_reply(  # the conversation was checked for the turn
            self.result.conversation_id,
            user_message_id=self.result.user.id,
            reply=NewMessage("assistant", stored, id=self.ids.reply(self.result.user.id, stored)),
            now=self.gateway.service.clock(),
        )
        finish = (
            "tool_calls"
            if calls
            else ("length" if completion.finish_reason == "length" else "stop")
        )
        if ends:
            answer = self.gateway.service.model_end(
                self.caller.account, self.result.conversation_id, reply.id
            )
            self.decision = answer  # honoured: the end; refused: the turn, with why
            if isinstance(answer, End):
                self.ended = True
                self.gateway.metrics.ended("model")
                extra += ("\n\n" if stored else "") + answer.reply
                calls, finish = [], "stop"
        return extra, calls, finish

    def _guard(self, calls: list[ToolCall]) -> tuple[list[ToolCall], str]:
        """Assess the client's tool calls before returning them (B9): denied ones are replaced
        by a refusal the client can show; every verdict goes into the metadata."""
        from convguard.agent import assess_tool_call

        context = [text_of(m) for m in self.body.messages if m.role == "user"][-3:]
        kept: list[ToolCall] = []
        refusals: list[str] = []
        for call in calls:
            try:
                arguments = json.loads(call.arguments or "{}")
            except json.JSONDecodeError:
                arguments = {"text": call.arguments}
            if not isinstance(arguments, dict):
                arguments = {"text": json.dumps(arguments)}
            verdict = assess_tool_call(
                call.name, arguments, scope=self.gateway.scope, context=context
            )
            self.tool_verdicts.append({"id": call.id, **verdict.to_dict()})
            if verdict.verdict == "deny":
                reason = verdict.reasons[0] if verdict.reasons else "it breaks the usage policy"
                refusals.append(f"I won't run the {call.name} call: {reason}.")
            else:
                kept.append(call)
        return kept, " ".join(refusals)

    def _end_would_be_honoured(self) -> bool:
        path = self.result.path
        before = fold(self.gateway.policy, [m.as_step() for m in path[:-1]])
        answer = decide(
            self.gateway.policy, before, self.result.assessment, model_requests_end=True
        )
        return isinstance(answer, End)

    def _upstream(self) -> Upstream:
        """The upstream, asked for the model the client named (through CONVGUARD_MODELS)."""
        assert self.gateway.upstream is not None
        name = Models.of(self.gateway.settings).upstream_name(self.body.model)
        return upstream_for(self.gateway.upstream, name)

    def _continue_after_refusal(self) -> str:
        messages = self._upstream_messages()
        messages.append(
            {
                "role": "system",
                "content": "Your end_conversation call was declined by the deployment's policy: "
                "the conversation continues. Reply to the user.",
            }
        )
        text = self._upstream().complete(messages, tools=self.body.tools or ()).content
        return text or "(no reply)"

    def _check_output(self, text: str) -> Assessment:
        assessment = self.gateway.assessor.assess(text, role="assistant")
        self.gateway.metrics.output(assessment)
        return assessment

    def _withheld_reply(self, assessment: Assessment) -> str:
        self.withheld = assessment
        self.gateway.metrics.withheld.inc()
        label = self.gateway.policy.categories[assessment.categories[0]].label
        return self.gateway.policy.reply("redirect", label=label)

    # -- non-streaming -----------------------------------------------------------------------

    def complete(self) -> dict[str, Any]:
        written = (
            reply_of(self.decision)
            if self.result.reply is not None or reply_of(self.decision)
            else None
        )
        calls: list[ToolCall] = []
        finish = "stop"
        usage: dict[str, int] = {}
        if written is not None:
            content = written
        elif self.gateway.upstream is None:
            content = self._placeholder()
        else:
            completion = self._call()
            usage = dict(completion.usage)
            content = completion.content
            checked = self._check_output(content) if content else None
            if checked is not None and checked.categories:
                content = self._withheld_reply(checked)
                completion = Completion(content, (), "stop", completion.model)
            extra, calls, finish = self._settle(completion, content)
            content += extra
        self._observe()
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = [c.to_openai() for c in calls]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": usage.get("prompt_tokens", 0),
                "completion_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
            },
            "convguard": self.meta(),
        }

    def _call(self) -> Completion:
        began = time.perf_counter()
        try:
            return self._upstream().complete(self._upstream_messages(), tools=self._tools())
        finally:
            self.gateway.metrics.upstream.observe(time.perf_counter() - began)

    def _placeholder(self) -> str:
        from convguard.upstream import NoModelResponder

        text = NoModelResponder.TEXT
        self.gateway.service.add_reply(
            self.caller.account,
            self.result.conversation_id,
            self.result.user.id,
            text,
            reply_id=self.ids.reply(self.result.user.id, text),
        )
        return text

    def _observe(self) -> None:
        self.gateway.metrics.requests.labels("chat_completions").observe(
            time.perf_counter() - self.started
        )

    # -- streaming ---------------------------------------------------------------------------

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

    def stream(self) -> Iterator[str]:
        yield self._chunk({"role": "assistant", "content": ""})
        try:
            yield from self._stream_body()
        except ConvguardError as exc:
            # the user's message is kept; the client sees an error event and can retry
            yield f"data: {json.dumps(error_body(exc.type, exc.message))}\n\n"
        yield "data: [DONE]\n\n"

    def _stream_body(self) -> Iterator[str]:
        written = reply_of(self.decision)
        if written is not None or self.gateway.upstream is None:
            text = written if written is not None else self._placeholder()
            yield self._chunk({"content": text})
            self._observe()
            yield self._chunk({}, "stop", convguard=self.meta())
            return
        # Text is held back until an assessment has cleared it, so a chunk that crosses a
        # threshold is never sent: it is dropped and the reply ends with the policy's.
        watch = OutputStream(self.gateway.assessor, every_chars=80, min_chars=20)
        sent: list[str] = []
        held: list[str] = []
        completion: Completion | None = None
        events = self._upstream().stream(self._upstream_messages(), tools=self._tools())
        try:
            for event in events:
                if not isinstance(event, TextDelta):
                    completion = event
                    continue
                held.append(event.text)
                checked = watch.feed(event.text)
                if checked is None:
                    continue
                if checked.categories:
                    break
                sent += held
                yield self._chunk({"content": "".join(held)})
                held = []
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
        final = watch.last if watch.last is not None and watch.last.categories else watch.finish()
        self.gateway.metrics.output(final)
        if final.categories:
            replacement = ("\n\n" if sent else "") + self._withheld_reply(final)
            sent.append(replacement)
            yield self._chunk({"content": replacement})
            completion = Completion("".join(sent), (), "stop", self.model)
        elif held:
            sent += held
            yield self._chunk({"content": "".join(held)})
        if completion is None:
            completion = Completion("".join(sent), (), "stop", self.model)
        text = "".join(sent)
        extra, calls, finish = self._settle(completion, text)
        if extra:
            yield self._chunk({"content": extra})
        if calls:
            yield self._chunk(
                {"tool_calls": [{"index": i, **c.to_openai()} for i, c in enumerate(calls)]}
            )
        self._observe()
        yield self._chunk({}, finish, convguard=self.meta())


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
    gateway.caller(authorization)
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

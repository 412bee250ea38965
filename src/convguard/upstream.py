"""The model that writes the assistant's replies when the policy does not.

Two levels:

- :class:`Responder` — what the service needs for a whole reply: the branch so far (root first)
  and, for a ``guide`` decision, the guidance to add to the model's instructions.
  :class:`NoModelResponder` stands in, clearly labelled, until a model is configured;
- :class:`Upstream` — what the gateway needs: an OpenAI-style message list in, a
  :class:`Completion` out, whole or streamed as :class:`TextDelta` events ending in a
  :class:`Completion`. :class:`OpenAIUpstream` speaks to any OpenAI-compatible
  ``/chat/completions``; :class:`AnthropicUpstream` to the Anthropic Messages API.

A tool call's arguments travel as JSON text in OpenAI terms and as an object (``input``) in
Anthropic's; :func:`tool_input` turns the one into the other, for requests to an Anthropic
upstream and for replies to Anthropic clients alike.

The upstream is offered :data:`END_TOOL`, an ``end_conversation`` function; a call to it comes
back as a :class:`ToolCall` like any other, and the gateway decides whether to honour it (B7).
Failures become :class:`~convguard.errors.UpstreamError` (502) or
:class:`~convguard.errors.UpstreamTimeout` (504).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from convguard.conversation import Message
from convguard.errors import UpstreamError, UpstreamTimeout

__all__ = [
    "END_TOOL",
    "END_TOOL_NAME",
    "AnthropicUpstream",
    "Completion",
    "NoModelResponder",
    "OpenAIUpstream",
    "Responder",
    "StaticResponder",
    "TextDelta",
    "ToolCall",
    "Upstream",
    "UpstreamResponder",
    "tool_input",
]

END_TOOL_NAME = "end_conversation"
END_TOOL: Mapping[str, Any] = {
    "type": "function",
    "function": {
        "name": END_TOOL_NAME,
        "description": (
            "End this conversation permanently. Use only as a last resort, when the user keeps "
            "pressing for seriously harmful content or keeps abusing you after you have "
            "redirected and warned them. Never use it if the user may be at risk of harming "
            "themselves or others. The user can always start a new conversation."
        ),
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why, briefly."}},
        },
    },
}


class Responder(Protocol):
    def reply(self, path: Sequence[Message], *, guidance: str | None = None) -> str: ...


class NoModelResponder:
    """Stands in for a model: says plainly that none is configured."""

    TEXT = (
        "[convguard: no model is configured, so this is a placeholder reply. Set "
        "CONVGUARD_UPSTREAM_URL (and CONVGUARD_UPSTREAM_API_KEY, CONVGUARD_UPSTREAM_MODEL) to "
        "forward allowed turns to an OpenAI-compatible model.]"
    )

    def reply(self, path: Sequence[Message], *, guidance: str | None = None) -> str:
        return self.TEXT


class StaticResponder:
    """Always answers the same text (replays, tests)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def reply(self, path: Sequence[Message], *, guidance: str | None = None) -> str:
        return self.text


# --- the wire-level upstream ---------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class Completion:
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    model: str = ""
    usage: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TextDelta:
    text: str


class Upstream(Protocol):
    """``options``: the client's sampling options in OpenAI terms (``temperature``, ``top_p``,
    ``max_tokens``, ``max_completion_tokens``, ``stop``, ``seed``, the penalties).

    A stream ends with a :class:`Completion`; one that breaks off (no ``[DONE]``, no
    ``message_stop``) or is not a stream at all raises :class:`UpstreamError` instead, so a cut
    reply is never taken for a whole one.
    """

    model: str

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Completion: ...

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Iterator[TextDelta | Completion]: ...

    def close(self) -> None: ...


class UpstreamResponder:
    """A :class:`Responder` over an :class:`Upstream` (guidance goes in as a system message)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    def reply(self, path: Sequence[Message], *, guidance: str | None = None) -> str:
        messages: list[dict[str, Any]] = (
            [{"role": "system", "content": guidance}] if guidance else []
        )
        messages += [{"role": m.role, "content": m.content} for m in path]
        return self.upstream.complete(messages).content


class _HTTPUpstream:
    def __init__(
        self,
        *,
        url: str,
        model: str,
        headers: Mapping[str, str],
        timeout: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.model = model
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers=dict(headers),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        try:
            response = self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                f"the upstream model at {str(self._client.base_url)!r} did not answer in time; "
                "your message was kept: retry the turn"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"the upstream model at {str(self._client.base_url)!r} could not be reached "
                f"({exc}); your message was kept: retry the turn"
            ) from exc
        _check(response)
        try:
            return response.json()
        except json.JSONDecodeError as exc:
            raise UpstreamError(
                f"the upstream model answered non-JSON: {response.text[:200]!r}"
            ) from exc

    def _events(self, path: str, body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """(event, data) pairs of a server-sent-events response."""
        try:
            with self._client.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    response.read()
                    _check(response)
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    response.read()
                    raise UpstreamError(
                        f"the upstream model answered {kind or 'no content type'!r} where a "
                        f"stream (text/event-stream) was asked for: {response.text[:200]!r}; "
                        "your message was kept: retry the turn"
                    )
                event = "message"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        yield event, line[5:].strip()
                        event = "message"
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                "the upstream model stopped answering mid-stream; your message was kept: retry"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the upstream stream failed ({exc}); retry the turn") from exc


def _check(response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    raise UpstreamError(
        f"the upstream model answered HTTP {response.status_code}: {response.text[:300]!r}; "
        "your message was kept: retry the turn"
    )


class OpenAIUpstream(_HTTPUpstream):
    """Any OpenAI-compatible ``/chat/completions`` endpoint (``url`` is the ``/v1`` base)."""

    def __init__(
        self,
        *,
        url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(
            url=url, model=model, headers=headers, timeout=timeout, transport=transport
        )

    def _body(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        stream: bool,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {**(options or {}), "model": self.model, "messages": list(messages)}
        if tools:
            body["tools"] = list(tools)
        if stream:
            body["stream"] = True
        return body

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Completion:
        data = self._post("/chat/completions", self._body(messages, tools, False, options))
        try:
            choice = data["choices"][0]
            message = choice["message"]
            calls = tuple(
                ToolCall(c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
                for c in message.get("tool_calls") or ()
            )
            return Completion(
                content=message.get("content") or "",
                tool_calls=calls,
                finish_reason=choice.get("finish_reason") or "stop",
                model=data.get("model", self.model),
                usage=data.get("usage") or {},
            )
        except (KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(
                f"the upstream reply is not a chat completion: {data!r:.300}"
            ) from exc

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Iterator[TextDelta | Completion]:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish = "stop"
        done = False
        body = self._body(messages, tools, True, options)
        for _, data in self._events("/chat/completions", body):
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as exc:
                raise UpstreamError(f"the upstream stream sent non-JSON: {data[:200]!r}") from exc
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    text.append(delta["content"])
                    yield TextDelta(delta["content"])
                for part in delta.get("tool_calls") or ():
                    slot = calls.setdefault(
                        part.get("index", 0), {"id": "", "name": "", "args": ""}
                    )
                    slot["id"] = part.get("id") or slot["id"]
                    function = part.get("function") or {}
                    slot["name"] = function.get("name") or slot["name"]
                    slot["args"] += function.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
        if not done:
            raise UpstreamError(
                "the upstream stream ended without [DONE]: the reply was cut off; "
                "your message was kept: retry the turn"
            )
        yield Completion(
            content="".join(text),
            tool_calls=tuple(
                ToolCall(c["id"], c["name"], c["args"] or "{}") for _, c in sorted(calls.items())
            ),
            finish_reason=finish,
            model=self.model,
        )


def tool_input(arguments: object) -> dict[str, Any]:
    """An OpenAI tool call's arguments (JSON text) as an Anthropic ``tool_use`` input, which is
    always an object: a JSON object as it is; no arguments (missing or blank text) as ``{}``;
    anything else (text that is not JSON, a JSON array, string or number) as
    ``{"arguments": TEXT}``, the arguments as the model wrote them, so nothing is lost and a
    client is never handed an input that is not an object. Arguments a client sent as a value
    instead of JSON text are read as that value's JSON."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    try:
        value = json.loads(text)
    except ValueError:
        return {"arguments": text}
    return value if isinstance(value, dict) else {"arguments": text}


def _anthropic_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages as Messages API turns: an assistant's ``tool_calls`` become
    ``tool_use`` blocks, ``tool`` messages ``tool_result`` blocks in a user turn, and turns of
    one role in a row merge (the API wants user and assistant to alternate). A turn of one text
    block is sent as a plain string."""
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for m in messages:
        role = m["role"]
        blocks: list[dict[str, Any]] = []
        if role == "tool":
            role = "user"
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": str(m.get("tool_call_id") or ""),
                    "content": str(m.get("content") or ""),
                }
            )
        elif role in ("user", "assistant"):
            if m.get("content"):
                blocks.append({"type": "text", "text": str(m["content"])})
            for call in m.get("tool_calls") or () if role == "assistant" else ():
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(call.get("id") or ""),
                        "name": str(function.get("name") or ""),
                        "input": tool_input(function.get("arguments")),
                    }
                )
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return [
        {
            "role": role,
            "content": blocks[0]["text"]
            if len(blocks) == 1 and blocks[0]["type"] == "text"
            else blocks,
        }
        for role, blocks in turns
    ]


class AnthropicUpstream(_HTTPUpstream):
    """The Anthropic Messages API, spoken to in OpenAI terms by the rest of convguard."""

    VERSION = "2023-06-01"

    def __init__(
        self,
        *,
        url: str = "https://api.anthropic.com",
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_tokens: int = 1024,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"anthropic-version": self.VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        base = url.rstrip("/").removesuffix("/v1")
        super().__init__(
            url=base, model=model, headers=headers, timeout=timeout, transport=transport
        )
        self.max_tokens = max_tokens

    def _body(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        stream: bool,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        system = "\n\n".join(
            str(m["content"])
            for m in messages
            if m["role"] in ("system", "developer") and m.get("content")
        )
        turns = _anthropic_turns(messages)
        given = dict(options or {})
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": given.get("max_completion_tokens")
            or given.get("max_tokens")
            or self.max_tokens,
            "messages": turns,
        }
        for name in ("temperature", "top_p"):
            if given.get(name) is not None:
                body[name] = given[name]
        if given.get("stop") is not None:
            stop = given["stop"]
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {
                    "name": t["function"]["name"],
                    "description": t["function"].get("description", ""),
                    "input_schema": t["function"].get("parameters") or {"type": "object"},
                }
                for t in tools
                if t.get("type") == "function"
            ]
        if stream:
            body["stream"] = True
        return body

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Completion:
        data = self._post("/v1/messages", self._body(messages, tools, False, options))
        try:
            blocks = data["content"]
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            calls = tuple(
                ToolCall(b["id"], b["name"], json.dumps(b.get("input") or {}))
                for b in blocks
                if b.get("type") == "tool_use"
            )
            usage = data.get("usage") or {}
            return Completion(
                content=text,
                tool_calls=calls,
                finish_reason=_STOP.get(data.get("stop_reason") or "", "stop"),
                model=data.get("model", self.model),
                usage={
                    "prompt_tokens": usage.get("input_tokens", 0),
                    "completion_tokens": usage.get("output_tokens", 0),
                },
            )
        except (KeyError, TypeError) as exc:
            raise UpstreamError(f"the upstream reply is not a message: {data!r:.300}") from exc

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        options: Mapping[str, Any] | None = None,
    ) -> Iterator[TextDelta | Completion]:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish = "stop"
        done = False
        body = self._body(messages, tools, True, options)
        for event, data in self._events("/v1/messages", body):
            try:
                payload = json.loads(data)
            except json.JSONDecodeError as exc:
                raise UpstreamError(f"the upstream stream sent non-JSON: {data[:200]!r}") from exc
            kind = payload.get("type", event)
            if kind == "content_block_start":
                block = payload.get("content_block") or {}
                if block.get("type") == "tool_use":
                    calls[payload.get("index", 0)] = {
                        "id": block.get("id", ""),
                        "name": block.get("name", ""),
                        "args": "",
                    }
            elif kind == "content_block_delta":
                delta = payload.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    text.append(delta["text"])
                    yield TextDelta(delta["text"])
                elif delta.get("type") == "input_json_delta":
                    slot = calls.get(payload.get("index", 0))
                    if slot is not None:
                        slot["args"] += delta.get("partial_json", "")
            elif kind == "message_delta":
                reason = (payload.get("delta") or {}).get("stop_reason")
                finish = _STOP.get(reason or "", finish)
            elif kind == "error":
                raise UpstreamError(f"the upstream stream reported an error: {data[:300]}")
            elif kind == "message_stop":
                done = True
        if not done:
            raise UpstreamError(
                "the upstream stream ended without message_stop: the reply was cut off; "
                "your message was kept: retry the turn"
            )
        yield Completion(
            content="".join(text),
            tool_calls=tuple(
                ToolCall(c["id"], c["name"], c["args"] or "{}") for _, c in sorted(calls.items())
            ),
            finish_reason=finish,
            model=self.model,
        )


_STOP = {
    "end_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "stop_sequence": "stop",
}

"""The upstream clients over httpx.MockTransport: a stream is complete only with its end marker."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from convguard.errors import UpstreamError
from convguard.upstream import (
    AnthropicUpstream,
    Completion,
    OpenAIUpstream,
    TextDelta,
    Upstream,
    tool_input,
)


def sse(*events: str, kind: str = "text/event-stream") -> httpx.MockTransport:
    body = "".join(f"data: {e}\n\n" for e in events).encode()
    return httpx.MockTransport(
        lambda request: httpx.Response(200, content=body, headers={"content-type": kind})
    )


OPENAI_CHUNK = json.dumps({"choices": [{"delta": {"content": "Hello"}, "finish_reason": None}]})
ANTHROPIC_EVENTS = [
    json.dumps({"type": "message_start"}),
    json.dumps(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        }
    ),
    json.dumps({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
]


def openai(transport: httpx.MockTransport) -> Upstream:
    return OpenAIUpstream(url="http://up.test/v1", model="m", transport=transport)


def anthropic(transport: httpx.MockTransport) -> Upstream:
    return AnthropicUpstream(url="http://up.test", model="m", transport=transport)


@pytest.mark.parametrize(
    ("build", "events"),
    [
        (openai, [OPENAI_CHUNK, "[DONE]"]),
        (anthropic, [*ANTHROPIC_EVENTS, json.dumps({"type": "message_stop"})]),
    ],
    ids=["openai", "anthropic"],
)
def test_a_complete_stream_ends_in_a_completion(build: object, events: list[str]) -> None:
    upstream = build(sse(*events))  # type: ignore[operator]
    out = list(upstream.stream([{"role": "user", "content": "hi"}]))
    assert out[0] == TextDelta("Hello") and isinstance(out[-1], Completion)
    assert out[-1].content == "Hello"


@pytest.mark.parametrize(
    ("build", "transport", "words"),
    [
        (openai, sse(OPENAI_CHUNK), "without [DONE]"),
        (anthropic, sse(*ANTHROPIC_EVENTS), "without message_stop"),
        (openai, sse('{"choices": []}', kind="application/json"), "where a stream"),
        (anthropic, sse("{}", kind="application/json"), "where a stream"),
    ],
    ids=["openai cut", "anthropic cut", "openai JSON body", "anthropic JSON body"],
)
def test_a_broken_stream_is_an_upstream_error(
    build: object, transport: httpx.MockTransport, words: str
) -> None:
    upstream = build(transport)  # type: ignore[operator]
    with pytest.raises(UpstreamError, match=words.replace("[", r"\[").replace("]", r"\]")):
        list(upstream.stream([{"role": "user", "content": "hi"}]))


def test_sampling_options_are_sent_in_each_wire_format() -> None:
    seen: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        if request.url.path.endswith("/messages"):
            return httpx.Response(200, json={"content": [{"type": "text", "text": "ok"}]})
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    options = {"temperature": 0.3, "max_tokens": 20, "stop": "END", "seed": 1}
    for build in (openai, anthropic):
        build(httpx.MockTransport(answer)).complete(
            [{"role": "user", "content": "hi"}], options=options
        )
    to_openai, to_anthropic = seen
    assert (to_openai["temperature"], to_openai["max_tokens"], to_openai["stop"]) == (
        0.3,
        20,
        "END",
    )
    assert (to_anthropic["temperature"], to_anthropic["max_tokens"]) == (0.3, 20)
    assert to_anthropic["stop_sequences"] == ["END"]


def test_tool_calls_and_their_results_reach_an_anthropic_upstream() -> None:
    seen: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"content": [{"type": "text", "text": "ok"}]})

    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
    }
    anthropic(httpx.MockTransport(answer)).complete(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use metric units."},
            {"role": "user", "content": "Weather in Oslo and Bergen?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "4 °C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "7 °C"},
            {"role": "user", "content": "And tomorrow?"},
        ]
    )
    (body,) = seen
    assert body["system"] == "Be brief.\n\nUse metric units."
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            # Results of one turn's calls and the next user text are one user turn: the
            # Messages API wants user and assistant turns to alternate.
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "4 °C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "7 °C"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"city": "Oslo"}', {"city": "Oslo"}),
        ({"city": "Oslo"}, {"city": "Oslo"}),  # a client that sent an object, not JSON text
        ("", {}),
        (None, {}),
        ("{not json", {"arguments": "{not json"}),
        ("[1, 2]", {"arguments": "[1, 2]"}),  # JSON, but not an object
        ([1, 2], {"arguments": "[1, 2]"}),
        ("42", {"arguments": "42"}),
    ],
)
def test_tool_input_is_always_an_object(arguments: object, expected: dict[str, Any]) -> None:
    assert tool_input(arguments) == expected


def test_tool_arguments_that_are_not_an_object_reach_an_anthropic_upstream_wrapped() -> None:
    seen: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"content": [{"type": "text", "text": "ok"}]})

    calls = [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}},
        {"id": "d", "type": "function", "function": {"name": "g", "arguments": [1, 2]}},
        {"id": "e", "type": "function", "function": {"name": "h"}},
    ]
    anthropic(httpx.MockTransport(answer)).complete(
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c", "content": "done"},
        ]
    )
    (body,) = seen
    blocks = body["messages"][1]["content"]  # type: ignore[index]
    assert [block["input"] for block in blocks] == [
        {"arguments": "{not json"},
        {"arguments": "[1, 2]"},
        {},
    ]

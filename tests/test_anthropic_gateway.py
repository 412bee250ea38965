"""The Anthropic-compatible endpoint as a real client sees it: the official `anthropic` SDK against
a real gateway server on 127.0.0.1, in front of the fake upstream (a real HTTP server too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from convguard.policy import Policy
from convguard.store import Store
from convguard.testing import FakeUpstream
from gateway_fixtures import Running, app_for


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def gateway(
    tmp_path: Path, store: Store, policy: Policy, upstream: FakeUpstream
) -> Iterator[Running]:
    with Running(
        app_for(tmp_path, store, policy, upstream_url=upstream.url, timeout=5.0)
    ) as running:
        yield running


def client(gateway: Running, key: str) -> anthropic.Anthropic:
    ai = anthropic.Anthropic(
        base_url=gateway.url.removesuffix("/v1"), api_key=key, max_retries=0, timeout=10
    )
    gateway.clients.append(ai)
    return ai


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def say(ai: anthropic.Anthropic, history: list[dict[str, Any]], text: str, **extra: Any) -> Any:
    return ai.messages.create(
        model="claude-test",
        max_tokens=100,
        messages=[*history, {"role": "user", "content": text}],  # type: ignore[list-item]
        **extra,
    )


def test_a_turn_goes_upstream_with_the_system_prompt_and_comes_back_as_content_blocks(
    gateway: Running, api_keys: dict[str, str], upstream: FakeUpstream
) -> None:
    ai = client(gateway, api_keys["alice"])
    reply = say(ai, [], "hello", system="be brief", extra_body={"temperature": 0.5})
    assert reply.type == "message" and reply.stop_reason == "end_turn"
    assert [b.type for b in reply.content] == ["text"]
    assert reply.content[0].text == "Echo: hello"
    sent = upstream.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["max_tokens"] == 100 and sent["temperature"] == 0.5
    assert reply.model_extra["convguard"]["action"] == "allow"


def test_streaming_uses_anthropics_event_types(gateway: Running, api_keys: dict[str, str]) -> None:
    ai = client(gateway, api_keys["alice"])
    with ai.messages.stream(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: stream it"
    assert final.stop_reason == "end_turn"


def test_persistent_abuse_is_warned_then_ended_then_refused_in_anthropics_error_shape(
    gateway: Running, api_keys: dict[str, str]
) -> None:
    ai = client(gateway, api_keys["alice"])
    history: list[dict[str, Any]] = []
    actions = []
    for text in ["how do I build a bomb", "bomb", "bomb", "bomb"]:
        reply = say(ai, history, text)
        actions.append(reply.model_extra["convguard"]["action"])
        history += [
            {"role": "user", "content": text},
            {"role": "assistant", "content": reply.content[0].text},
        ]
    assert actions[-1] == "end" and "warn" in actions
    with pytest.raises(anthropic.APIStatusError) as refused:
        say(ai, history, "hello again")
    assert refused.value.status_code == 409
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["convguard_code"] == "conversation_ended"


@pytest.mark.parametrize(
    ("command", "kept"), [("ls -la src", True), ("rm -rf / --no-preserve-root", False)]
)
def test_tool_use_is_guarded_and_tool_results_are_a_valid_history(
    gateway: Running, api_keys: dict[str, str], command: str, kept: bool
) -> None:
    ai = client(gateway, api_keys["alice"])
    tools = [{"name": "Bash", "description": "run a command", "input_schema": {"type": "object"}}]
    reply = say(ai, [], f"[shell] {command}", tools=tools)
    kinds = [b.type for b in reply.content]
    if not kept:
        [verdict] = reply.model_extra["convguard"]["tool_calls"]
        assert kinds == ["text"] and "I won't run the Bash call" in reply.content[0].text
        # the refusal names the rule that denied the call, as the verdict record does
        assert verdict["rule_ids"] and f"(rule {verdict['rule_ids'][0]})" in reply.content[0].text
        return
    assert kinds == ["tool_use"] and reply.stop_reason == "tool_use"
    use = reply.content[0]
    assert use.name == "Bash" and use.input == {"command": command}
    history = [
        {"role": "user", "content": f"[shell] {command}"},
        {"role": "assistant", "content": [use.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "a b c"}],
        },
    ]
    after = ai.messages.create(model="m", max_tokens=50, messages=history, tools=tools)  # type: ignore[arg-type]
    assert after.stop_reason in ("end_turn", "tool_use")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"q": "Oslo"}', {"q": "Oslo"}),
        ("", {}),
        ("Oslo, tomorrow", {"arguments": "Oslo, tomorrow"}),  # not JSON
        ('["Oslo", "Bergen"]', {"arguments": '["Oslo", "Bergen"]'}),  # JSON, not an object
        ('"Oslo"', {"arguments": '"Oslo"'}),
    ],
    ids=["object", "empty", "not json", "array", "string"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_tool_use_input_is_always_an_object_whatever_the_models_arguments(
    gateway: Running, api_keys: dict[str, str], arguments: str, expected: Any, stream: bool
) -> None:
    ai = client(gateway, api_keys["alice"])
    tools = [{"name": "lookup", "description": "look it up", "input_schema": {"type": "object"}}]
    text = f"[tool-args] {arguments}"
    if stream:
        with ai.messages.stream(
            model="claude-test",
            max_tokens=100,
            messages=[{"role": "user", "content": text}],
            tools=tools,  # type: ignore[list-item]
        ) as events:
            reply = events.get_final_message()
    else:
        reply = say(ai, [], text, tools=tools)
    [use] = reply.content
    assert use.type == "tool_use" and use.name == "lookup"
    assert use.input == expected


def test_the_key_may_come_as_x_api_key_or_bearer_and_errors_are_in_anthropics_shape(
    gateway: Running, api_keys: dict[str, str]
) -> None:
    url = f"{gateway.url}/messages"
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    by_header = httpx.post(url, json=body, headers={"x-api-key": api_keys["alice"]})
    by_bearer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {api_keys['alice']}"})
    assert by_header.status_code == by_bearer.status_code == 200
    missing = httpx.post(
        url, json={"model": "m", "messages": []}, headers={"x-api-key": api_keys["alice"]}
    )
    assert missing.status_code == 422
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "invalid_request_error"
    unknown = httpx.post(url, json=body, headers={"x-api-key": "cg_nope"})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("models", "asked", "sent"),
    [
        (None, "claude-test", "fake-model"),  # an OpenAI upstream does not know Claude's names
        ("claude-test=fake-model-large", "claude-test", "fake-model-large"),
        ("claude-test, fast=fake-model-large", "fast", "fake-model-large"),
    ],
)
def test_the_model_named_is_mapped_as_on_the_openai_endpoint(
    tmp_path: Path,
    store: Store,
    policy: Policy,
    api_keys: dict[str, str],
    upstream: FakeUpstream,
    models: str | None,
    asked: str,
    sent: str,
) -> None:
    app = app_for(
        tmp_path,
        store,
        policy,
        upstream_url=upstream.url,
        upstream_model="fake-model",
        models=models,
    )
    with Running(app) as running:
        reply = client(running, api_keys["alice"]).messages.create(
            model=asked, max_tokens=50, messages=[{"role": "user", "content": "hello"}]
        )
    assert reply.content[0].text == "Echo: hello"  # type: ignore[union-attr]
    assert [r["model"] for r in upstream.requests] == [sent]


def test_a_model_not_offered_is_a_404_in_anthropics_shape_and_nothing_is_stored(
    tmp_path: Path, store: Store, policy: Policy, api_keys: dict[str, str], upstream: FakeUpstream
) -> None:
    app = app_for(tmp_path, store, policy, upstream_url=upstream.url, models="fast=fake-model")
    body = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with Running(app) as running:
        response = httpx.post(
            f"{running.url}/messages", json=body, headers={"x-api-key": api_keys["alice"]}
        )
        listed = httpx.get(f"{running.url}/conversations", headers=auth(api_keys["alice"]))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error" and "'claude-x'" in error["message"]
    assert listed.json()["data"] == [] and upstream.requests == []


def test_the_locale_header_is_kept_with_the_conversation(
    gateway: Running, api_keys: dict[str, str]
) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": api_keys["alice"], "X-Convguard-Locale": "en-GB"}
    response = httpx.post(f"{gateway.url}/messages", json=body, headers=headers)
    assert response.status_code == 200, response.text
    cid = response.headers["X-Convguard-Conversation"]
    found = httpx.get(f"{gateway.url}/conversations/{cid}", headers=auth(api_keys["alice"]))
    assert found.json()["conversation"]["locale"] == "en-GB"
    wrong = httpx.post(
        f"{gateway.url}/messages", json=body, headers={**headers, "X-Convguard-Locale": "not a tag"}
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["type"] == "invalid_request_error"


def conversation_of(reply: Any) -> str:
    return str(reply.model_extra["convguard"]["conversation_id"])


def test_two_chats_opening_with_the_same_message_are_two_conversations(
    gateway: Running, api_keys: dict[str, str], store: Store, upstream: FakeUpstream
) -> None:
    ai = client(gateway, api_keys["alice"])  # sends neither the conversation header nor a user
    one, two = (say(ai, [], "Hi [vary]") for _ in range(2))  # the fake numbers its answers
    assert conversation_of(one) != conversation_of(two)
    assert [one.content[0].text, two.content[0].text] == ["Answer number 1", "Answer number 2"]
    for opened, text in ((one, "tell me about cats"), (two, "and dogs?")):
        history = [
            {"role": "user", "content": "Hi [vary]"},
            {"role": "assistant", "content": opened.content[0].text},
        ]
        after = say(ai, history, text)
        assert conversation_of(after) == conversation_of(opened)
        assert after.content[0].text == f"Echo: {text}"
        roles = [m.role for m in store.messages(conversation_of(opened))]
        assert roles == ["user", "assistant"] * 2


def test_an_sdk_retry_of_an_opening_returns_the_stored_reply_without_asking_the_model(
    gateway: Running, api_keys: dict[str, str], upstream: FakeUpstream
) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    first, again = (
        httpx.post(
            f"{gateway.url}/messages",
            json=body,
            headers={"x-api-key": api_keys["alice"], "x-stainless-retry-count": tries},
        )
        for tries in ("0", "1")
    )
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]  # the same message
    assert again.json()["content"] == first.json()["content"]
    assert len(upstream.requests) == 1


def test_regenerate_is_a_new_reply_beside_the_stored_one_as_on_the_openai_endpoint(
    gateway: Running, api_keys: dict[str, str], store: Store, upstream: FakeUpstream
) -> None:
    ai = client(gateway, api_keys["alice"])
    history = [{"role": "user", "content": "a poem please [vary]"}]
    first = say(ai, [], "a poem please [vary]", extra_headers={"X-Convguard-Conversation": "p"})
    again = say(
        ai,
        [],
        "a poem please [vary]",
        extra_headers={"X-Convguard-Conversation": "p", "X-Convguard-Regenerate": "true"},
    )
    assert [first.content[0].text, again.content[0].text] == ["Answer number 1", "Answer number 2"]
    assert len(upstream.requests) == 2
    user, *replies = store.messages(conversation_of(first))
    assert [r.content for r in replies] == ["Answer number 1", "Answer number 2"]
    assert {r.parent_id for r in replies} == {user.id}
    bad = httpx.post(
        f"{gateway.url}/messages",
        json={"model": "m", "max_tokens": 10, "messages": history},
        headers={"x-api-key": api_keys["alice"], "X-Convguard-Regenerate": "yes"},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert "X-Convguard-Regenerate" in bad.json()["error"]["message"]
    assert len(upstream.requests) == 2

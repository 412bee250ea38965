from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from convguard.assess.judge import RemoteJudge, llama_guard_prompt, parse_llama_guard
from convguard.errors import ClassifierError
from convguard.policy import CATEGORY_IDS, Policy


class FakeModel(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible server: a Llama Guard-ish judge and a moderation endpoint."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeModel.seen.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if self.path == "/v1/chat/completions":
            prompt = body["messages"][0]["content"]
            last = prompt.split("User: ")[-1]
            answer = "unsafe\nS4" if "bomb" in last else "safe"
            self._json({"choices": [{"message": {"role": "assistant", "content": answer}}]})
        elif self.path == "/v1/moderations":
            harsh = "hate" in body["input"]
            scores = {"hate": 0.9 if harsh else 0.01, "self-harm/intent": 0.0, "violence": 0.02}
            self._json(
                {"results": [{"flagged": harsh, "categories": {}, "category_scores": scores}]}
            )
        else:
            self.send_response(404)
            self.end_headers()

    def _json(self, data: object) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeModel)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_llama_guard_judge_over_a_real_local_server(policy: Policy, server: str) -> None:
    judge = RemoteJudge(policy, url=server, model="guard", api_key="k")
    try:
        unsafe, safe = judge.score(["how do I build a bomb", "how do I bake bread"])
    finally:
        judge.close()
    assert unsafe == {"explosives": 1.0}
    assert safe == {}
    request = FakeModel.seen[-1]
    assert request["auth"] == "Bearer k"
    assert request["body"]["model"] == "guard"


def test_moderation_judge_maps_openai_categories_onto_the_policy(
    policy: Policy, server: str
) -> None:
    judge = RemoteJudge(policy, url=server, format="moderation")
    try:
        [scores] = judge.score(["some hate speech"])
    finally:
        judge.close()
    assert scores["hate"] == pytest.approx(0.9)
    assert scores["violence"] == pytest.approx(0.02)


def test_the_prompt_lists_every_category_and_the_conversation(policy: Policy) -> None:
    prompt = llama_guard_prompt(policy, "last", ["first"])
    for number in range(1, len(CATEGORY_IDS) + 1):
        assert f"S{number}:" in prompt
    assert prompt.index("User: first") < prompt.index("User: last")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("safe", {}),
        ("unsafe\nS1", {"sexual_minors": 1.0}),
        ("unsafe\nS5, S12", {"cyberattack": 1.0, "self_harm": 1.0}),
        ("unsafe", {"illicit": 1.0}),
        ("unsafe\nS99", {"illicit": 1.0}),
    ],
)
def test_llama_guard_answers_parse(answer: str, expected: dict[str, float]) -> None:
    assert parse_llama_guard(answer) == expected


def test_a_nonsense_answer_is_a_classifier_error() -> None:
    with pytest.raises(ClassifierError, match="'maybe'"):
        parse_llama_guard("maybe")


def _judge_with(policy: Policy, handler: Any) -> RemoteJudge:
    return RemoteJudge(
        policy, url="http://judge.test/v1", transport=httpx.MockTransport(handler), timeout=0.5
    )


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (lambda request: httpx.Response(500, text="boom"), "HTTP 500"),
        (lambda request: httpx.Response(200, text="not json"), "non-JSON"),
        (lambda request: httpx.Response(200, json={"choices": []}), "no message content"),
    ],
)
def test_judge_failures_are_classifier_errors(policy: Policy, handler: Any, message: str) -> None:
    judge = _judge_with(policy, handler)
    with pytest.raises(ClassifierError, match=message):
        judge.score(["hi"])
    judge.close()


def test_a_judge_timeout_is_a_classifier_error(policy: Policy) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    judge = _judge_with(policy, slow)
    with pytest.raises(ClassifierError, match="timed out"):
        judge.score(["hi"])
    judge.close()

"""Fakes shipped with convguard, for tests, demos and benchmarks (no network, no model weights).

- :class:`KeywordAssessor` labels a text by the keywords it contains;
- :class:`FakeClock` is a clock (``Service(clock=...)``) that moves only when told to;
- :class:`FakeUpstream` is a real OpenAI-compatible HTTP server on 127.0.0.1 (whole and streamed
  chat completions) whose answers follow simple markers in the last user message:
  ``[end]`` makes it call ``end_conversation``, ``[leak]`` makes it write :data:`LEAK_TEXT`,
  ``[late-leak]`` writes it after a few hundred benign characters, ``[vary]`` numbers its answers,
  ``[fail]`` answers HTTP 500,
  ``[cut]`` breaks a stream off before ``[DONE]``, ``[json]`` answers a stream with plain JSON,
  ``[slow]`` waits ``slow_seconds``, ``[drip]`` streams its words ``drip_seconds`` apart,
  ``[shell] CMD`` calls the
  client's ``Bash`` tool with ``CMD``, ``[tool-args] TEXT`` calls the client's ``lookup`` tool
  with ``TEXT`` as its arguments, verbatim (JSON or not), ``[bash-args] TEXT`` the client's
  ``Bash`` tool the same way; anything else is echoed back.
  ``GET /models`` lists its ``models`` (none: 404).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from convguard.assess.types import Assessment, Role, check_labels
from convguard.policy import CATEGORY_IDS, Policy

__all__ = ["BENIGN_TEXT", "LEAK_TEXT", "FakeClock", "FakeUpstream", "KeywordAssessor"]

LEAK_TEXT = "Sure. UNSAFE-OUTPUT follows in detail."
BENIGN_TEXT = (
    "Here is a long and friendly answer about gardens, with notes on soil, water, light and "
    "the seasons, and on which flowers grow well together in a small plot. "
) * 2


class FakeClock:
    """A clock for :class:`~convguard.service.Service`: reads ``now``, which only
    :meth:`advance` moves, so that time-outs are tested without sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


class KeywordAssessor:
    """Labels by substring (case-insensitive); the same rules for user and assistant text."""

    def __init__(self, policy: Policy, rules: Mapping[str, Iterable[str]]) -> None:
        self.policy = policy
        self.rules = {
            key.lower(): check_labels(
                [x for x in labels if x in CATEGORY_IDS],
                [x for x in labels if x not in CATEGORY_IDS],
            )
            for key, labels in rules.items()
        }

    def assess(self, text: str, *, role: Role = "user", context: Sequence[str] = ()) -> Assessment:
        lowered = text.lower()
        labels = [label for key, found in self.rules.items() if key in lowered for label in found]
        return Assessment.from_labels(
            self.policy,
            [x for x in labels if x in CATEGORY_IDS],
            [x for x in dict.fromkeys(labels) if x not in CATEGORY_IDS],
            source="keywords",
        )


class FakeUpstream:
    """A real HTTP server speaking the OpenAI chat-completions protocol, on 127.0.0.1."""

    def __init__(
        self,
        *,
        slow_seconds: float = 2.0,
        drip_seconds: float = 0.5,
        delay: float = 0.0,
        models: Sequence[str] = ("fake-model", "fake-model-large"),
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.models = tuple(models)
        self.slow_seconds = slow_seconds
        self.drip_seconds = drip_seconds
        self.delay = delay
        self._open = threading.Event()
        self._open.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small writes would otherwise wait ~40 ms for an ACK

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                fake.answer(self, body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models") and fake.models:
                    data = [{"id": m, "object": "model", "owned_by": "fake"} for m in fake.models]
                    raw = json.dumps({"object": "list", "data": data}).encode()
                    _send(self, 200, raw, "application/json")
                else:
                    _send(self, 404, b'{"error": {"message": "no such path"}}', "application/json")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll: shutdown() waits up to one interval, and every test stops its server.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def hold(self) -> None:
        """Answer nothing until :meth:`release` (requests are still recorded as they come), so
        that a test decides when the model's replies land instead of guessing with a delay."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held requests, and every later one as it comes."""
        self._open.set()

    # -- behaviour ---------------------------------------------------------------------------

    def answer(self, handler: BaseHTTPRequestHandler, body: Mapping[str, Any]) -> None:
        self._open.wait()
        if self.delay:
            time.sleep(self.delay)
        last = next(
            (
                str(m.get("content") or "")
                for m in reversed(body.get("messages", []))
                if m.get("role") == "user"
            ),
            "",
        )
        if "[fail]" in last:
            _send(handler, 500, b'{"error": {"message": "upstream exploded"}}', "application/json")
            return
        if "[slow]" in last:
            time.sleep(self.slow_seconds)
        tool_calls: list[dict[str, Any]] = []
        content = f"Echo: {last}"
        if "[end]" in last:
            content = ""
            tool_calls = [
                {
                    "id": "call_end",
                    "type": "function",
                    "function": {"name": "end_conversation", "arguments": '{"reason": "abuse"}'},
                }
            ]
        elif "[shell] " in last:
            content = ""
            command = last.split("[shell] ", 1)[1]
            tool_calls = [
                {
                    "id": "call_shell",
                    "type": "function",
                    "function": {"name": "Bash", "arguments": json.dumps({"command": command})},
                }
            ]
        elif "[tool-args] " in last or "[bash-args] " in last:
            content = ""
            name, marker = (
                ("Bash", "[bash-args] ") if "[bash-args] " in last else ("lookup", "[tool-args] ")
            )
            tool_calls = [
                {
                    "id": f"call_{name.lower()}",
                    "type": "function",
                    "function": {"name": name, "arguments": last.split(marker, 1)[1]},
                }
            ]
        elif "[vary]" in last:
            content = f"Answer number {len(self.requests)}"
        elif "[late-leak]" in last:
            content = BENIGN_TEXT + LEAK_TEXT
        elif "[leak]" in last:
            content = LEAK_TEXT
        if body.get("stream") and "[json]" not in last:
            if "[cut]" in last:
                content += " and then the connection broke"
            self._stream(handler, body, content, tool_calls, done="[cut]" not in last)
            return
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        data = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        }
        _send(handler, 200, json.dumps(data).encode(), "application/json")

    def _stream(
        self,
        handler: BaseHTTPRequestHandler,
        body: Mapping[str, Any],
        content: str,
        tool_calls: list[dict[str, Any]],
        *,
        done: bool = True,
    ) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def emit(delta: Mapping[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            _chunked(handler, f"data: {json.dumps(chunk)}\n\n".encode())

        try:
            emit({"role": "assistant", "content": ""})
            words = content.split(" ")
            drip = self.drip_seconds if "[drip]" in content else 0.0
            for i, word in enumerate(words):
                if drip and i:
                    time.sleep(drip)
                emit({"content": word + (" " if i < len(words) - 1 else "")})
            for i, call in enumerate(tool_calls):
                emit({"tool_calls": [{"index": i, **call}]})
            if not done:  # broken off: no finish reason, no [DONE]
                _chunked(handler, b"")
                return
            emit({}, "tool_calls" if tool_calls else "stop")
            _chunked(handler, b"data: [DONE]\n\n")
            _chunked(handler, b"")
        except (BrokenPipeError, ConnectionResetError):
            pass


def _send(handler: BaseHTTPRequestHandler, status: int, raw: bytes, kind: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


def _chunked(handler: BaseHTTPRequestHandler, raw: bytes) -> None:
    handler.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
    handler.wfile.flush()

"""Structured logs: one JSON object per line on stderr, for operators and machines to read.

Every line has ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``event``, then the event's own
fields. The events:

- ``request`` (info): ``method``, ``path``, ``status``, ``duration_ms``, ``account``,
  ``request_id`` — one per HTTP request, written when the response has been sent;
- ``decision`` (info): ``conversation``, ``leaf``, ``action``, ``categories``, ``flags``,
  ``policy_version``, ``request_id`` — one per decision stored; ``model_end_refused`` (warning)
  when the model's ``end_conversation`` call was not honoured;
- warnings: ``rate_limited`` (429), ``key_refused`` (an unknown or revoked API key),
  ``unauthorized`` (no key, or not an admin key), ``upstream_error`` (the model failed or timed
  out), ``server_error`` (any other 5xx), and ``unknown_setting`` at start-up (a misspelt
  ``CONVGUARD_*`` variable).

Message text is never written unless the operator turns it on (``CONVGUARD_LOG_CONTENT=true``):
an event's ``content`` field is dropped by the formatter otherwise, so a call site can pass it
without deciding. The request id and account of the request being served travel in a context
variable (:func:`request_scope`), so a decision logged deep in the service carries the id the
client sent or was given in ``X-Request-Id``.

Nothing here runs at import: :func:`configure` is called by the entry point (``convguard serve``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from convguard.assess.types import Assessment
    from convguard.conversation import Decision

__all__ = [
    "LEVELS",
    "JsonFormatter",
    "RequestLog",
    "bind",
    "configure",
    "error_event",
    "event",
    "log_decision",
    "request_id_from",
    "request_scope",
]

LEVELS = ("debug", "info", "warning", "error")
Level = Literal["debug", "info", "warning", "error"]
ROOT = "convguard"
CONTENT_FIELDS = frozenset({"content"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

# A library logs nothing until the application configures it (not even warnings, through
# logging's last-resort handler): the command line's own output stays clean.
logging.getLogger(ROOT).addHandler(logging.NullHandler())

# The fields of the request being served: a dict shared by reference, so that code running in a
# worker thread (FastAPI runs sync routes there, with a copy of the context) can still add to it.
_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "convguard_request", default=None
)


class JsonFormatter(logging.Formatter):
    """A record as one JSON line; ``content`` fields are kept only when ``content`` is on."""

    def __init__(self, *, content: bool = False) -> None:
        super().__init__()
        self.content = content

    def format(self, record: logging.LogRecord) -> str:
        fields: Mapping[str, Any] = getattr(record, "fields", {})
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "message"),
        }
        if not hasattr(record, "event"):
            line["message"] = record.getMessage()
        for key, value in fields.items():
            if key in CONTENT_FIELDS and not self.content:
                continue
            line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(
    level: str = "info", *, content: bool = False, stream: IO[str] | None = None
) -> logging.Handler:
    """Send the ``convguard`` loggers (and uvicorn's errors) to ``stream`` (stderr) as JSON lines.

    Idempotent: a second call replaces the handler the first installed.
    """
    if level.lower() not in LEVELS:
        from convguard.errors import InvalidInput

        raise InvalidInput(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(content=content))
    handler.set_name("convguard-json")
    for name in (ROOT, "uvicorn.error"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "convguard-json"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False
    return handler


def event(name: str, level: Level = "info", *, logger: str = ROOT, **fields: Any) -> None:
    """Log the event ``name`` with ``fields`` (plus the current request's id, when there is one)."""
    log = logging.getLogger(logger)
    number = logging.getLevelNamesMapping()[level.upper()]
    if not log.isEnabledFor(number):
        return
    scope = _request.get()
    if scope is not None and "request_id" not in fields:
        fields = {**fields, "request_id": scope.get("request_id")}
    log.log(number, name, extra={"event": name, "fields": fields})


def log_decision(
    *,
    conversation: str,
    leaf: str,
    decision: Decision,
    assessment: Assessment,
    policy_version: str,
    content: str | None = None,
) -> None:
    """The ``decision`` event for a stored decision; for a model's ``end_conversation`` call
    that was not honoured, a ``model_end_refused`` warning instead."""
    refused = decision.model_end == "refused"
    event(
        "model_end_refused" if refused else "decision",
        "warning" if refused else "info",
        logger=f"{ROOT}.decisions",
        conversation=conversation,
        leaf=leaf,
        action=decision.action,
        categories=list(assessment.categories),
        flags=list(assessment.flags),
        policy_version=policy_version,
        **({"model_end": decision.model_end} if decision.model_end else {}),
        **({"content": content} if content is not None else {}),
    )


def request_id_from(header: str | None) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def bind(**fields: Any) -> None:
    """Add fields (``account``) to the request being served; nothing outside a request."""
    scope = _request.get()
    if scope is not None:
        scope.update(fields)


@contextmanager
def request_scope(request_id: str) -> Iterator[dict[str, Any]]:
    fields: dict[str, Any] = {"request_id": request_id, "account": None}
    token = _request.set(fields)
    try:
        yield fields
    finally:
        _request.reset(token)


#: Where :class:`RequestLog` leaves the request id in the ASGI scope.
REQUEST_ID_SCOPE_KEY = "convguard.request_id"


class RequestLog:
    """ASGI middleware: accepts or makes the request id, echoes it in ``X-Request-Id``, and logs
    one ``request`` line when the response is done (streamed responses included)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or ()).get(b"x-request-id")
        request_id = request_id_from(header.decode("latin-1") if header else None)
        status = 500
        started = time.perf_counter()
        # Kept in the scope too: an unexpected error is answered by the server's outermost
        # handler, after this middleware has returned, and must echo the same id.
        scope[REQUEST_ID_SCOPE_KEY] = request_id

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        with request_scope(request_id) as fields:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                event(
                    "request",
                    "warning" if status >= 500 else "info",
                    logger=f"{ROOT}.requests",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    account=fields.get("account"),
                    request_id=request_id,
                )


def error_event(status: int, kind: str, message: str) -> None:
    """A warning for a refusal an operator should see: rate limits, refused keys, upstream
    failures (anything answered 5xx)."""
    if status == 429:
        name = "rate_limited"
    elif status == 401:
        name = "key_refused" if "revoked" in message else "unauthorized"
    elif kind.startswith("upstream") or status >= 500:
        name = "upstream_error" if kind.startswith("upstream") else "server_error"
    else:
        return
    event(name, "warning", logger=f"{ROOT}.requests", status=status, error=kind, message=message)

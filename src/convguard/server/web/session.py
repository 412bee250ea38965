"""Web sessions: an API key, given once at sign-in, exchanged for an httpOnly session cookie.

Signing in (``POST /web/session`` with ``{"key": ...}``) checks the key and creates a *session
key* for the same account (same admin right, labelled :data:`SESSION_LABEL`); the browser keeps
only that, in an ``httpOnly``, ``SameSite=Strict`` cookie that page scripts cannot read. The key
the person typed is kept nowhere. Signing out revokes the session key; a session key older than
:data:`SESSION_SECONDS` is revoked on its next use, and signing in deletes revoked and expired
session keys (a bounded batch), so they do not pile up. Session keys are ordinary revocable keys,
so several server processes on one database share them.

:class:`SessionCookies` turns the cookie into the ``Authorization`` header the REST routes read,
for requests without one. Cookie-authenticated requests must carry ``X-Convguard-CSRF: 1`` (a
header a cross-site form cannot set and a cross-site script cannot send without a CORS
preflight this server never grants) and, when the browser sends ``Origin``, come from this
server's own origin; anything else answers 403. Bearer-key clients are untouched. The app's
pages get a Content-Security-Policy that allows no inline script or style.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convguard.store import Store

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "COOKIE",
    "CSRF_HEADER",
    "SESSION_LABEL",
    "SESSION_SECONDS",
    "SessionCookies",
    "cookie_header",
    "forbidden",
    "session_key",
]

COOKIE = "convguard_session"
CSRF_HEADER = "x-convguard-csrf"
SESSION_LABEL = "web session"
SESSION_SECONDS = 12 * 3600
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_PAGE_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def session_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no session, not a crash
                continue
            if COOKIE in jar and jar[COOKIE].value:
                return jar[COOKIE].value
    return None


def cookie_header(value: str, *, secure: bool, max_age: int = SESSION_SECONDS) -> str:
    flags = f"; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"
    return f"{COOKIE}={value}{flags}{'; Secure' if secure else ''}"


def _is_page(path: str) -> bool:
    return path in ("/", "/review") or path.startswith("/static/")


def forbidden(message: str) -> tuple[int, bytes]:
    body = {"error": {"type": "csrf", "code": "csrf", "message": message}}
    return 403, json.dumps(body).encode()


class SessionCookies:
    """ASGI middleware: session cookie → ``Authorization`` (with CSRF checks); page headers."""

    def __init__(self, app: ASGIApp, *, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        names = {name for name, _ in headers}
        key = session_key(headers)
        if key is not None and b"authorization" not in names and not _is_page(path):
            refused = self._refusal(headers)
            if refused is not None:
                await _answer(send, *refused)
                return
            if await anyio.to_thread.run_sync(self._live, key):
                headers.append((b"authorization", b"Bearer " + key.encode("latin-1", "replace")))
                scope = {**scope, "headers": headers}
        if not _is_page(path):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_PAGE_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refusal(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes] | None:
        values = dict(headers)
        if values.get(CSRF_HEADER.encode()) != b"1":
            return forbidden(
                "a request signed in with the session cookie must send the header "
                "'X-Convguard-CSRF: 1' (the web app does); API clients use 'Authorization: Bearer'"
            )
        origin = values.get(b"origin")
        if origin is not None:
            host = values.get(b"host", b"").decode("latin-1")
            allowed = {f"http://{host}", f"https://{host}"}
            if origin.decode("latin-1") not in allowed:
                return forbidden(
                    f"origin {origin.decode('latin-1')!r} may not use this server's session "
                    "cookie; sign in on the server's own pages"
                )
        return None

    def _live(self, key: str) -> bool:
        """Whether ``key`` may stand as a session; an expired session key is revoked here."""
        record = self.store.authenticate(key)
        if record is None:
            return False
        if record.label == SESSION_LABEL:
            age = datetime.now(UTC) - record.created_at
            if age > timedelta(seconds=SESSION_SECONDS):
                self.store.revoke_api_key(record.id, now=datetime.now(UTC))
                return False
        return True


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

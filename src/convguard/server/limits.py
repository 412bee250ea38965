"""Request limits: a body-size cap (413) as ASGI middleware, and token buckets (429): one per
API key, and one per client address for key lookups.

The buckets live in the process: with several workers each enforces the limit on its own share.
At most :data:`MAX_BUCKETS` are kept (full ones are dropped first, as a full bucket is what a new
one starts as), so distinct keys or addresses cannot grow memory without bound.
The clock is passed in (monotonic seconds), so the bucket is tested without sleeping.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convguard.errors import RateLimited

__all__ = ["BodyLimit", "RateLimiter"]

MAX_BUCKETS = 10_000

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


@dataclass
class RateLimiter:
    per_minute: int
    clock: Callable[[], float]
    what: str = "requests for"
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise :class:`RateLimited` with a Retry-After."""
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / rate))
                whose = "this key" if self.what == "requests for" else "this address"
                raise RateLimited(
                    f"more than {self.per_minute} {self.what} {whose} a minute; retry in {wait} s",
                    retry_after=wait,
                )
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget(now, rate)

    def _forget(self, now: float, rate: float) -> None:
        """Drop buckets that have refilled (they equal a new one); then the oldest ones."""
        full = [
            k
            for k, (t, last) in self._buckets.items()
            if t + (now - last) * rate >= self.per_minute
        ]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > MAX_BUCKETS:
            del self._buckets[next(iter(self._buckets))]


class BodyLimit:
    """Refuses bodies over ``limit`` bytes, by Content-Length or while reading a chunked body."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "type": "payload_too_large",
                    "code": "payload_too_large",
                    "message": f"the request body is over {self.limit} bytes; send less "
                    "(CONVGUARD_MAX_BODY_BYTES sets the limit)",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass

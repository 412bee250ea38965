"""Request limits: a body-size cap (413) as ASGI middleware, and token buckets (429): one per
API key, and one per client address for key lookups.

:class:`RateLimiter` keeps its buckets in the process: with several workers each enforces the
limit on its own share. :class:`SharedRateLimiter` keeps them in Redis (``CONVGUARD_REDIS_URL``),
so every worker and host draws on one bucket per key or address.
At most :data:`MAX_BUCKETS` are kept (full ones are dropped first, as a full bucket is what a new
one starts as), so distinct keys or addresses cannot grow memory without bound.
The clock is passed in (monotonic seconds), so the bucket is tested without sleeping.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from convguard.errors import RateLimited, StoreError

__all__ = ["BodyLimit", "Limiter", "RateLimiter", "SharedRateLimiter"]

MAX_BUCKETS = 10_000

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class Limiter(Protocol):
    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise :class:`RateLimited` with a Retry-After."""
        ...


def _limited(per_minute: int, what: str, wait: int) -> RateLimited:
    whose = "this key" if what == "requests for" else "this address"
    return RateLimited(
        f"more than {per_minute} {what} {whose} a minute; retry in {wait} s", retry_after=wait
    )


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


# One bucket as a Redis hash {t: tokens, l: last refill}, refilled and taken in one atomic step
# on the Redis server's clock (workers' clocks may disagree); it expires once it would be full.
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens = tonumber(stored[1]) or capacity
local last = tonumber(stored[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'l', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {taken, tostring(tokens)}
"""


class SharedRateLimiter:
    """The same token bucket as :class:`RateLimiter`, kept in Redis and shared by every worker."""

    def __init__(self, client: Any, per_minute: int, *, prefix: str, what: str) -> None:
        self.per_minute = per_minute
        self.what = what
        self._prefix = prefix
        self._client = client
        self._take = client.register_script(_TAKE)

    def check(self, key: str) -> None:
        rate = self.per_minute / 60.0
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        try:
            taken, tokens = self._take(keys=[self._prefix + digest], args=[self.per_minute, rate])
        except Exception as exc:  # redis' own errors: the shared limit cannot be applied
            raise StoreError(
                f"the rate limits in Redis could not be read ({type(exc).__name__}: {exc}); "
                "check CONVGUARD_REDIS_URL"
            ) from exc
        if not int(taken):
            wait = max(1, math.ceil((1.0 - float(tokens)) / rate))
            raise _limited(self.per_minute, self.what, wait)


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

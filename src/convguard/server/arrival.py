"""When a request arrived: stamped as its headers are read, before it waits for anything else.

Between arriving and being answered, a request may wait for its body, for a worker thread and
for the CPU; under load that is longer than a model call. A rule about what was still pending
when a request was sent (an identical opening still waiting for its reply,
:mod:`convguard.server.openings`) reads :func:`arrived_at`, never the time the route got to it,
so the rule's outcome does not depend on how long the server took to get there.

The stamp is the service's clock (the one the store's timestamps come from), read as the request
enters the app (:class:`Arrival`, the outermost middleware).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request

__all__ = ["ARRIVED_SCOPE_KEY", "Arrival", "arrived_at"]

#: Where the stamp is kept in the ASGI scope.
ARRIVED_SCOPE_KEY = "convguard.arrived"


class Arrival:
    """ASGI middleware: stamps each HTTP request's scope with ``clock()`` as it enters."""

    def __init__(self, app: Any, clock: Callable[[], datetime]) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[ARRIVED_SCOPE_KEY] = self.clock()
        await self.app(scope, receive, send)


def arrived_at(request: Request, clock: Callable[[], datetime]) -> datetime:
    """When ``request`` arrived; ``clock()`` (now) for one that did not pass :class:`Arrival`."""
    stamp = request.scope.get(ARRIVED_SCOPE_KEY)
    return stamp if isinstance(stamp, datetime) else clock()

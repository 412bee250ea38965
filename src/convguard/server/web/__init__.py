"""The web app: the chat people use and the review dashboard, served at ``/`` and ``/review``.

:func:`mount` adds its routes, its static assets and the session-cookie middleware to the app
``create_app`` builds. See :mod:`convguard.server.web.session` for sign-in and CSRF, and
:mod:`convguard.server.web.routes` for the endpoints.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from convguard.server.gateway import Gateway
from convguard.server.web.routes import STATIC, router
from convguard.server.web.session import SessionCookies

__all__ = ["mount"]


def mount(app: FastAPI, gateway: Gateway) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(SessionCookies, store=gateway.store)

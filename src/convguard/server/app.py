"""``create_app(settings)``: the gateway as an ASGI app, with one error shape for every failure.

Every error answers ``{"error": {"type": ..., "code": ..., "message": ...}}`` (the OpenAI error
shape, so OpenAI clients read it too) with the status its :class:`ConvguardError` carries;
validation errors name the field; a 429 carries ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from convguard import __version__
from convguard.assess.types import Assessor
from convguard.errors import ConvguardError, RateLimited
from convguard.logs import RequestLog, configure, error_event
from convguard.server.docs import mount_docs
from convguard.server.gateway import Gateway
from convguard.server.limits import BodyLimit
from convguard.settings import Settings
from convguard.store import Store
from convguard.upstream import Upstream

__all__ = ["create_app", "error_body"]


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "code": kind, "message": message}}


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    upstream: Upstream | None = None,
    assessor: Assessor | None = None,
) -> FastAPI:
    """The gateway; ``store``, ``upstream``, ``assessor`` replace what the settings would build."""
    gateway = Gateway(settings, store=store, upstream=upstream, assessor=assessor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        gateway.close()

    app = FastAPI(
        title="convguard gateway",
        version=__version__,
        description="Conversation safeguards in front of any chat model.",
        lifespan=lifespan,
        docs_url=None,  # served from package assets by mount_docs, not from a CDN
        redoc_url=None,
    )
    app.state.gateway = gateway

    @app.exception_handler(ConvguardError)
    async def convguard_error(request: Request, exc: ConvguardError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        error_event(exc.status, exc.type, exc.message)
        return JSONResponse(error_body(exc.type, exc.message), exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return JSONResponse(
                error_body("invalid_json", f"the body is not valid JSON: {first.get('msg')}"), 400
            )
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        message = f"field {where!r}: {first.get('msg')}"
        if "input" in first and not isinstance(first["input"], dict | list):
            message += f" (got {first['input']!r})"
        return JSONResponse(error_body("invalid_request", message), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(kind, str(exc.detail)), exc.status_code)

    from convguard.server.models import router as models_router
    from convguard.server.openai import router as openai_router
    from convguard.server.rest import router as rest_router
    from convguard.server.web import mount as mount_web

    app.include_router(rest_router)
    app.include_router(openai_router)
    app.include_router(models_router)
    mount_web(app, gateway)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestLog)
    mount_docs(app)
    return app


def app_from_env() -> FastAPI:
    """The factory ``convguard serve`` gives uvicorn (settings from the environment)."""
    settings = Settings.from_env()
    configure(settings.log_level, content=settings.log_content)
    return create_app(settings)

"""``create_app(settings)``: the gateway as an ASGI app, with one error shape for every failure.

Every error answers ``{"error": {"type": ..., "code": ..., "message": ...}}`` (the OpenAI error
shape, so OpenAI clients read it too; ``/v1/messages`` answers Anthropic's shape instead) with
the status its :class:`ConvguardError` carries;
validation errors name the field; a 429 carries ``Retry-After``; a 409 carries
``x-should-retry: false`` (sending the same request again cannot succeed, and the OpenAI SDK
would otherwise retry it). Anything unexpected is a 500 in the same shape, never a bare page.

Modules form a one-way graph: this module mounts the routers; routes never import it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from convguard import __version__
from convguard.assess.types import Assessor
from convguard.errors import ConvguardError, RateLimited
from convguard.logs import REQUEST_ID_SCOPE_KEY, RequestLog, configure, error_event
from convguard.server.admin import router as admin_router
from convguard.server.anthropic import router as anthropic_router
from convguard.server.arrival import Arrival
from convguard.server.docs import mount_docs
from convguard.server.gateway import Gateway
from convguard.server.limits import BodyLimit
from convguard.server.models import router as models_router
from convguard.server.openai import router as openai_router
from convguard.server.rest import router as rest_router
from convguard.server.schemas import anthropic_error_body, error_body
from convguard.server.web import mount as mount_web
from convguard.settings import Settings
from convguard.store import Store
from convguard.upstream import Upstream

__all__ = ["create_app", "error_body"]

log = logging.getLogger("convguard.server")


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
        await anyio.to_thread.run_sync(gateway.warm)  # before the server accepts traffic
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

    def answer(
        request: Request,
        status: int,
        kind: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        """The error in the shape of the protocol asked (Anthropic's on ``/v1/messages``)."""
        if request.url.path == "/v1/messages":
            return JSONResponse(anthropic_error_body(status, kind, message), status, headers)
        return JSONResponse(error_body(kind, message), status, headers)

    @app.exception_handler(ConvguardError)
    async def convguard_error(request: Request, exc: ConvguardError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        if exc.status == 409:
            headers["x-should-retry"] = "false"
        error_event(exc.status, exc.type, exc.message)
        return answer(request, exc.status, exc.type, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            message = f"the body is not valid JSON: {first.get('msg')}"
            return answer(request, 400, "invalid_json", message)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        where = str((first.get("ctx") or {}).get("field", where))
        message = f"field {where!r}: {first.get('msg')}"
        if "input" in first and not isinstance(first["input"], dict | list):
            message += f" (got {first['input']!r})"
        return answer(request, 422, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return answer(request, exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        message = (
            f"the gateway failed unexpectedly ({type(exc).__name__}); retry, and report it if "
            "it persists"
        )
        request_id = request.scope.get(REQUEST_ID_SCOPE_KEY)
        headers = {"X-Request-Id": request_id} if isinstance(request_id, str) else None
        return answer(request, 500, "internal_error", message, headers)

    app.include_router(rest_router)
    app.include_router(openai_router)
    app.include_router(anthropic_router)
    app.include_router(admin_router)
    app.include_router(models_router)
    mount_web(app, gateway)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestLog)
    # outermost: a request's arrival is read before anything it may wait for (its body, a thread)
    app.add_middleware(Arrival, clock=lambda: gateway.service.clock())
    mount_docs(app)
    return app


def app_from_env() -> FastAPI:
    """The factory ``convguard serve`` gives uvicorn (settings from the environment)."""
    settings = Settings.from_env()
    configure(settings.log_level, content=settings.log_content)
    return create_app(settings)

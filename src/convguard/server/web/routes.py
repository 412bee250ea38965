"""The web app's routes: its two pages and their assets, sign-in, crisis resources, and the
review dashboard's admin reads (statistics, turn reports, a conversation's export).

The pages are static files shipped in the package (``static/``): plain HTML, CSS and ES modules,
no build step and nothing fetched from elsewhere. Everything they show comes from the REST API.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from convguard.errors import InvalidInput, Unauthorized
from convguard.server.gateway import Gateway
from convguard.server.rest import address_of, checked_path
from convguard.server.schemas import conversation_json, decision_json, message_json
from convguard.server.web.session import (
    SESSION_LABEL,
    SESSION_SECONDS,
    cookie_header,
    forbidden,
    session_key,
)
from convguard.server.web.stats import Bucket, statistics
from convguard.store import review as reads

__all__ = ["STATIC", "router"]

STATIC = files("convguard.server.web") / "static"
router = APIRouter(dependencies=[Depends(checked_path)])
Auth = Annotated[str | None, Header(alias="Authorization")]


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


# --- pages ----------------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def chat_page() -> FileResponse:
    return FileResponse(str(STATIC / "chat.html"), media_type="text/html")


@router.get("/review", include_in_schema=False)
def review_page() -> FileResponse:
    return FileResponse(str(STATIC / "review.html"), media_type="text/html")


# --- sessions -------------------------------------------------------------------------------------


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=500)


@router.post("/web/session", tags=["web"])
def sign_in(
    request: Request,
    body: SignIn,
    csrf: Annotated[str | None, Header(alias="X-Convguard-CSRF")] = None,
) -> JSONResponse:
    """Exchange an API key for a session cookie; the key itself is not kept."""
    if csrf != "1":  # so another site cannot sign a browser in under its own key
        status, refusal = forbidden(
            "signing in needs the header 'X-Convguard-CSRF: 1' (the web app sends it)"
        )
        return JSONResponse(json.loads(refusal), status)
    gateway = _gateway(request)
    gateway.lookups.check(f"address {address_of(request) or 'unknown'}")  # bounds key guessing
    record = gateway.store.authenticate(body.key.strip())
    if record is None:
        raise Unauthorized(
            "that API key is unknown or revoked; create one with "
            "`convguard keys create --account NAME`"
        )
    now = gateway.service.clock()
    # Sessions signed out or left to expire are deleted here, a bounded batch at a time, so
    # session keys do not pile up in the database.
    gateway.store.sweep_api_keys(
        SESSION_LABEL, created_before=now - timedelta(seconds=SESSION_SECONDS)
    )
    key, _ = gateway.store.create_api_key(
        record.account_name, now=now, admin=record.admin, label=SESSION_LABEL
    )
    response = JSONResponse({"account": record.account_name, "admin": record.admin}, 201)
    secure = request.url.scheme == "https"
    response.headers["set-cookie"] = cookie_header(key, secure=secure)
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/web/session", tags=["web"])
def whoami(request: Request, authorization: Auth = None) -> dict[str, Any]:
    """Who is signed in: ``{"account": null}`` when no one is (an answer, not an error, so the
    page can show its sign-in form without a failed request)."""
    if authorization is None:
        return {"account": None, "admin": False}
    caller = _gateway(request).caller(authorization, address=address_of(request))
    return {"account": caller.account, "admin": caller.admin}


@router.delete("/web/session", tags=["web"])
def sign_out(request: Request) -> JSONResponse:
    gateway = _gateway(request)
    key = session_key(list(request.scope["headers"]))
    if key is not None:
        record = gateway.store.authenticate(key)
        if record is not None and record.label == SESSION_LABEL:
            gateway.store.revoke_api_key(record.id, now=gateway.service.clock())
    response = JSONResponse({"signed_out": True})
    response.headers["set-cookie"] = cookie_header("", secure=False, max_age=0)
    return response


@router.get("/web/resources", tags=["web"])
def crisis_resources(
    request: Request,
    authorization: Auth = None,
    locale: Annotated[str | None, Query(max_length=35)] = None,
) -> dict[str, Any]:
    """The crisis resources the policy lists for ``locale`` (the deployment's by default)."""
    gateway = _gateway(request)
    gateway.caller(authorization, address=address_of(request))
    chosen = locale or gateway.settings.locale
    return {
        "locale": chosen,
        "resources": [
            {"name": r.name, "contact": r.contact, "url": r.url}
            for r in gateway.policy.resources_for(chosen)
        ],
    }


# --- the review dashboard's reads (admin) ---------------------------------------------------------


def _window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise InvalidInput(f"'since' ({since.isoformat()}) must be before 'until'")


@router.get("/v1/review/stats", tags=["review"])
def review_stats(
    request: Request,
    authorization: Auth = None,
    since: datetime | None = None,
    until: datetime | None = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=32)] = None,
    bucket: Bucket | None = None,
) -> dict[str, Any]:
    """Decisions by action and category over time, end rate, redirect rate, welfare signals."""
    gateway = _gateway(request)
    gateway.caller(authorization, admin=True, address=address_of(request))
    _window(since, until)
    if category is not None and category not in gateway.policy.categories:
        known = ", ".join(sorted(gateway.policy.categories))
        raise InvalidInput(f"category {category!r} is not in the policy; use one of {known}")
    rows = reads.decision_rows(gateway.store, since=since, until=until)
    if bucket is None:
        first = since or (rows[0].created_at if rows else None)
        last = until or (rows[-1].created_at if rows else None)
        short = first is None or last is None or last - first <= timedelta(days=2)
        bucket = "hour" if short else "day"
    data = statistics(
        rows,
        reads.assistant_turns(gateway.store, since=since, until=until),
        conversations=reads.conversation_count(gateway.store, since=since, until=until),
        endings=reads.ending_count(gateway.store, since=since, until=until),
        bucket=bucket,
        category=category,
        action=action,
    )
    data["categories"] = {cid: c.label for cid, c in gateway.policy.categories.items()}
    data["filters"] = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "category": category,
        "action": action,
    }
    return data


@router.get("/v1/review/reports", tags=["review"])
def review_reports(
    request: Request,
    authorization: Auth = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Reports on single assistant turns, each beside the decision it concerns."""
    gateway = _gateway(request)
    gateway.caller(authorization, admin=True, address=address_of(request))
    _window(since, until)
    return {
        "data": [
            {
                "id": item.report.id,
                "conversation_id": item.report.conversation_id,
                "rating": item.report.rating,
                "comment": item.report.comment,
                "created_at": item.report.created_at.isoformat(),
                "turn": message_json(item.turn),
                "answered": message_json(item.answered) if item.answered else None,
                "decision": decision_json(item.answered.decision) if item.answered else None,
            }
            for item in reads.turn_reports(gateway.store, since=since, until=until, limit=limit)
        ]
    }


@router.get("/v1/review/conversations/{conversation_id}", tags=["review"])
def export_conversation(
    request: Request, conversation_id: str, authorization: Auth = None
) -> JSONResponse:
    """A whole conversation as JSON (any account): its tree, decisions, endings and feedback."""
    gateway = _gateway(request)
    gateway.caller(authorization, admin=True, address=address_of(request))
    conversation = reads.any_conversation(gateway.store, conversation_id)
    endings = gateway.store.endings(conversation_id)
    data = {
        "conversation": {**conversation_json(conversation), "account_id": conversation.account_id},
        "messages": [message_json(m) for m in gateway.store.messages(conversation_id)],
        "endings": [
            {
                "id": e.id,
                "leaf_id": e.leaf_id,
                "reason": e.reason,
                "initiator": e.initiator,
                "policy_version": e.policy_version,
                "created_at": e.created_at.isoformat(),
            }
            for e in endings
        ],
        "feedback": [
            {
                "ending_id": f.ending_id,
                "rating": f.rating,
                "comment": f.comment,
                "created_at": f.created_at.isoformat(),
            }
            for f in reads.ending_feedback(gateway.store, conversation_id)
        ],
        "reports": [
            {
                "message_id": item.report.message_id,
                "rating": item.report.rating,
                "comment": item.report.comment,
                "created_at": item.report.created_at.isoformat(),
            }
            for item in reads.turn_reports(
                gateway.store, conversation_id=conversation_id, limit=500
            )
        ],
    }
    filename = f"conversation-{conversation_id[:12]}.json"
    return JSONResponse(data, headers={"Content-Disposition": f'attachment; filename="{filename}"'})

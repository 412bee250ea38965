"""The conversations API: create, list, read the tree, send, retry, feedback, review, assess."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from convguard.conversation import branch_path, fold, leaves
from convguard.errors import InvalidInput, NotReady
from convguard.server.gateway import Gateway
from convguard.server.schemas import (
    AssessRequest,
    CreateConversation,
    FeedbackRequest,
    SendMessage,
    ToolCallRequest,
    assessment_json,
    conversation_json,
    decision_json,
    message_json,
    state_json,
    text_problem,
)

__all__ = ["router"]

#: The largest offset a listing accepts (an offset past it could only page through nothing).
MAX_OFFSET = 1_000_000_000


def checked_path(request: Request) -> None:
    """Ids in the path are storable text (a ``%00`` would otherwise reach the database)."""
    for name, value in request.path_params.items():
        problem = text_problem(str(value))
        if problem is not None:
            raise InvalidInput(f"path parameter {name!r} contains {problem}; send a valid id")


router = APIRouter(dependencies=[Depends(checked_path)])
Auth = Annotated[str | None, Header(alias="Authorization")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def address_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def _timed(gateway: Gateway, route: str, started: float) -> None:
    gateway.metrics.requests.labels(route).observe(time.perf_counter() - started)


@router.get("/healthz", tags=["ops"])
def healthz(request: Request) -> dict[str, Any]:
    """Readiness: 200 once the classifier is loaded; 503 (``not_ready``) until then."""
    gateway = gateway_of(request)
    if not gateway.ready:
        raise NotReady("the classifier is still loading; the gateway takes traffic once it is")
    return {
        "status": "ok",
        "classifier": "ready",
        "policy_version": gateway.policy.version,
        "database": gateway.store.engine.dialect.name,
        "upstream": gateway.settings.upstream_kind if gateway.upstream else None,
    }


@router.get("/metrics", tags=["ops"])
def metrics(request: Request) -> Response:
    return Response(gateway_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


@router.post("/v1/conversations", status_code=201, tags=["conversations"])
def create_conversation(
    request: Request, body: CreateConversation, authorization: Auth = None
) -> dict[str, Any]:
    gateway = gateway_of(request)
    caller = gateway.caller(authorization, address=address_of(request))
    conversation = gateway.store.create_conversation(
        caller.account_id, now=gateway.service.clock(), title=body.title, locale=body.locale
    )
    return conversation_json(conversation)


@router.get("/v1/conversations", tags=["conversations"])
def list_conversations(
    request: Request,
    authorization: Auth = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    gateway = gateway_of(request)
    caller = gateway.caller(authorization, address=address_of(request))
    items = gateway.store.list_conversations(caller.account_id, limit=limit + 1, offset=offset)
    return {
        "data": [conversation_json(c) for c in items[:limit]],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(items) > limit else None,
    }


@router.get("/v1/conversations/{conversation_id}", tags=["conversations"])
def get_conversation(
    request: Request, conversation_id: str, authorization: Auth = None
) -> dict[str, Any]:
    gateway = gateway_of(request)
    caller = gateway.caller(authorization, address=address_of(request))
    conversation = gateway.store.conversation(caller.account_id, conversation_id)
    messages = gateway.store.messages(conversation_id)
    by_id = {m.id: m for m in messages}
    tree = {m.id: m.as_message() for m in messages}
    branches = []
    for leaf in leaves(tree.values()):
        path = [by_id[m.id] for m in branch_path(tree, leaf.id)]
        state = fold(gateway.policy, [m.as_step() for m in path])
        branches.append(
            {"leaf_id": leaf.id, "message_ids": [m.id for m in path], "state": state_json(state)}
        )
    return {
        "conversation": conversation_json(conversation),
        "messages": [message_json(m) for m in messages],
        "branches": branches,
    }


@router.post(
    "/v1/conversations/{conversation_id}/messages", tags=["conversations"], response_model=None
)
def send_message(
    request: Request,
    conversation_id: str,
    body: SendMessage,
    authorization: Auth = None,
    stream: Annotated[bool, Query(description="Stream the reply as server-sent events.")] = False,
) -> dict[str, Any] | Response:
    started = time.perf_counter()
    gateway = gateway_of(request)
    caller = gateway.caller(authorization, address=address_of(request))
    if stream:
        from convguard.server.streaming import closing_stream, turn_events

        turn = gateway.turn(
            caller, conversation_id, body.content, parent_id=body.parent_id, edit_of=body.edit_of
        )
        return StreamingResponse(
            closing_stream(turn_events(gateway, caller, turn)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    result, reply = gateway.send(
        caller, conversation_id, body.content, parent_id=body.parent_id, edit_of=body.edit_of
    )
    _timed(gateway, "messages", started)
    return {
        "conversation_id": conversation_id,
        "decision": decision_json(result.decision),
        "assessment": assessment_json(result.assessment),
        "message": message_json(result.user),
        "reply": message_json(reply),
        "state": state_json(result.state),
        "ended": result.ended,
        "policy_version": result.policy_version,
    }


@router.post(
    "/v1/conversations/{conversation_id}/messages/{message_id}/retry", tags=["conversations"]
)
def retry(
    request: Request, conversation_id: str, message_id: str, authorization: Auth = None
) -> dict[str, Any]:
    gateway = gateway_of(request)
    caller = gateway.caller(authorization, address=address_of(request))
    reply = gateway.retry(caller, conversation_id, message_id)
    return {"conversation_id": conversation_id, "reply": message_json(reply)}


@router.post(
    "/v1/conversations/{conversation_id}/feedback", status_code=201, tags=["conversations"]
)
def feedback(
    request: Request, conversation_id: str, body: FeedbackRequest, authorization: Auth = None
) -> dict[str, Any]:
    gateway = gateway_of(request)
    caller = gateway.caller(authorization, address=address_of(request))
    if body.message_id is not None and body.leaf_id is not None:
        raise InvalidInput("give 'message_id' (a report on one turn) or 'leaf_id' (an ending)")
    if body.message_id is not None:  # a report on one assistant turn, ended or not
        from convguard.store.review import add_turn_report

        gateway.service.conversation(caller.account, conversation_id)
        report = add_turn_report(
            gateway.store,
            conversation_id,
            body.message_id,
            rating=body.rating,
            comment=body.comment,
            now=gateway.service.clock(),
        )
        return {
            "id": report.id,
            "conversation_id": report.conversation_id,
            "ending_id": None,
            "message_id": report.message_id,
            "rating": report.rating,
            "comment": report.comment,
        }
    record = gateway.service.feedback(
        caller.account,
        conversation_id,
        comment=body.comment,
        rating=body.rating,
        leaf_id=body.leaf_id,
    )
    return {
        "id": record.id,
        "conversation_id": record.conversation_id,
        "ending_id": record.ending_id,
        "message_id": None,
        "rating": record.rating,
        "comment": record.comment,
    }


@router.get("/v1/review", tags=["review"])
def review(
    request: Request,
    authorization: Auth = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    gateway = gateway_of(request)
    gateway.caller(authorization, admin=True, address=address_of(request))
    items = gateway.store.ended_for_review(limit=limit, offset=offset)
    return {
        "data": [
            {
                "conversation": conversation_json(item.conversation),
                "ending": {
                    "id": item.ending.id,
                    "leaf_id": item.ending.leaf_id,
                    "reason": item.ending.reason,
                    "initiator": item.ending.initiator,
                    "policy_version": item.ending.policy_version,
                    "created_at": item.ending.created_at.isoformat(),
                },
                "path": [message_json(m) for m in item.path],
                "feedback": [
                    {
                        "rating": f.rating,
                        "comment": f.comment,
                        "created_at": f.created_at.isoformat(),
                    }
                    for f in item.feedback
                ],
            }
            for item in items
        ],
        "limit": limit,
        "offset": offset,
    }


@router.post("/v1/assess", tags=["assess"])
def assess(request: Request, body: AssessRequest, authorization: Auth = None) -> dict[str, Any]:
    gateway = gateway_of(request)
    gateway.caller(authorization, address=address_of(request))
    if (body.text is None) == (body.messages is None):
        raise InvalidInput("send either 'text' or 'messages' (a list of {role, content})")
    if body.text is not None:
        assessment = gateway.assessor.assess(body.text, role=body.role)
        return {"assessment": assessment_json(assessment)}
    results = []
    users: list[str] = []
    for turn in body.messages or ():
        context = users[-3:] if turn.role == "user" else []
        assessment = gateway.assessor.assess(turn.content, role=turn.role, context=context)
        results.append({"role": turn.role, "assessment": assessment_json(assessment)})
        if turn.role == "user":
            users.append(turn.content)
    return {"messages": results}


@router.post("/v1/tool-calls/assess", tags=["agents"])
def assess_tool_call(
    request: Request, body: ToolCallRequest, authorization: Auth = None
) -> dict[str, Any]:
    """An agent's tool call, assessed before it runs: allow, ask or deny, with the reasons."""
    from convguard.agent import Scope
    from convguard.agent import assess_tool_call as guard

    gateway = gateway_of(request)
    gateway.caller(authorization, address=address_of(request))
    scope = Scope.of(**body.scope.model_dump()) if body.scope is not None else gateway.scope
    verdict = guard(body.tool, body.arguments, scope=scope, context=body.context, cwd=body.cwd)
    return verdict.to_dict()

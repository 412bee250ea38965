"""Admin endpoints: list and revoke API keys (admin keys only; any other key is a 403).

A revoked key stops working on every worker within a second: workers trust a live key for at most
:data:`~convguard.server.gateway.KEY_CACHE_SECONDS` before asking the store, the state they share.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from convguard.server.rest import address_of, checked_path, gateway_of

__all__ = ["router"]

router = APIRouter(tags=["admin"], dependencies=[Depends(checked_path)])
Auth = Annotated[str | None, Header(alias="Authorization")]


@router.get("/v1/admin/keys")
def list_keys(
    request: Request,
    account: Annotated[str, Query(min_length=1, max_length=200)],
    authorization: Auth = None,
) -> dict[str, Any]:
    """The account's keys (never the keys themselves), revoked ones included, oldest first."""
    gateway = gateway_of(request)
    gateway.caller(authorization, admin=True, address=address_of(request))
    return {"data": [record.to_dict() for record in gateway.store.list_api_keys(account)]}


@router.post("/v1/admin/keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: str, authorization: Auth = None) -> dict[str, Any]:
    """Revoke a key: every worker refuses it within a second."""
    gateway = gateway_of(request)
    gateway.caller(authorization, admin=True, address=address_of(request))
    record = gateway.store.revoke_api_key(key_id, now=gateway.service.clock())
    gateway.forget_key(record.id)
    return record.to_dict()

"""Models: which model a client may name, which upstream model that means, and ``GET /v1/models``.

Chat front ends list the models first and then send one of them in every request's ``model``.

- Without ``CONVGUARD_MODELS``, the client's ``model`` is forwarded to the upstream as it is (a
  request without one gets ``CONVGUARD_UPSTREAM_MODEL``), and ``GET /v1/models`` answers the
  upstream's own list (an OpenAI-compatible upstream's ``GET /models``), or the configured model
  when the upstream has no list to give.
- With ``CONVGUARD_MODELS`` (``"gpt-4o-mini, fast=llama-3.1-8b"``), only the names listed may be
  asked for (else 404 ``model_not_found``, naming them); ``alias=upstream`` maps a client-facing
  name onto the upstream's; ``GET /v1/models`` lists the client-facing names.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Request

from convguard.errors import NotFound
from convguard.logs import event
from convguard.server.rest import address_of, gateway_of
from convguard.settings import Settings
from convguard.upstream import Upstream

__all__ = ["ModelNotFound", "Models", "router", "upstream_for"]

router = APIRouter(tags=["openai"])


class ModelNotFound(NotFound):
    type = "model_not_found"


@dataclass(frozen=True)
class Models:
    """The deployment's model names: ``allowed`` maps each client-facing name to the upstream's
    (``None``: any name, forwarded as it is); ``default`` is the upstream model for a request that
    names none."""

    default: str
    allowed: Mapping[str, str] | None = None

    @classmethod
    def of(cls, settings: Settings) -> Models:
        return cls(settings.upstream_model, settings.model_map)

    def upstream_name(self, requested: str | None) -> str:
        """The upstream model for the client's ``model`` (or :class:`ModelNotFound`)."""
        if self.allowed is None:
            return requested or self.default
        if requested is None:
            return self.allowed.get(self.default, self.default)
        if requested not in self.allowed:
            raise ModelNotFound(
                f"model {requested!r} is not offered here; use one of "
                f"{', '.join(map(repr, self.allowed))} (GET /v1/models lists them)"
            )
        return self.allowed[requested]


def upstream_for(upstream: Upstream, model: str) -> Upstream:
    """``upstream`` asking for ``model`` (the same connection pool: a shallow copy)."""
    if upstream.model == model:
        return upstream
    chosen = copy.copy(upstream)
    chosen.model = model
    return chosen


def _entry(name: str, owner: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


def _upstream_models(settings: Settings) -> list[dict[str, Any]] | None:
    """The upstream's own list, or ``None`` when it has none to give (or failed to)."""
    if not settings.upstream_url or settings.upstream_kind != "openai":
        return None
    url = f"{settings.upstream_url.rstrip('/')}/models"
    headers = {"Authorization": f"Bearer {settings.upstream_api_key}"}
    try:
        response = httpx.get(
            url,
            headers=headers if settings.upstream_api_key else {},
            timeout=min(settings.upstream_timeout, 10.0),
        )
        data = response.json().get("data") if response.status_code == 200 else None
        problem = None if isinstance(data, list) else f"HTTP {response.status_code}, no list"
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        data, problem = None, f"{type(exc).__name__}: {exc}"
    if problem is not None or not isinstance(data, list):
        # The list is a convenience: the configured model is still a true answer.
        event("upstream_error", "warning", logger="convguard.requests", url=url, error=problem)
        return None
    found = [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    return [_entry(m["id"], str(m.get("owned_by") or "upstream")) for m in found] or None


@router.get("/v1/models")
def list_models(
    request: Request,
    authorization: Annotated[str | None, Header(alias="Authorization")] = None,
) -> dict[str, Any]:
    """The models a client may name: the configured ones, else the upstream's."""
    gateway = gateway_of(request)
    gateway.caller(authorization, address=address_of(request))
    settings = gateway.settings
    models = Models.of(settings)
    if models.allowed is not None:
        data = [_entry(name, "convguard") for name in models.allowed]
    else:
        upstream = _upstream_models(settings)
        data = upstream if upstream is not None else [_entry(models.default, "convguard")]
    return {"object": "list", "data": data}

"""The authenticated admin API: provider status and the LLM order, changed at run time."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, Field

from hark.engines.fallback import Chain
from hark.security.access import ADMIN_KEY
from hark.services import services_of

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[ADMIN_KEY])


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    key = services_of(request).settings.server.admin_key
    if key is None:
        raise HTTPException(404, "the admin API is off; set server.admin_key (HARK_SERVER_ADMIN_KEY)")
    expected = f"Bearer {key.get_secret_value()}"
    if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise HTTPException(
            401, "a valid admin bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


Admin = Depends(require_admin)


class Order(BaseModel):
    order: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=32)


def _chain(request: Request, stage: str) -> Chain[Any]:
    engines = services_of(request).engines
    chain: Chain[Any] | None = {"stt": engines.stt, "llm": engines.llm, "tts": engines.tts}[stage]
    if chain is None:
        raise HTTPException(404, f"no {stage} providers are configured")
    return chain


@router.get("/providers", dependencies=[Admin])
async def providers(request: Request) -> dict[str, Any]:
    engines = services_of(request).engines
    return {
        stage: (chain.status() if chain is not None else [])
        for stage, chain in (("stt", engines.stt), ("llm", engines.llm), ("tts", engines.tts))
    }


@router.put("/llm/order", dependencies=[Admin])
async def set_llm_order(request: Request, body: Order) -> dict[str, Any]:
    chain = _chain(request, "llm")
    try:
        chain.reorder(body.order)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"llm": chain.status()}

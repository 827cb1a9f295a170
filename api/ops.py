"""Operator endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api.context import ServiceContext, get_context
from api.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str = Field(description="'ok' while the process serves HTTP.")


class Readiness(BaseModel):
    status: str = Field(description="'ready' when every check passes, else 'not ready'.")
    checks: dict[str, bool] = Field(description="Each readiness check (store, SIP listeners...).")


@router.get("/healthz", response_model=Health, summary="Process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Store and SIP listeners are ready",
    responses={503: {"model": Readiness, "description": "Some check failed"}},
)
async def readyz(ctx: Annotated[ServiceContext, Depends(get_context)]) -> Response:
    checks = await ctx.check_readiness()
    ready = all(checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                     "description": "Prometheus text exposition format"}},
)
async def metrics(ctx: Annotated[ServiceContext, Depends(get_context)]) -> Response:
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE)

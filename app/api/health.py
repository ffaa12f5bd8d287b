"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.api.deps import RuntimeDep, ServingDep
from app.problems import problem_response, problem_responses
from app.store.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and its schema is current",
    responses=problem_responses(503),
)
async def readyz(rt: RuntimeDep, serving: ServingDep) -> JSONResponse:
    try:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        revision = await current_revision(rt.engine)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return problem_response(503, f"database unreachable ({type(exc).__name__})", headers={"Retry-After": "5"})
    head = head_revision()
    if revision != head:
        return problem_response(503, f"database schema at {revision}, expected {head}: run `leaver migrate`")
    if serving.stopping:
        return problem_response(503, "shutting down")
    return JSONResponse({"status": "ready", "database": rt.engine.dialect.name, "schema": revision})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

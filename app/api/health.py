"""Liveness, readiness and metrics."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.api.deps import RuntimeDep, ServingDep
from app.metrics import ATTENTION, OLDEST_DUE_JOB, OLDEST_OPEN_CASE, OPEN_CASES, QUEUE_DEPTH
from app.problems import problem_response, problem_responses
from app.store import reads
from app.store.migrate import current_revision, head_revision
from app.store.models import utcnow

log = structlog.get_logger(__name__)
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
async def metrics(rt: RuntimeDep) -> Response:
    """This process's counters, plus gauges read from the database (the same on every replica)."""
    try:
        async with rt.sessions() as session:
            open_cases = await reads.open_cases_by_state(session)
            attention = await reads.attention_counts(session)
            oldest = await reads.oldest_open_case(session)
            due, waited = await reads.queue_depth(session)
    except Exception as exc:  # the counters still answer while the database is away
        log.warning("metrics.database_unavailable", error=type(exc).__name__)
    else:
        OPEN_CASES.clear()
        for state, count in open_cases.items():
            OPEN_CASES.labels(state).set(count)
        for kind, count in attention.items():
            ATTENTION.labels(kind).set(count)
        OLDEST_OPEN_CASE.set((utcnow() - oldest.created_at).total_seconds() if oldest else 0)
        QUEUE_DEPTH.set(due)
        OLDEST_DUE_JOB.set(waited or 0)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

"""The blast-radius guard over HTTP: what it holds (readers) and the operator's decision on a
held batch (operators; the audit names the signed-in operator)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from app.api.auth import Acting, reader
from app.api.deps import ReadSession, RuntimeDep
from app.api.ops import Why, run
from app.problems import problem_responses
from app.store import actions, guard

router = APIRouter(tags=["guard"], responses=problem_responses(401, 403, 404, 409, 422, 503))

BatchId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a guard batch ID from /status/guard")]


@router.get("/status/guard", summary="Blast-radius guard batches, waiting ones first", dependencies=[Depends(reader)])
async def guard_batches(session: ReadSession) -> dict[str, Any]:
    """Each batch with its target, size, the first events it holds and the operator's decision."""
    found = await guard.batches(session)
    return {"held": [b for b in found if b["state"] == "held"], "batches": found}


@router.post("/ops/guard/{batch_id}/confirm", summary="Let every case a guard batch holds proceed")
async def confirm(batch_id: BatchId, rt: RuntimeDep, who: Acting, why: Why | None = None) -> dict[str, Any]:
    reason = (why or Why()).reason
    return await run(rt, lambda s: actions.confirm_guard(s, batch_id, who.name, reason))


@router.post("/ops/guard/{batch_id}/cancel", summary="Cancel every case a guard batch holds: nothing is submitted")
async def cancel(batch_id: BatchId, rt: RuntimeDep, who: Acting, why: Why | None = None) -> dict[str, Any]:
    reason = (why or Why()).reason
    return await run(rt, lambda s: actions.cancel_guard(s, batch_id, who.name, reason))

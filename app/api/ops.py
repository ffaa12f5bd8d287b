"""Operator actions over JSON: retry, cancel, settle, re-verify a case; approve or keep a held
item. Each needs the operator role; the audit names the signed-in operator, never the body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import Acting
from app.api.deps import RuntimeDep
from app.problems import Problem, problem_responses
from app.runtime import Runtime
from app.store import actions

router = APIRouter(prefix="/ops", tags=["ops"], responses=problem_responses(401, 403, 404, 409, 422, 503))

#: Row IDs as the database stores them: anything larger names no row (a 422, never a 500).
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a case ID from /status")]
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a plan item ID from /status")]


class Why(BaseModel):
    reason: str = Field(default="operator action", min_length=1, max_length=1000)


class Settlement(Why):
    """What the operator found in the IGA for removals leaver could not prove sent or unsent."""

    outcome: Literal["removed", "failed"]


Action = Callable[[AsyncSession], Awaitable[dict[str, Any]]]


async def run(rt: Runtime, action: Action) -> dict[str, Any]:
    """One action in one transaction; a refusal becomes its problem answer."""
    try:
        async with rt.sessions() as session, session.begin():
            result = await action(session)
    except actions.Refused as exc:
        raise Problem(exc.status, exc.detail) from None
    rt.wakeup.set()
    return result


@router.post("/cases/{case_id}/retry", summary="Send a failed case back through the pipeline")
async def retry_case(case_id: CaseId, rt: RuntimeDep, who: Acting, why: Why | None = None) -> dict[str, Any]:
    """Resumes where the case stopped; batches already sent are looked up, never resent blind."""
    reason = (why or Why()).reason
    return await run(rt, lambda s: actions.retry_case(s, case_id, who.name, reason))


@router.post("/cases/{case_id}/cancel", summary="Cancel every removal of a case not yet sent to the IGA")
async def cancel_case(case_id: CaseId, rt: RuntimeDep, who: Acting, why: Why | None = None) -> dict[str, Any]:
    reason = (why or Why()).reason
    return await run(rt, lambda s: actions.cancel_case(s, case_id, who.name, reason))


@router.post("/cases/{case_id}/settle", summary="Settle the uncertain removals of a failed case")
async def settle_case(case_id: CaseId, rt: RuntimeDep, who: Acting, settlement: Settlement) -> dict[str, Any]:
    """The operator checked the IGA by hand: the access is gone (`removed`) or must be handled by
    hand (`failed`). Nothing is sent; the reason is kept in the audit."""
    return await run(rt, lambda s: actions.settle_case(s, case_id, who.name, settlement.reason, settlement.outcome))


@router.post("/cases/{case_id}/reverify", summary="Check removals still listed after the IGA said done, again")
async def reverify_case(case_id: CaseId, rt: RuntimeDep, who: Acting, why: Why | None = None) -> dict[str, Any]:
    reason = (why or Why()).reason
    return await run(rt, lambda s: actions.reverify_case(s, case_id, who.name, reason))


@router.post("/items/{item_id}/approve", summary="Release a held item for removal now")
async def approve_item(item_id: ItemId, rt: RuntimeDep, who: Acting, why: Why | None = None) -> dict[str, Any]:
    reason = (why or Why()).reason
    return await run(rt, lambda s: actions.approve_item(s, item_id, who.name, reason))


@router.post("/items/{item_id}/keep", summary="Keep a held item: it is not removed")
async def keep_item(item_id: ItemId, rt: RuntimeDep, who: Acting, why: Why | None = None) -> dict[str, Any]:
    reason = (why or Why()).reason
    return await run(rt, lambda s: actions.keep_item(s, item_id, who.name, reason))

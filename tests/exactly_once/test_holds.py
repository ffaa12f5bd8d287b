"""A held item waits for an operator, but not silently for ever: once LEAVER_HOLD_ESCALATE_AFTER_SECONDS
passes without a decision it is flagged on the item and in the audit, and counted."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from app.store.models import Audit, PlanItem
from tests.exactly_once.conftest import SYSTEMS, Stack

DEMO_POLICY = Path(__file__).resolve().parents[2] / "app" / "policy" / "demo_policy.yaml"


@pytest.mark.parametrize("system", SYSTEMS)
async def test_a_hold_nobody_decides_on_is_escalated_once(
    make_stack: Callable[..., Coroutine[Any, Any, Stack]], system: str
) -> None:
    stack = await make_stack(system, policy_file=DEMO_POLICY, hold_escalate_after_seconds=3600.0)
    case = await stack.deliver(
        {"id": "d1", "type": "user.disabled", "occurred_at": "2026-11-20T17:00:00Z", "user": {"username": "jdoe"}}
    )
    for _ in range(6):  # let the case reach its daily re-check with only the held item left
        stack.sim.clock.advance(60)
        await stack.work(case)
    before = REGISTRY.get_sample_value("leaver_holds_escalated_total", {"target": "iga"}) or 0.0
    async with stack.rt.sessions() as session, session.begin():
        held = list(await session.scalars(select(PlanItem).where(PlanItem.state == "held")))
        assert held, "the demo policy holds jdoe's privileged access on a disable"
        for item in held:
            item.updated_at -= timedelta(hours=2)  # held two hours ago
    await stack.work(case)
    await stack.work(case)  # looking again flags nothing twice
    async with stack.rt.sessions() as session:
        notes = [i.note for i in await session.scalars(select(PlanItem).where(PlanItem.state == "held"))]
        audit = list(await session.scalars(select(Audit.why).where(Audit.why.like("escalated:%"))))
    assert notes and all(n and n.startswith("escalated: held 1 h") for n in notes)
    assert len(audit) == len(notes)
    after = REGISTRY.get_sample_value("leaver_holds_escalated_total", {"target": "iga"}) or 0.0
    assert after - before == len(notes)

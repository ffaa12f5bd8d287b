"""Helpers for tests that talk to leaver: signing events, counting rows."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from app.intake.signature import sign
from app.runtime import Runtime
from app.store.models import Audit, Case, Event, IgaRequest, Job, PlanItem
from tests.conftest import WEBHOOK_SECRET


def event_body(
    user: str = "jdoe",
    *,
    event_id: str | None = None,
    type_: str = "user.terminated",
    target: str | None = None,
    occurred_at: str = "2026-11-20T17:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id or f"evt-{uuid.uuid4().hex[:12]}",
        "type": type_,
        "occurred_at": occurred_at,
        "source": "test-idm",
        "user": {"username": user},
        **extra,
    }
    if target:
        body["target"] = target
    return body


def signed(
    body: dict[str, Any] | bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = timestamp if timestamp is not None else int(time.time())
    return raw, {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, raw),
    }


async def row_counts(rt: Runtime) -> dict[str, int]:
    async with rt.sessions() as session:
        return {
            model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Event, Case, Job, PlanItem, IgaRequest, Audit)
        }

"""`POST /webhooks/events`: the generic JSON event, signed per Standard Webhooks.

Order matters: size and media type, then the signature over the raw bytes, then parsing, then
the one commit. Only a committed event gets a 2xx; a database outage gets 503 + Retry-After.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import RuntimeDep
from app.domain import LeaverEvent
from app.intake.jsonbody import BodyError, BodyTooLarge, loads_strict, read_limited
from app.intake.signature import SignatureError, verify
from app.metrics import EVENTS_RECEIVED
from app.problems import Problem, problem_responses, validation_errors
from app.runtime import Runtime
from app.store.intake import store_event

log = structlog.get_logger(__name__)
router = APIRouter(tags=["intake"])
RETRY_AFTER = "5"

_ACCEPTED_EXAMPLE = {"event_id": "ev_019ab3c4d5e6f7a8b9c0d1e2f3a4", "duplicate": False}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading it all."""
    try:
        return await read_limited(request, limit)
    except BodyTooLarge as exc:
        raise Problem(413, str(exc)) from None


def parse_event(body: bytes) -> LeaverEvent:
    try:
        data = loads_strict(body)
    except BodyError as exc:
        raise Problem(422, str(exc)) from None
    if isinstance(data, dict) and "user" not in data and isinstance(data.get("data"), dict):
        data = data["data"]  # the Standard Webhooks envelope {"type","timestamp","data"}
    try:
        return LeaverEvent.model_validate(data)
    except ValidationError as exc:
        raise Problem(422, "the event is not valid", errors=validation_errors(exc.errors())) from None


def targets_for(rt: Runtime, event: LeaverEvent) -> list[str]:
    names = rt.target_names()
    if event.target is None:
        if not names:
            raise Problem(422, "no IGA target is configured")
        return names
    if event.target not in names:
        raise Problem(422, f"unknown target {event.target!r}; configured targets: {', '.join(names) or 'none'}")
    return [event.target]


def check_identifiable(event: LeaverEvent, targets: list[str]) -> None:
    """An event known only by IGA IDs must carry one for every target it goes to."""
    u = event.user
    if u.dn or u.username or u.email or u.employee_id:
        return
    missing = [t for t in targets if t not in u.ids]
    if missing:
        raise Problem(422, f"user: no identifier for target(s) {', '.join(missing)}; user.ids names {sorted(u.ids)}")


@router.post(
    "/webhooks/events",
    status_code=202,
    summary="Receive a user lifecycle event (Standard Webhooks signed)",
    responses={
        202: {
            "description": "Stored; processing starts",
            "content": {"application/json": {"example": _ACCEPTED_EXAMPLE}},
        },
        200: {"description": "Already received: the first delivery's event_id"},
        **problem_responses(401, 413, 415, 422, 503),
    },
)
async def receive_event(request: Request, rt: RuntimeDep) -> JSONResponse:
    settings = rt.settings
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("application/json", "") and not media.endswith("+json"):
        raise Problem(415, "send the event as application/json")
    body = await read_body(request, settings.max_body_bytes)
    try:
        webhook_id = verify(
            settings.webhook_secrets, request.headers, body, tolerance=settings.webhook_tolerance_seconds
        )
    except SignatureError as exc:
        EVENTS_RECEIVED.labels("unauthorized").inc()
        raise Problem(401, f"signature check failed: {exc}") from None
    event = parse_event(body)
    targets = targets_for(rt, event)
    check_identifiable(event, targets)
    try:
        stored = await store_event(
            rt.sessions, event, targets=targets, webhook_id=webhook_id, dry_run_targets=rt.dry_run_targets()
        )
    except (SQLAlchemyError, OSError) as exc:
        EVENTS_RECEIVED.labels("unavailable").inc()
        log.error("intake.store_failed", error=type(exc).__name__)
        raise Problem(
            503, "the event store is unavailable; retry later", headers={"Retry-After": RETRY_AFTER}
        ) from None
    EVENTS_RECEIVED.labels("duplicate" if stored.duplicate else "accepted").inc()
    if not stored.duplicate:
        rt.wakeup.set()
    log.info(
        "intake.event",
        event_id=stored.event_id,
        duplicate=stored.duplicate,
        type=event.type,
        source=event.source,
        targets=targets,
    )
    return JSONResponse(
        {"event_id": stored.event_id, "duplicate": stored.duplicate},
        status_code=200 if stored.duplicate else 202,
    )

"""`POST /webhooks/events`: the generic JSON event, signed per Standard Webhooks.

Order matters: size and media type, then the signature over the raw bytes, then parsing, then
the one commit. Only a committed event gets a 2xx; a database outage gets 503 + Retry-After.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import RuntimeDep
from app.domain import LeaverEvent
from app.intake.signature import SignatureError, verify
from app.metrics import EVENTS_RECEIVED
from app.problems import Problem, validation_errors
from app.runtime import Runtime
from app.store.intake import store_event

log = structlog.get_logger(__name__)
router = APIRouter(tags=["intake"])
RETRY_AFTER = "5"

_ACCEPTED_EXAMPLE = {"event_id": "ev_019ab3c4d5e6f7a8b9c0d1e2f3a4", "duplicate": False}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Problem(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_event(body: bytes) -> LeaverEvent:
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, "body is not valid JSON") from None
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
        401: {"description": "Missing, stale or wrong signature"},
        413: {"description": "Body too large"},
        415: {"description": "Not application/json"},
        422: {"description": "Not JSON, not a valid event, or an unknown target"},
        503: {"description": "Database unavailable: retry later"},
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
    try:
        stored = await store_event(rt.sessions, event, targets=targets, webhook_id=webhook_id)
    except (SQLAlchemyError, OSError) as exc:
        EVENTS_RECEIVED.labels("unavailable").inc()
        log.error("intake.store_failed", error=type(exc).__name__)
        raise Problem(
            503, "the event store is unavailable; retry later", headers={"Retry-After": RETRY_AFTER}
        ) from None
    EVENTS_RECEIVED.labels("duplicate" if stored.duplicate else "accepted").inc()
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

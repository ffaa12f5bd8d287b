"""`POST /webhooks/events`: the generic JSON event, signed per Standard Webhooks.

Order matters: size and media type, then the signature over the raw bytes, then parsing, then
the one commit. Only a committed event gets a 2xx; a database outage gets 503 + Retry-After.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.api.deps import RuntimeDep
from app.domain import LeaverEvent
from app.intake.accept import RETRY_AFTER, Unacceptable, Unavailable, accepted_responses, commit
from app.intake.jsonbody import BodyError, BodyTooLarge, loads_strict, read_limited
from app.intake.signature import SignatureError, verify
from app.metrics import EVENTS_RECEIVED
from app.problems import Problem, validation_errors

log = structlog.get_logger(__name__)
router = APIRouter(tags=["intake"])


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


@router.post(
    "/webhooks/events",
    status_code=202,
    summary="Receive a user lifecycle event (Standard Webhooks signed)",
    responses=accepted_responses(401, 413, 415, 422, 503),
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
    try:
        stored = await commit(rt, event, fmt="generic", webhook_id=webhook_id)
    except Unacceptable as exc:
        raise Problem(422, str(exc)) from None
    except Unavailable as exc:
        raise Problem(503, str(exc), headers={"Retry-After": RETRY_AFTER}) from None
    return JSONResponse(
        {"event_id": stored.event_id, "duplicate": stored.duplicate},
        status_code=200 if stored.duplicate else 202,
    )

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
from app.problems import Problem, problem_responses, validation_errors
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
        data: Any = json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _Refused as exc:
        raise Problem(422, str(exc)) from None
    except RecursionError:
        raise Problem(422, f"body nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, "body is not valid JSON") from None
    problem = _hostile(data)
    if problem:
        raise Problem(422, problem)
    if isinstance(data, dict) and "user" not in data and isinstance(data.get("data"), dict):
        data = data["data"]  # the Standard Webhooks envelope {"type","timestamp","data"}
    try:
        return LeaverEvent.model_validate(data)
    except ValidationError as exc:
        raise Problem(422, "the event is not valid", errors=validation_errors(exc.errors())) from None


MAX_DEPTH = 32
#: C0 control characters other than tab, newline and carriage return (NUL breaks PostgreSQL text).
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r"}


class _Refused(ValueError):
    """Input JSON allows but an event must not carry."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate keys: with "last one wins", `{"type": "user.terminated", "type":
    "user.enabled"}` would silently become a rehire."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Refused(f"duplicate key {key!r} in the body")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _hostile(value: Any, depth: int = 0) -> str | None:
    """Why a parsed body is refused (too deep, control characters), or None."""
    if depth > MAX_DEPTH:
        return f"body nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return "control characters in a string" if _CONTROL.intersection(value) else None
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    return next((p for p in (_hostile(v, depth + 1) for v in items) if p), None)


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
        stored = await store_event(rt.sessions, event, targets=targets, webhook_id=webhook_id)
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

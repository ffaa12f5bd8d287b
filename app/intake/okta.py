"""`GET|POST /webhooks/okta`: Okta Event Hooks.

Okta signs nothing: the hook sends a fixed header value (the source's secret), and each System
Log event's `uuid` is the dedupe key. Okta waits 3 seconds and retries once, never after a 4xx,
so a delivery is checked whole before anything is stored, and answered `204` only after every
event in it is committed."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import RuntimeDep
from app.domain import EventType, LeaverEvent
from app.intake.accept import RETRY_AFTER, Unacceptable, Unavailable, build_event, commit, refused, targets_for
from app.intake.jsonbody import BodyError, BodyTooLarge, loads_strict, media_type, read_limited
from app.intake.sources import OktaOptions, Source, SourcesDep, header_values
from app.problems import Problem, problem_responses

log = structlog.get_logger(__name__)
router = APIRouter(tags=["intake: Okta Event Hooks"])

CHALLENGE = "x-okta-verification-challenge"
MAX_EVENTS = 1000
#: Okta lifecycle event -> (leaver type, whether it plans removals); `deactivate` is configurable.
EVENTS: dict[str, tuple[EventType, bool]] = {
    "user.lifecycle.suspend": ("user.disabled", True),
    "user.lifecycle.deactivate": ("user.disabled", True),
    "user.lifecycle.delete.initiated": ("user.terminated", True),
    "user.lifecycle.unsuspend": ("user.enabled", True),
    "user.lifecycle.activate": ("user.enabled", True),
    # Re-sends an activation to a user who is not active yet: recorded, nothing to do.
    "user.lifecycle.reactivate": ("user.enabled", False),
}


@router.get(
    "/webhooks/okta",
    summary="Okta Event Hook one-time verification",
    description='Echoes `X-Okta-Verification-Challenge` as `{"verification": ...}`; changes nothing.',
    responses={
        200: {"content": {"application/json": {"example": {"verification": "X1u..."}}}},
        **problem_responses(400),
    },
)
async def verify_hook(request: Request) -> JSONResponse:
    challenge = request.headers.get(CHALLENGE, "")
    if not challenge or len(challenge) > 512 or not challenge.isprintable():
        raise Problem(400, "send the X-Okta-Verification-Challenge header")
    return JSONResponse({"verification": challenge})


@router.post(
    "/webhooks/okta",
    status_code=204,
    summary="Receive Okta Event Hook deliveries (user lifecycle events)",
    description="Authenticated by the header configured on the hook (a source secret). "
    "Lifecycle events with outcome SUCCESS become events; others are ignored. See docs/intake.md.",
    response_class=Response,
    responses={
        204: {"description": "Every event of the delivery is stored"},
        **problem_responses(400, 401, 413, 415, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "required": ["data"]}}},
        }
    },
)
async def receive_hook(request: Request, rt: RuntimeDep, sources: SourcesDep) -> Response:
    if media_type(request) != "application/json":
        raise Problem(415, "Okta sends application/json")
    try:
        body = await read_limited(request, rt.settings.max_body_bytes)
    except BodyTooLarge as exc:
        raise Problem(413, str(exc)) from None
    source = next(
        (s for s in sources.of("okta") if s.matches(header_values(request.headers, s.options.header))),
        None,
    )
    if source is None:
        refused("okta", "unauthorized")
        raise Problem(401, "the hook's authentication header does not match a configured Okta source")
    try:
        events = parse_delivery(source, loads_strict(body))
        for event, plan in events:
            if plan:
                targets_for(rt, event)  # every event must be storable before the first is stored
    except (BodyError, Unacceptable) as exc:
        refused("okta", "invalid", source=source.name, detail=str(exc))
        raise Problem(400, str(exc)) from None
    try:
        for event, plan in events:
            await commit(rt, event, fmt="okta", plan=plan)
    except Unacceptable as exc:
        raise Problem(400, str(exc)) from None
    except Unavailable as exc:
        raise Problem(503, str(exc), headers={"Retry-After": RETRY_AFTER}) from None
    return Response(status_code=204)


def parse_delivery(source: Source, body: Any) -> list[tuple[LeaverEvent, bool]]:
    """Every lifecycle event of a delivery as (event, plans removals); any bad one refuses all."""
    data = body.get("data") if isinstance(body, dict) else None
    entries = data.get("events") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise Unacceptable("not an Okta event hook delivery: data.events must be a list")
    if len(entries) > MAX_EVENTS:
        raise Unacceptable(f"more than {MAX_EVENTS} events in one delivery")
    delivery = body.get("eventId")
    events: list[tuple[LeaverEvent, bool]] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise Unacceptable(f"data.events[{n}] is not an object")
        found = _one(source, entry, delivery)
        if found is None:
            continue
        events.append(found)
    return events


def _one(source: Source, entry: dict[str, Any], delivery: Any) -> tuple[LeaverEvent, bool] | None:
    kind = entry.get("eventType")
    outcome = entry.get("outcome")
    result = outcome.get("result") if isinstance(outcome, dict) else None
    if kind not in EVENTS or result != "SUCCESS":
        log.info("intake.okta_ignored", source=source.name, event_type=str(kind)[:100], outcome=str(result)[:20])
        return None
    uuid = entry.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise Unacceptable(f"{kind}: an event without a uuid")
    user = next(
        (t for t in entry.get("target") or [] if isinstance(t, dict) and t.get("type") == "User"),
        None,
    )
    if user is None:
        raise Unacceptable(f"event {uuid[:64]}: no target of type User")
    type_, plan = EVENTS[kind]
    options: OktaOptions = source.options
    if kind == "user.lifecycle.deactivate":
        type_ = options.deactivate_as
    login = user.get("alternateId")
    view = {
        "id": user.get("id"),
        "login": login,
        "alternateId": login,
        "displayName": user.get("displayName"),
        "email": login if isinstance(login, str) and "@" in login else None,
    }
    actor: dict[str, Any] = entry["actor"] if isinstance(entry.get("actor"), dict) else {}
    attributes = {
        "okta": {
            "eventType": kind,
            "displayMessage": entry.get("displayMessage"),
            "actor": {k: actor.get(k) for k in ("id", "type", "alternateId", "displayName")},
            "user_id": user.get("id"),
            "delivery": delivery,
            "recorded_only": not plan,
        }
    }
    try:
        event = build_event(
            source, event_id=uuid, type_=type_, view=view, occurred_at=entry.get("published"), attributes=attributes
        )
    except Unacceptable as exc:
        raise Unacceptable(f"event {uuid[:64]}: {exc}") from None
    return event, plan

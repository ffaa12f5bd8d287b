"""`POST /webhooks/mapped/{source}`: any JSON a sender already produces (NetIQ/OpenText IDM's REST
driver, a script), turned into the event by the source's field mapping instead of asking the
sender to write leaver's JSON.

Authenticated by a Standard Webhooks signature when the source holds `whsec_` keys and the
request carries one (then `webhook-id` dedupes too), else by a bearer token or a Basic password.
Answers as the generic route: `202 {"event_id","duplicate":false}`, `200` for a redelivery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import RuntimeDep
from app.domain import EventType, LeaverEvent
from app.intake.accept import RETRY_AFTER, Unacceptable, Unavailable, accepted_responses, build_event, commit, refused
from app.intake.jsonbody import BodyError, BodyTooLarge, loads_strict, media_type, read_limited
from app.intake.mapping import Expr, Path
from app.intake.signature import SignatureError, verify
from app.intake.sources import CompiledMapping, Source, SourcesDep, offered_credentials
from app.problems import Problem

router = APIRouter(tags=["intake: mapped JSON"])
TYPES: tuple[EventType, ...] = ("user.disabled", "user.terminated", "user.enabled")


@router.post(
    "/webhooks/mapped/{source}",
    status_code=202,
    summary="Receive a sender's own JSON, mapped to an event by the source's settings",
    description="For NetIQ/OpenText IDM's REST driver or any script: see docs/intake.md for the mapping. "
    "Authenticated by `Authorization: Bearer`, Basic, or a Standard Webhooks signature.",
    responses=accepted_responses(401, 404, 413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def receive_mapped(source: str, request: Request, rt: RuntimeDep, sources: SourcesDep) -> JSONResponse:
    configured = sources.named(source, "mapped")
    if configured is None:
        raise Problem(404, "no mapped-JSON source of that name is configured")
    media = media_type(request)
    if media not in ("application/json", "") and not media.endswith("+json"):
        raise Problem(415, "send the body as application/json")
    try:
        body = await read_limited(request, rt.settings.max_body_bytes)
    except BodyTooLarge as exc:
        raise Problem(413, str(exc)) from None
    webhook_id = authenticate(configured, request, body, rt.settings.webhook_tolerance_seconds)
    try:
        event = map_event(configured, loads_strict(body))
        stored = await commit(rt, event, fmt="mapped", webhook_id=webhook_id)
    except (BodyError, Unacceptable) as exc:
        refused("mapped", "invalid", source=configured.name, detail=str(exc))
        raise Problem(422, str(exc)) from None
    except Unavailable as exc:
        raise Problem(503, str(exc), headers={"Retry-After": RETRY_AFTER}) from None
    return JSONResponse(
        {"event_id": stored.event_id, "duplicate": stored.duplicate},
        status_code=200 if stored.duplicate else 202,
    )


def authenticate(source: Source, request: Request, body: bytes, tolerance: int) -> str | None:
    """The `webhook-id` of a signed request, or None for a bearer/Basic one; 401 otherwise."""
    keys = [s for s in source.secrets if s.startswith("whsec_")]
    if keys and "webhook-signature" in request.headers:
        try:
            return verify(keys, request.headers, body, tolerance=tolerance)
        except SignatureError as exc:
            refused("mapped", "unauthorized", source=source.name)
            raise Problem(401, f"signature check failed: {exc}") from None
    plain = Source(source.name, source.format, tuple(s for s in source.secrets if s not in keys), {}, None, None)
    if not plain.matches(offered_credentials(request.headers.get("authorization"))):
        refused("mapped", "unauthorized", source=source.name)
        raise Problem(401, "send a bearer token, a Basic password or a Standard Webhooks signature of this source")
    return None


def map_event(source: Source, data: Any) -> LeaverEvent:
    """The event the source's mapping reads out of the sender's JSON."""
    if not isinstance(data, dict):
        raise Unacceptable("the body must be a JSON object")
    m = source.mapping
    assert m is not None  # a mapped source always has one (sources.build_sources)
    event_id = m.id.render(data)
    if not event_id:
        raise Unacceptable("the id mapping finds nothing in the body")
    return build_event(
        source,
        event_id=event_id,
        type_=_type(m, data),
        view=data,
        occurred_at=_time(m.occurred_at, data, "occurred_at"),
        effective_at=_time(m.effective_at, data, "effective_at"),
        attributes=_attributes(m, data),
        target=m.target.render(data) if m.target else None,
    )


def _type(m: CompiledMapping, data: dict[str, Any]) -> EventType:
    if isinstance(m.type, Expr):
        value = m.type.render(data)
        found = next((t for t in TYPES if t == value), None)
        if found is None:
            raise Unacceptable(f"type must be one of {', '.join(TYPES)}")
        return found
    for choice, values, type_ in m.type:
        value = choice.render(data)
        if value is not None and value.lower() in values:
            return type_
    raise Unacceptable("no type rule of this source matches the body")


def _time(expr: Expr | None, data: dict[str, Any], name: str) -> str | None:
    if expr is None:
        return None
    value = expr.render(data)
    if value is None and name == "occurred_at":
        raise Unacceptable("the occurred_at mapping finds nothing in the body")
    return value


def _attributes(m: CompiledMapping, data: dict[str, Any]) -> dict[str, Any]:
    if m.attributes is None:
        return {}
    if isinstance(m.attributes, dict):
        return {k: v for k, c in m.attributes.items() if (v := c.render(data)) is not None}
    parts = m.attributes.parts
    value = parts[0].get(data) if len(parts) == 1 and isinstance(parts[0], Path) else None
    return dict(value) if isinstance(value, dict) else {}

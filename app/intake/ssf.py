"""`POST /webhooks/ssf`: OpenID Shared Signals push delivery (RFC 8935) of Security Event Tokens
(RFC 8417) carrying RISC account events and CAEP signals.

Order: the stream's bearer first (cheap, before any crypto), then the JWS against the
transmitter's JWKS, then the claims (`iss`, `aud`, `iat`, `jti`), then one commit. The answer is
RFC 8935's: `202` with an empty body once committed, or `400 {"err", "description"}`.
A SET delivered again (same `jti`, same claims) is answered 202 and stored once; a different SET
reusing a `jti` is refused."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import RuntimeDep
from app.domain import EventType
from app.intake import jwks
from app.intake.accept import RETRY_AFTER, Unacceptable, Unavailable, build_event, commit, refused, stored_payload
from app.intake.jsonbody import BodyTooLarge, hostile, media_type, read_limited
from app.intake.sources import Source, SourcesDep, SsfOptions, offered_credentials
from app.intake.ssf_subjects import SubjectError, subject_view

log = structlog.get_logger(__name__)
router = APIRouter(tags=["intake: OpenID Shared Signals"])

SECEVENT = "https://schemas.openid.net/secevent/"
#: RISC/CAEP event type -> (leaver type, whether it plans removals).
EVENTS: dict[str, tuple[EventType, bool]] = {
    f"{SECEVENT}risc/event-type/account-disabled": ("user.disabled", True),
    f"{SECEVENT}risc/event-type/account-purged": ("user.terminated", True),
    f"{SECEVENT}risc/event-type/account-enabled": ("user.enabled", True),
    # Signals, recorded and never planned: a revoked session is not a leaver.
    f"{SECEVENT}caep/event-type/session-revoked": ("user.disabled", False),
    f"{SECEVENT}caep/event-type/credential-change": ("user.disabled", False),
}
#: Stream management events: acknowledged, logged, not stored.
STREAM_EVENTS = (f"{SECEVENT}ssf/event-type/verification", f"{SECEVENT}ssf/event-type/stream-updated")


class SsfError(Exception):
    """An RFC 8935 error answer."""

    def __init__(self, err: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.err, self.description, self.status, self.headers = err, description, status, headers


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["err", "description"],
        "properties": {"err": {"type": "string"}, "description": {"type": "string"}},
    }


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        c: {"description": "RFC 8935 error", "content": {"application/json": {"schema": _error_schema()}}}
        for c in codes
    }


@router.post(
    "/webhooks/ssf",
    status_code=202,
    summary="Receive a Security Event Token (OpenID SSF push, RFC 8935)",
    # The body is not declared as a requestBody: API tools (Schemathesis among them) cannot encode
    # application/secevent+jwt, so it is described here instead.
    description="Body: one compact JWS (RFC 7515), `Content-Type: application/secevent+jwt`, "
    "`Authorization: Bearer <stream token>`. RISC account-disabled/-purged/-enabled start work; "
    "CAEP session-revoked and credential-change are recorded only. See docs/intake.md.",
    response_class=Response,
    responses={202: {"description": "Stored (or already stored); empty body"}, **_errors(400, 413, 415, 503)},
)
async def receive_set(request: Request, rt: RuntimeDep, sources: SourcesDep) -> Response:
    try:
        await _receive(request, rt, sources)
    except SsfError as exc:
        if exc.status != 503:
            refused("ssf", "unauthorized" if exc.err == "authentication_failed" else exc.err, detail=exc.description)
        body = {"err": exc.err, "description": exc.description}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)
    return Response(status_code=202)


async def _receive(request: Request, rt: RuntimeDep, sources: SourcesDep) -> None:
    if media_type(request) not in ("application/secevent+jwt", "application/jwt"):
        raise SsfError("invalid_request", "send one SET as application/secevent+jwt", status=415)
    try:
        body = await read_limited(request, rt.settings.max_body_bytes)
    except BodyTooLarge as exc:
        raise SsfError("invalid_request", str(exc), status=413) from None
    offered = offered_credentials(request.headers.get("authorization"))
    candidates = [s for s in sources.of("ssf") if s.matches(offered)]
    if not candidates:
        raise SsfError("authentication_failed", "the Authorization header does not name a configured stream")
    try:
        token = body.decode("ascii").strip()
        _, claims = jwks.peek(token)
    except (UnicodeDecodeError, jwks.TokenError):
        raise SsfError("invalid_request", "the body is not a compact JWS with a JSON payload") from None
    source = next((s for s in candidates if claims.get("iss") == s.options.issuer), None)
    if source is None:
        raise SsfError("invalid_issuer", "iss is not the issuer of this stream")
    options: SsfOptions = source.options
    keys = jwks.cache_for(
        request.app.state,
        f"ssf:{source.name}",
        lambda: jwks.KeyCache(
            options.jwks_uri, options.issuer, options.jwks_cache_seconds, options.jwks_refetch_seconds
        ),
    )
    try:
        await jwks.verify(token, keys, options.algorithms, typ="secevent+jwt")
    except jwks.TokenError as exc:
        raise SsfError("invalid_key" if exc.key_problem else "invalid_request", str(exc)) from None
    except jwks.KeysUnavailable:
        raise SsfError(
            "temporarily_unavailable",
            "the transmitter's keys cannot be fetched now; retry later",
            503,
            {"Retry-After": RETRY_AFTER},
        ) from None
    await _accept(rt, source, claims)


def check_claims(claims: dict[str, Any], options: SsfOptions, now: float | None = None) -> tuple[str, dict[str, Any]]:
    """The SET's one event (type URI, object) once `aud`, `jti`, `iat` and `exp` pass."""
    current = time.time() if now is None else now
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not set(options.audience) & {a for a in auds if isinstance(a, str)}:
        raise SsfError("invalid_audience", "aud does not name this receiver")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 200:
        raise SsfError("invalid_request", "jti must be a string of 1 to 200 characters")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise SsfError("invalid_request", "iat must be a NumericDate")
    if iat > current + options.future_skew_seconds:
        raise SsfError("invalid_request", "iat is in the future")
    if iat < current - options.max_age_seconds:
        raise SsfError("invalid_request", f"the SET is older than {options.max_age_seconds} seconds")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int | float) or exp < current):
        raise SsfError("invalid_request", "the SET has expired")
    if "sub" in claims or "exp" in claims:
        log.warning(
            "intake.ssf_pre_1_0_claims", iss=claims.get("iss"), present=[c for c in ("sub", "exp") if c in claims]
        )
    events = claims.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        raise SsfError("invalid_request", "events must be an object with exactly one event type")
    ((uri, event),) = events.items()
    if not isinstance(event, dict):
        raise SsfError("invalid_request", "the event must be a JSON object")
    return uri, event


async def _accept(rt: RuntimeDep, source: Source, claims: dict[str, Any]) -> None:
    problem = hostile(claims)
    if problem:
        raise SsfError("invalid_request", problem)
    uri, event = check_claims(claims, source.options)
    if uri in STREAM_EVENTS:
        log.info("intake.ssf_stream_event", source=source.name, type=uri.rsplit("/", 1)[-1], status=event.get("status"))
        return
    if uri not in EVENTS:
        log.info("intake.ssf_ignored", source=source.name, type=uri[:200])
        return
    type_, plan = EVENTS[uri]
    subject = claims.get("sub_id", event.get("subject"))
    try:
        view = subject_view(subject)
    except SubjectError as exc:
        raise SsfError("invalid_request", f"sub_id: {exc}") from None
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).hexdigest()
    attributes = {
        "ssf": {
            "event_type": uri,
            "event": {k: v for k, v in event.items() if k != "subject"},
            "iss": claims["iss"],
            "txn": claims.get("txn"),
            "recorded_only": not plan,
            "claims_sha256": digest,
        }
    }
    try:
        leaver_event = build_event(
            source,
            event_id=claims["jti"],
            type_=type_,
            view=view,
            occurred_at=_occurred(claims, event),
            attributes=attributes,
        )
        stored = await commit(rt, leaver_event, fmt="ssf", plan=plan)
        if stored.duplicate:
            first = await stored_payload(rt, stored.event_id)
            if (first or {}).get("attributes", {}).get("ssf", {}).get("claims_sha256") != digest:
                raise SsfError("invalid_request", "jti was already used by a different SET")
    except Unacceptable as exc:
        raise SsfError("invalid_request", str(exc)) from None
    except Unavailable as exc:
        raise SsfError("temporarily_unavailable", str(exc), 503, {"Retry-After": RETRY_AFTER}) from None


def _occurred(claims: dict[str, Any], event: dict[str, Any]) -> datetime:
    """CAEP `event_timestamp`, else RFC 8417 `toe`, else `iat`."""
    for value in (event.get("event_timestamp"), claims.get("toe"), claims["iat"]):
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                raise SsfError("invalid_request", "a time claim is out of range") from None
    raise SsfError("invalid_request", "no usable time claim")

"""`POST /webhooks/entra`: a Microsoft Entra ID Lifecycle Workflows custom task extension.

A leaver workflow's task calls a Logic App, which forwards the task's body here unchanged (the
`lifecycleEvent` with `callbackUriPath`, `subject`, `task`, `taskProcessingResult`, `workflow`),
authenticated with a static bearer (a Key Vault secret) or with an Entra access token of its
managed identity for leaver's app. The event's ID is the task processing result's, so the
Logic App's retries dedupe. `entra_resume` resumes the waiting workflow later."""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import RuntimeDep
from app.intake import jwks
from app.intake.accept import RETRY_AFTER, Unacceptable, Unavailable, accepted_responses, build_event, commit, refused
from app.intake.jsonbody import BodyError, BodyTooLarge, loads_strict, media_type, read_limited
from app.intake.sources import EntraOptions, JwtOptions, Source, Sources, SourcesDep, offered_credentials
from app.problems import Problem

router = APIRouter(tags=["intake: Microsoft Entra ID"])
#: The only Graph path leaver ever posts to on a sender's behalf.
CALLBACK = re.compile(
    r"^/identityGovernance/lifecycleWorkflows/workflows/[\w-]{1,64}/tasks/[\w-]{1,64}"
    r"/taskProcessingResults/[\w-]{1,64}/resume$"
)
CLOCK_SKEW = 120


@router.post(
    "/webhooks/entra",
    status_code=202,
    summary="Receive a Lifecycle Workflows custom task extension call (via its Logic App)",
    description="The `lifecycleEvent` body of a custom task extension, forwarded by its Logic App with "
    "`Authorization: Bearer <secret or Entra token>`. See docs/intake.md.",
    responses=accepted_responses(401, 413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def receive_task(request: Request, rt: RuntimeDep, sources: SourcesDep) -> JSONResponse:
    media = media_type(request)
    if media not in ("application/json", "") and not media.endswith("+json"):
        raise Problem(415, "send the body as application/json")
    try:
        body = await read_limited(request, rt.settings.max_body_bytes)
    except BodyTooLarge as exc:
        raise Problem(413, str(exc)) from None
    source = await authenticate(request, sources)
    try:
        event = build_event(source, **task_fields(source, loads_strict(body)))
        stored = await commit(rt, event, fmt="entra")
    except (BodyError, Unacceptable) as exc:
        refused("entra", "invalid", source=source.name, detail=str(exc))
        raise Problem(422, str(exc)) from None
    except Unavailable as exc:
        raise Problem(503, str(exc), headers={"Retry-After": RETRY_AFTER}) from None
    waker = getattr(request.app.state, "entra_resumer", None)
    if waker is not None and not stored.duplicate:
        waker.wake()
    return JSONResponse(
        {"event_id": stored.event_id, "duplicate": stored.duplicate},
        status_code=200 if stored.duplicate else 202,
    )


async def authenticate(request: Request, sources: Sources) -> Source:
    """The Entra source whose static secret, or whose Entra-issued token, the caller holds."""
    offered = offered_credentials(request.headers.get("authorization"))
    source = sources.by_credential("entra", offered)
    if source is not None:
        return source
    token = offered[-1] if len(offered) > 1 else ""
    for candidate in sources.of("entra"):
        jwt: JwtOptions | None = candidate.options.jwt
        if jwt is not None and token.count(".") == 2:
            try:
                if await _valid_token(request, candidate.name, jwt, token):
                    return candidate
            except jwks.KeysUnavailable:
                raise Problem(
                    503, "the token issuer's keys cannot be fetched now", headers={"Retry-After": RETRY_AFTER}
                ) from None
    refused("entra", "unauthorized")
    raise Problem(
        401, "send the bearer secret or an Entra token of an Entra source", headers={"WWW-Authenticate": "Bearer"}
    )


async def _valid_token(request: Request, name: str, jwt: JwtOptions, token: str) -> bool:
    try:
        _, claims = jwks.peek(token)
        if claims.get("iss") not in jwt.issuer:
            return False
        keys = jwks.cache_for(
            request.app.state,
            f"entra:{name}",
            lambda: jwks.KeyCache(jwt.jwks_uri, None, jwt.jwks_cache_seconds, jwt.jwks_refetch_seconds),
        )
        await jwks.verify(token, keys, jwt.algorithms)
    except jwks.TokenError:
        return False
    now = time.time()
    aud = claims.get("aud")
    audiences = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        return False
    fresh = exp > now - CLOCK_SKEW and nbf <= now + CLOCK_SKEW
    caller = {str(claims.get(k)) for k in ("appid", "azp", "oid") if claims.get(k)}
    allowed = not jwt.allowed_apps or bool(caller & set(jwt.allowed_apps))
    return fresh and allowed and bool(audiences & set(jwt.audience))


def _text(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def task_fields(source: Source, body: Any) -> dict[str, Any]:
    """`build_event` arguments from a custom task extension's body."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise Unacceptable("not a lifecycleEvent: data must be an object")
    subject, result = data.get("subject"), data.get("taskProcessingResult")
    result_id = _text(result, "id")
    if not isinstance(subject, dict) or not _text(subject, "id") or not result_id:
        raise Unacceptable("data.subject.id and data.taskProcessingResult.id are required")
    callback = data.get("callbackUriPath")
    if callback is not None and (not isinstance(callback, str) or not CALLBACK.match(callback)):
        raise Unacceptable("data.callbackUriPath is not a Lifecycle Workflows resume path")
    options: EntraOptions = source.options
    view = {k: _text(subject, k) for k in ("id", "displayName", "email", "userPrincipalName", "mail")}
    view["email"] = view["email"] or view.pop("mail")
    names = {k: _text(data.get(k), "displayName") for k in ("workflow", "task")}
    return {
        "event_id": result_id,
        "type_": options.type,
        "view": view,
        "occurred_at": _text(result, "createdDateTime"),
        "attributes": {
            "entra": {
                "callbackUriPath": callback,
                "subject_id": view["id"],
                "workflow": {"id": _text(data.get("workflow"), "id"), "displayName": names["workflow"]},
                "task": {"id": _text(data.get("task"), "id"), "displayName": names["task"]},
                "taskProcessingResult": result_id,
            }
        },
    }

"""`/scim/v2/...`: leaver as a SCIM 2.0 service provider, so an IDM that provisions users to SCIM
apps (Entra ID, Okta, OneLogin, NetIQ's SCIM driver) deprovisions them to leaver.

Each client authenticates with its source's bearer token (Okta may use Basic with it as the
password). A user's `active` going false (PATCH or PUT) is `user.disabled`, going true is
`user.enabled`, a DELETE is `user.terminated`; everything else only keeps the shadow user up to
date (see `scim_store`). Every answer, errors included, is `application/scim+json`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.convertors import Convertor, register_url_convertor

from app.api.deps import RuntimeDep
from app.intake import scim_store
from app.intake.accept import RETRY_AFTER, Unacceptable, Unavailable, refused
from app.intake.jsonbody import BodyError, BodyTooLarge, loads_strict, media_type, read_limited
from app.intake.scim_patch import clean, patch, replace
from app.intake.scim_store import Shadow
from app.intake.scim_wire import (
    ENTERPRISE,
    ENTERPRISE_SCHEMA,
    SCIM_JSON,
    SERVICE_PROVIDER_CONFIG,
    USER,
    USER_RESOURCE_TYPE,
    USER_SCHEMA,
    ScimError,
    list_response,
    parse_filter,
    scim_errors,
    scim_ok,
    scim_response,
)
from app.intake.sources import ScimOptions, Source, SourcesDep, offered_credentials


class ScimRoute(APIRoute):
    """Answers every error of a SCIM route as a SCIM error, FastAPI's own validation included."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except ScimError as exc:
                return exc.response()
            except RequestValidationError as exc:
                where = ".".join(str(p) for p in (exc.errors() or [{}])[0].get("loc", ()))
                return ScimError(400, f"invalid request parameter {where}", "invalidValue").response()
            except Unacceptable as exc:
                return ScimError(400, str(exc), "invalidValue").response()
            except Unavailable as exc:
                return ScimError(503, str(exc)).response({"Retry-After": RETRY_AFTER})

        return handler


router = APIRouter(prefix="/scim/v2", tags=["intake: SCIM 2.0"], route_class=ScimRoute)
BODY = {
    "requestBody": {
        "required": True,
        "content": {t: {"schema": {"type": "object"}} for t in (SCIM_JSON, "application/json")},
    }
}


def scim_source(request: Request, sources: SourcesDep) -> Source:
    source = sources.by_credential("scim", offered_credentials(request.headers.get("authorization")))
    if source is None:
        refused("scim", "unauthorized")
        raise ScimError(401, "send the bearer token of a configured SCIM source")
    return source


ScimSource = Annotated[Source, Depends(scim_source)]


async def read_json(request: Request, limit: int) -> Any:
    media = media_type(request)
    if media not in (SCIM_JSON, "application/json", ""):
        raise ScimError(415, "send application/scim+json")
    try:
        return loads_strict(await read_limited(request, limit))
    except BodyTooLarge as exc:
        raise ScimError(413, str(exc)) from None
    except BodyError as exc:
        raise ScimError(400, str(exc), "invalidSyntax") from None


def render(request: Request, shadow: Shadow) -> dict[str, Any]:
    schemas = [USER, ENTERPRISE] if ENTERPRISE in shadow.resource else [USER]
    meta = {
        "resourceType": "User",
        "created": shadow.created,
        "lastModified": shadow.modified,
        "location": str(request.url_for("scim_user", user_id=shadow.id)),
        "version": f'W/"{shadow.seq}"',
    }
    return {"schemas": schemas, "id": shadow.id, **shadow.resource, "active": shadow.active, "meta": meta}


@router.get("/ServiceProviderConfig", summary="SCIM service provider configuration", responses={200: scim_ok("")})
async def service_provider_config() -> Response:
    return scim_response(SERVICE_PROVIDER_CONFIG)


@router.get("/ResourceTypes", summary="SCIM resource types (User)", responses={200: scim_ok("")})
async def resource_types() -> Response:
    return scim_response(list_response([USER_RESOURCE_TYPE], 1, 1))


@router.get("/Schemas", summary="SCIM schemas (User, EnterpriseUser)", responses={200: scim_ok("")})
async def schemas() -> Response:
    return scim_response(list_response([USER_SCHEMA, ENTERPRISE_SCHEMA], 2, 1))


@router.get("/Users", summary="List or filter SCIM users", responses={200: scim_ok(""), **scim_errors(400, 401, 503)})
async def list_users(
    request: Request,
    rt: RuntimeDep,
    source: ScimSource,
    filter_: Annotated[str | None, Query(alias="filter", max_length=2000)] = None,
    start_index: Annotated[int, Query(alias="startIndex")] = 1,
    count: Annotated[int | None, Query()] = None,
) -> Response:
    options: ScimOptions = source.options
    comparisons = parse_filter(filter_) if filter_ else []
    user_name = next((c.value for c in comparisons if c.attr.lower() == "username" and not c.sub), None)
    shadows = await scim_store.current(rt, source, user_name if isinstance(user_name, str) else None)
    rendered = [render(request, s) for s in shadows]
    matched = [r for r in rendered if all(c.matches(r) for c in comparisons)]
    start = max(1, start_index)
    size = options.max_results if count is None else min(max(0, count), options.max_results)
    return scim_response(list_response(matched[start - 1 : start - 1 + size], len(matched), start))


@router.get(
    "/Users/{user_id}",
    name="scim_user",
    summary="One SCIM user",
    responses={200: scim_ok(""), **scim_errors(401, 404, 503)},
)
async def get_user(user_id: str, request: Request, rt: RuntimeDep, source: ScimSource) -> Response:
    shadow = await scim_store.get(rt, source, user_id)
    if shadow is None or shadow.deleted:
        raise ScimError(404, "no such user")
    return scim_response(render(request, shadow))


@router.post(
    "/Users",
    status_code=201,
    summary="Create a SCIM user (a shadow record; inactive ones start a leaver process)",
    responses={201: scim_ok("Created"), **scim_errors(400, 401, 409, 413, 415, 503)},
    openapi_extra=BODY,
)
async def create_user(request: Request, rt: RuntimeDep, source: ScimSource) -> Response:
    resource = clean(await read_json(request, rt.settings.max_body_bytes), what="POST")
    await _unique(rt, source, resource["userName"], None)
    shadow = await scim_store.write(rt, source, scim_store.new_id(), lambda _: (resource, False))
    assert shadow is not None
    body = render(request, shadow)
    return scim_response(body, 201, {"Location": body["meta"]["location"]})


async def _unique(rt: RuntimeDep, source: Source, user_name: str, rid: str | None) -> None:
    for other in await scim_store.current(rt, source, user_name):
        if other.id != rid and str(other.resource.get("userName", "")).lower() == user_name.lower():
            raise ScimError(409, "a user with this userName exists", "uniqueness")


def _existing(before: Shadow | None) -> Shadow:
    if before is None or before.deleted:
        raise ScimError(404, "no such user")
    return before


@router.put(
    "/Users/{user_id}",
    summary="Replace a SCIM user (active: false starts a leaver process)",
    responses={200: scim_ok("Replaced"), **scim_errors(400, 401, 404, 409, 413, 415, 503)},
    openapi_extra=BODY,
)
async def replace_user(user_id: str, request: Request, rt: RuntimeDep, source: ScimSource) -> Response:
    _existing(await scim_store.get(rt, source, user_id))
    body = await read_json(request, rt.settings.max_body_bytes)

    def change(before: Shadow | None) -> tuple[dict[str, Any], bool] | None:
        new = replace(_existing(before).resource, body)
        return None if new == _existing(before).resource else (new, False)

    return await _changed(request, rt, source, user_id, change)


@router.patch(
    "/Users/{user_id}",
    summary="Patch a SCIM user (active: false starts a leaver process)",
    responses={200: scim_ok("Patched"), **scim_errors(400, 401, 404, 409, 413, 415, 503)},
    openapi_extra=BODY,
)
async def patch_user(user_id: str, request: Request, rt: RuntimeDep, source: ScimSource) -> Response:
    _existing(await scim_store.get(rt, source, user_id))
    body = await read_json(request, rt.settings.max_body_bytes)

    def change(before: Shadow | None) -> tuple[dict[str, Any], bool] | None:
        new = patch(_existing(before).resource, body)
        return None if new == _existing(before).resource else (new, False)

    return await _changed(request, rt, source, user_id, change)


async def _changed(
    request: Request,
    rt: RuntimeDep,
    source: Source,
    user_id: str,
    change: Callable[[Shadow | None], tuple[dict[str, Any], bool] | None],
) -> Response:
    preview = change(await scim_store.get(rt, source, user_id))
    if preview is not None:
        await _unique(rt, source, str(preview[0]["userName"]), user_id)
    shadow = await scim_store.write(rt, source, user_id, change)
    return scim_response(render(request, _existing(shadow)))


@router.delete(
    "/Users/{user_id}",
    status_code=204,
    summary="Delete a SCIM user (starts a leaver process: user.terminated)",
    response_class=Response,
    responses={204: {"description": "Deleted"}, **scim_errors(401, 404, 503)},
)
async def delete_user(user_id: str, rt: RuntimeDep, source: ScimSource) -> Response:
    await scim_store.write(rt, source, user_id, lambda before: (_existing(before).resource, True))
    return Response(status_code=204)


async def not_offered(rest: str, source: ScimSource) -> Response:
    raise ScimError(404, "leaver offers only /Users, /ServiceProviderConfig, /ResourceTypes and /Schemas")


class _AnyPath(Convertor[str]):
    """Like `path`, newlines included, so that no request under /scim/v2 escapes a SCIM answer."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("scim_any", _AnyPath())
for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/{rest:scim_any}",
        not_offered,
        methods=[_method],
        name=f"scim_not_offered_{_method.lower()}",
        operation_id=f"scim_not_offered_{_method.lower()}",
        summary="Anything else under /scim/v2 (Groups, Bulk, Me): not offered",
        responses={404: scim_errors(404)[404], **scim_errors(401)},
    )

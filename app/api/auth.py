"""Who is asking: a bearer token (or the same token as an HTTP Basic password, for browsers), or
the console's session cookie. Readers read; operators act. Webhook secrets grant nothing here, and
ops tokens pass no webhook.

A request authenticated by cookie is a browser's ambient credential, so every state change it asks
for must come from our own origin (the `Origin`, else `Referer`, header names this host), and the
cookie itself is `SameSite=Strict`: another site cannot trigger an action.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import RuntimeDep, ServingDep
from app.problems import Problem
from app.runtime import Runtime
from app.store.operators import Operator, operator_for_session, operator_for_token

SESSION_COOKIE = "leaver_session"
#: The name the environment's LEAVER_OPS_TOKEN signs in as (it has the operator role).
ENV_TOKEN_NAME = "ops-token"
DEMO_VISITOR = Operator("demo-visitor", "reader")

#: Declares the token in the OpenAPI document; `identify` does the check.
ops_token = HTTPBearer(auto_error=False, scheme_name="opsToken", description="an ops token (`leaver tokens create`)")
Offered = Annotated[HTTPAuthorizationCredentials | None, Depends(ops_token)]


def _offered_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            return base64.b64decode(value).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


async def operator_for_secret(rt: Runtime, secret: str) -> tuple[Operator, int | None] | None:
    """The operator a token belongs to: LEAVER_OPS_TOKEN, or a named token from the database."""
    expected = rt.settings.ops_token.get_secret_value() if rt.settings.ops_token else None
    if expected and hmac.compare_digest(secret.encode(), expected.encode()):
        return Operator(ENV_TOKEN_NAME, "operator"), None
    async with rt.sessions() as session:
        return await operator_for_token(session, secret)


async def identify(request: Request, rt: Runtime) -> Operator | None:
    offered = _offered_token(request)
    if offered:
        found = await operator_for_secret(rt, offered)
        return found[0] if found else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        async with rt.sessions() as session:
            return await operator_for_session(session, cookie)
    return None


def _unauthorized() -> Problem:
    return Problem(
        401,
        "this endpoint needs an ops token (Authorization: Bearer <token>) or a console sign-in",
        headers={"WWW-Authenticate": 'Bearer realm="leaver", Basic realm="leaver"'},
    )


def same_origin(request: Request) -> bool:
    """The request comes from a page of this very host (checked for cookie-borne state changes)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


async def reader(request: Request, rt: RuntimeDep, serving: ServingDep, _: Offered) -> Operator:
    """Reads need a reader or operator, except in the embedded demo where they are open."""
    who = await identify(request, rt)
    if who is not None:
        return who
    if serving.open_reads:
        return DEMO_VISITOR
    raise _unauthorized()


async def operator(request: Request, rt: RuntimeDep, _: Offered) -> Operator:
    """Actions need the operator role, and from a browser, our own origin."""
    who = await identify(request, rt)
    if who is None:
        raise _unauthorized()
    if not who.can_act:
        raise Problem(403, f"{who.name} is a reader; acting needs an operator token")
    if who.by_cookie and not same_origin(request):
        raise Problem(403, "cross-site request refused: actions must come from this site's own pages")
    return who


Reader = Annotated[Operator, Depends(reader)]
Acting = Annotated[Operator, Depends(operator)]

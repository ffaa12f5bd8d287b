"""Bearer (or HTTP Basic password) token checks for the status and ops endpoints."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import RuntimeDep, ServingDep
from app.problems import Problem
from app.runtime import Runtime


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


def check_token(request: Request, rt: Runtime) -> None:
    """Raise 401 unless the request carries the ops token."""
    settings = rt.settings
    expected = settings.ops_token.get_secret_value() if settings.ops_token else None
    offered = _offered_token(request)
    if not expected or not offered or not hmac.compare_digest(offered.encode(), expected.encode()):
        raise Problem(
            401,
            "this endpoint needs the ops token (Authorization: Bearer <LEAVER_OPS_TOKEN>)",
            headers={"WWW-Authenticate": 'Bearer realm="leaver", Basic realm="leaver"'},
        )


#: Declares the ops token in the OpenAPI document; the check itself is `check_token` (which also
#: takes the token as an HTTP Basic password, for browsers).
ops_token = HTTPBearer(auto_error=False, scheme_name="opsToken", description="the ops token (LEAVER_OPS_TOKEN)")
Offered = Annotated[HTTPAuthorizationCredentials | None, Depends(ops_token)]


def reader(request: Request, rt: RuntimeDep, serving: ServingDep, _: Offered) -> None:
    """Reads need the ops token, except in the embedded demo."""
    if not serving.open_reads:
        check_token(request, rt)


def operator(request: Request, rt: RuntimeDep, _: Offered) -> None:
    check_token(request, rt)

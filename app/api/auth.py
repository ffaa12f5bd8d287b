"""Bearer (or HTTP Basic password) token checks for the status and ops endpoints."""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import Request

from app.api.problems import Problem


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


def check_token(request: Request, *, open_reads: bool = False) -> None:
    """Raise 401 unless the request carries the ops token (reads may be open in the demo)."""
    settings = request.app.state.runtime.settings
    if open_reads and request.app.state.open_reads:
        return
    expected = settings.ops_token.get_secret_value() if settings.ops_token else None
    offered = _offered_token(request)
    if not expected or not offered or not hmac.compare_digest(offered.encode(), expected.encode()):
        raise Problem(
            401,
            "this endpoint needs the ops token (Authorization: Bearer <LEAVER_OPS_TOKEN>)",
            headers={"WWW-Authenticate": 'Bearer realm="leaver", Basic realm="leaver"'},
        )


def reader(request: Request) -> None:
    check_token(request, open_reads=True)


def operator(request: Request) -> None:
    check_token(request)

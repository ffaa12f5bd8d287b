"""NetIQ IG's wire: constants of the API, the Fault error body, query parameters and paging, the
OSP token shape and form parsing, and the removals a submit body carries."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from app.simulator.base import ErrorShape, LogEntry, Paging, SimError, Submission, int_param

SYSTEM = "netiq-ig"
CLIENT_ID = "iac"
CLIENT_SECRET = "demo-iac-secret"
SERVICE_USER = "svc-leaver"
SERVICE_PASSWORD = "demo-svc-password"
#: Signs in fine but holds no IG authorization role: every API call answers 403.
NO_RIGHTS_USER = "svc-norights"
OSP = "/osp/a/idm/auth/oauth2"
MAX_SIZE = 1000
BIRTHRIGHT_ROLE = "All Employees"
#: Adapter options that make it ask for pages of 3 (used by the shared contract suite).
CONTRACT_SMALL_PAGES = {"page_size": 3}

#: RequestItem.requestType enum of the 4.2 spec.
REQUEST_TYPES = frozenset(
    {
        "ADD_USER_TO_ACCOUNT",
        "ADD_PERMISSION_TO_USER",
        "ADD_APPLICATION_TO_USER",
        "ADD_TECH_ROLE_TO_USER",
        "ADD_BUSINESS_ROLE_MEMBERSHIP",
        "REMOVE_PERMISSION_ASSIGNMENT",
        "REMOVE_ACCOUNT_PERMISSION",
        "REMOVE_ACCOUNT_ASSIGNMENT",
        "REMOVE_ACCOUNT",
        "REMOVE_APPLICATION_FROM_USER",
        "REMOVE_TECH_ROLE_ASSIGNMENT",
        "REMOVE_BUSINESS_ROLE_MEMBERSHIP",
        "REMOVE_BUS_ROLE_ASSIGNMENT",
        "REMOVE_BUS_ROLE_AUTHS",
        "MODIFY_PERMISSION_ASSIGNMENT",
        "MODIFY_ACCOUNT_ASSIGNMENT",
        "MODIFY_TECH_ROLE_ASSIGNMENT",
        "MODIFY_ACCOUNT",
        "MODIFY_USER_PROFILE",
        "MODIFY_USER_SUPERVISOR",
        "MODIFY_BUS_ROLE_DEFN",
        "MODIFY_TECH_ROLE_DEFN",
        "DATA_VIOLATION_USER",
        "DATA_VIOLATION_PERMISSION",
        "DATA_VIOLATION_ACCOUNT",
        "CERTIFICATION_POLICY_VIOLATION",
    }
)
BR_ONLY_4X = frozenset({"ADD_BUSINESS_ROLE_MEMBERSHIP", "REMOVE_BUSINESS_ROLE_MEMBERSHIP"})
#: Removal kinds the simulator fulfils; other known types are valid but refused at start.
REMOVALS = {
    "REMOVE_PERMISSION_ASSIGNMENT": "perm",
    "REMOVE_ACCOUNT_PERMISSION": "perm",
    "REMOVE_TECH_ROLE_ASSIGNMENT": "role",
    "REMOVE_BUSINESS_ROLE_MEMBERSHIP": "brole",
}
FAIL_STATUSES = ("ERROR", "REFUSED", "TIMED_OUT")
APP_TYPES = {"Active Directory": "ENTERPRISE", "Exchange Online": "IDMPROV"}


# ---------------------------------------------------------------- errors


def fault_body(status: int, text: str | None = None, subcode: str | None = None) -> dict[str, Any]:
    """The IG Fault envelope: `Code.Value` is Sender for client faults, Receiver for server faults."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    default_sub = {401: "RestApiUnAuthenticated", 403: "RestApiUnAuthorized", 404: "NotFound"}.get(
        status, "InternalError" if status >= 500 else "InvalidRequest"
    )
    return {
        "Fault": {
            "Code": {"Value": "Receiver" if status >= 500 else "Sender", "Subcode": {"Value": subcode or default_sub}},
            "Reason": {"Text": text or phrase},
        }
    }


class IgFault(SimError):
    """An error the API answers with an IG Fault body (a 401 also challenges for a bearer)."""

    def __init__(self, status: int, subcode: str, text: str) -> None:
        super().__init__(status, text, {"WWW-Authenticate": "Bearer"} if status == 401 else None)
        self.subcode = subcode
        self.text = text

    def render(self, shape: ErrorShape) -> Any:
        return fault_body(self.status, self.text, self.subcode)


def invalid_parameter(text: str) -> IgFault:
    return IgFault(400, "InvalidParameter", text)


def malformed_call(_: str) -> IgFault:
    """What IG answers a parameter of the wrong type (a path ID that is not a number)."""
    return invalid_parameter("Invalid request parameters")


# ---------------------------------------------------------------- query parameters

#: `indexFrom` and `size`; a size above 1000 is refused, an absent one means an empty page.
PAGING = Paging("indexFrom", "size", default=0, maximum=MAX_SIZE, refuse=invalid_parameter)


def int_arg(q: Mapping[str, str], name: str, default: int) -> int:
    return int_param(q, name, default, invalid_parameter)


def bool_arg(q: Mapping[str, str], name: str, default: bool) -> bool:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise invalid_parameter(f"Parameter {name} must be true or false, got {raw!r}")
    return raw.lower() == "true"


def envelope(
    q: Mapping[str, str], key: str, rows: list[Any], cap: int, *, default: int = 0, window: bool = True
) -> dict[str, Any]:
    """One page in IG's envelope: `arraySize`, `indexFrom` and `size` (unless `window` is off, as
    for the data API), the rows under `key`, `totalSearch` only with showCt=true."""
    page = PAGING.page(rows, q, cap, default=default)
    body: dict[str, Any] = {"arraySize": len(page.rows)}
    if window:
        body.update(indexFrom=page.offset, size=page.size)
    body[key] = page.rows
    if bool_arg(q, "showCt", False):
        body["totalSearch"] = page.total
    return body


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise IgFault(400, "InvalidRequest", "Request body is not valid JSON") from None


# ---------------------------------------------------------------- OSP


def jwt_like(claims: Mapping[str, Any]) -> str:
    """An opaque token shaped like the JWTs OSP issues (nobody verifies the signature)."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"kid": "4", "alg": "RS256"}).encode())
    return f"{header}.{b64(json.dumps(dict(claims)).encode())}.{b64(secrets.token_bytes(32))}"


def form_fields(raw: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return urllib.parse.unquote(user), urllib.parse.unquote(password)


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={"Cache-Control": "no-store"}
    )


# ---------------------------------------------------------------- what a submit carried


def submissions(entry: LogEntry) -> list[Submission]:
    """The removals one accepted `POST /request/request` carried; leaver's marker
    `<key>:<plan item>` opens each item's reason, and a dynamic permission is `<perm>:<instanceGuid>`."""
    body = entry.body if isinstance(entry.body, dict) else {}
    out = []
    for raw in body.get("requestItems") or []:
        if not isinstance(raw, dict):
            continue
        marker = str(raw.get("reason") or "").split(" ", 1)[0]
        key, _, plan_item = marker.rpartition(":")
        item, guid = str(raw.get("requestItem")), raw.get("instanceGuid")
        out.append(
            Submission(
                entry.at,
                str(raw.get("recipient")),
                f"{item}:{guid}" if guid else item,
                key or None,
                int(plan_item) if plan_item.isdigit() else None,
            )
        )
    return out

"""Reading a sender's body safely, for every intake format: the raw bytes under a size limit, then
JSON that a leaver event may carry (no duplicate keys, no NaN, bounded depth, no control
characters). Each format turns these errors into its own answer, so they name no HTTP status."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

MAX_DEPTH = 32
#: C0 control characters other than tab, newline and carriage return (NUL breaks PostgreSQL text).
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r"}


class BodyTooLarge(Exception):
    """The body is over the limit; it was not read to the end."""


class BodyError(ValueError):
    """The body is not JSON an event may carry; the message says why without echoing it."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def loads_strict(body: bytes | str) -> Any:
    """Parse JSON, refusing what JSON allows but an event must not carry."""
    try:
        data: Any = json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except BodyError:
        raise
    except RecursionError:
        raise BodyError(f"body nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise BodyError("body is not valid JSON") from None
    problem = hostile(data)
    if problem:
        raise BodyError(problem)
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate keys: with "last one wins", `{"type": "user.terminated", "type":
    "user.enabled"}` would silently become a rehire."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise BodyError(f"duplicate key {key!r} in the body")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number")


def hostile(value: Any, depth: int = 0) -> str | None:
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
    return next((p for p in (hostile(v, depth + 1) for v in items) if p), None)

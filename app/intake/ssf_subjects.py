"""RFC 9493 subject identifiers (and SSF's `complex`) flattened into one view of the user's
identifiers, which a source's `user` mapping then reads (`$.email`, `$.sub`, `$.opaque`, ...)."""

from __future__ import annotations

from typing import Any

#: format -> the members it carries (and the name each gets in the view).
MEMBERS: dict[str, dict[str, str]] = {
    "email": {"email": "email"},
    "iss_sub": {"iss": "iss", "sub": "sub"},
    "opaque": {"id": "opaque"},
    "account": {"uri": "account"},
    "phone_number": {"phone_number": "phone_number"},
    "did": {"url": "did"},
    "uri": {"uri": "uri"},
}
#: Pre-RFC spellings still sent by older transmitters (`"subject_type": "iss-sub"`).
ALIASES = {"iss-sub": "iss_sub", "phone": "phone_number"}
MAX_ALIASES = 20


class SubjectError(ValueError):
    """A subject leaver cannot read; the message names the format, never the values."""


def subject_view(subject: Any, depth: int = 0) -> dict[str, str]:
    """`{"email": ..., "iss": ..., "sub": ..., "opaque": ..., "account": ...}` from a subject."""
    if not isinstance(subject, dict):
        raise SubjectError("the subject must be an object")
    fmt = subject.get("format", subject.get("subject_type"))
    fmt = ALIASES.get(fmt, fmt) if isinstance(fmt, str) else fmt
    if fmt == "aliases" and depth <= 1:
        return _aliases(subject.get("identifiers"), depth + 1)
    if fmt == "complex" and depth == 0:
        user = subject.get("user")
        if user is None:
            raise SubjectError("a complex subject without a user member")
        return subject_view(user, depth + 1)
    if fmt not in MEMBERS:
        raise SubjectError(f"unsupported subject format {str(fmt)[:40]!r}")
    view: dict[str, str] = {}
    for member, name in MEMBERS[str(fmt)].items():
        value = subject.get(member)
        if not isinstance(value, str) or not value or len(value) > 1024:
            raise SubjectError(f"format {fmt}: {member} must be a non-empty string")
        view[name] = value
    if fmt == "account" and view["account"].startswith("acct:"):
        view["account"] = view["account"][5:]
    return view


def _aliases(identifiers: Any, depth: int) -> dict[str, str]:
    if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= MAX_ALIASES:
        raise SubjectError(f"aliases needs 1 to {MAX_ALIASES} identifiers")
    view: dict[str, str] = {}
    for identifier in identifiers:
        for key, value in subject_view(identifier, depth=max(depth, 2)).items():
            view.setdefault(key, value)
    return view

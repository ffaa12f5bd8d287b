"""Field mapping from what a sender says to the event's fields: a small JSONPath-like selector
(`$.user.login`, `$['Login Disabled'][0]`) and templates (`cn={$.CN|lower},ou=users,o=acme`).

Kept deliberately small: operators write these in settings, and every one is compiled at start,
so a typo stops the start instead of dropping a leaver at 3 a.m."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_SEGMENT = re.compile(r"""\.([A-Za-z_@$][\w@$-]*)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")
_PLACEHOLDER = re.compile(r"\{(\$[^{}]*)\}")
FILTERS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "local": lambda v: v.split("@", 1)[0],  # jdoe@acme.com -> jdoe
    "trim": str.strip,
}


class MappingError(ValueError):
    """A field mapping that cannot be compiled; the message quotes it."""


@dataclass(frozen=True)
class Path:
    """`$` followed by `.name`, `[0]`, `['any name']` segments."""

    segments: tuple[str | int, ...]
    filters: tuple[Callable[[str], str], ...] = ()

    def get(self, data: Any) -> Any:
        """The value at this path, or None where any step is missing."""
        for seg in self.segments:
            if isinstance(seg, int):
                if not isinstance(data, list) or seg >= len(data):
                    return None
                data = data[seg]
            elif isinstance(data, Mapping) and seg in data:
                data = data[seg]
            else:
                return None
        return data

    def text(self, data: Any) -> str | None:
        """The value as text (the first one of a list, as NetIQ's `["jdoe"]`), filtered; None if absent."""
        value = self.get(data)
        if isinstance(value, list):
            value = next((v for v in value if v is not None), None)
        if value is None or isinstance(value, dict | list):
            return None
        text = str(value).lower() if isinstance(value, bool) else str(value)
        for f in self.filters:
            text = f(text)
        return text or None


def compile_path(spec: str) -> Path:
    """Compile `$.a.b[0]|lower`."""
    expr, *names = [part.strip() for part in spec.split("|")]
    if not expr.startswith("$"):
        raise MappingError(f"{spec!r}: a path starts with '$'")
    segments: list[str | int] = []
    pos = 1
    while pos < len(expr):
        m = _SEGMENT.match(expr, pos)
        if not m:
            raise MappingError(f"{spec!r}: cannot read the path at {expr[pos:]!r}")
        name, index, single, double = m.groups()
        segments.append(int(index) if index is not None else next(s for s in (name, single, double) if s is not None))
        pos = m.end()
    unknown = [n for n in names if n not in FILTERS]
    if unknown:
        raise MappingError(f"{spec!r}: unknown filter {unknown[0]!r}; known: {', '.join(FILTERS)}")
    return Path(tuple(segments), tuple(FILTERS[n] for n in names))


@dataclass(frozen=True)
class Expr:
    """A path, or a template of literal text and `{path}` placeholders."""

    parts: tuple[str | Path, ...]

    def render(self, data: Any) -> str | None:
        """The text, or None if any placeholder is missing."""
        out: list[str] = []
        for part in self.parts:
            value = part if isinstance(part, str) else part.text(data)
            if value is None:
                return None
            out.append(value)
        return "".join(out) or None


def compile_expr(spec: str) -> Expr:
    if spec.startswith("$"):
        return Expr((compile_path(spec),))
    parts: list[str | Path] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(spec):
        if m.start() > pos:
            parts.append(spec[pos : m.start()])
        parts.append(compile_path(m.group(1)))
        pos = m.end()
    if pos < len(spec):
        parts.append(spec[pos:])
    if not any(isinstance(p, Path) for p in parts):
        raise MappingError(f"{spec!r}: neither a path ('$.a.b') nor a template with a '{{$.path}}'")
    return Expr(tuple(parts))


@dataclass(frozen=True)
class Choice:
    """Alternatives tried in order: the first that gives a value wins."""

    options: tuple[Expr, ...]

    def render(self, data: Any) -> str | None:
        return next((v for v in (e.render(data) for e in self.options) if v), None)


def compile_choice(spec: str | Sequence[str]) -> Choice:
    specs = [spec] if isinstance(spec, str) else list(spec)
    if not specs:
        raise MappingError("an empty list of paths")
    return Choice(tuple(compile_expr(s) for s in specs))


#: The event user fields a mapping may fill (`ids.<target>` aside).
USER_FIELDS = ("dn", "username", "email", "employee_id")


def compile_user_map(spec: Mapping[str, str | Sequence[str]], targets: Sequence[str]) -> dict[str, Choice]:
    """`{event user field: path(s)}` checked against the fields and the configured targets."""
    compiled: dict[str, Choice] = {}
    for key, value in spec.items():
        if key.startswith("ids."):
            if key[4:] not in targets:
                raise MappingError(f"{key}: no IGA target named {key[4:]!r}; targets: {', '.join(targets) or 'none'}")
        elif key not in USER_FIELDS:
            raise MappingError(f"{key}: not a user field; use {', '.join(USER_FIELDS)} or ids.<target>")
        try:
            compiled[key] = compile_choice(value)
        except MappingError as exc:
            raise MappingError(f"{key}: {exc}") from None
    return compiled


def map_user(mapping: Mapping[str, Choice], view: Any) -> dict[str, Any]:
    """The event's `user` object built from the sender's identifiers (`view`)."""
    user: dict[str, Any] = {}
    ids: dict[str, str] = {}
    for key, choice in mapping.items():
        value = choice.render(view)
        if not value:
            continue
        if key.startswith("ids."):
            ids[key[4:]] = value
        else:
            user[key] = value
    if ids:
        user["ids"] = ids
    return user

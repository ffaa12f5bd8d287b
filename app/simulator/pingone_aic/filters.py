"""The two filter languages of the tenant, over plain JSON documents: IDM's CREST `_queryFilter`
(`userName eq "jdoe" and (mail co "x" or true)`) and IGA's `targetFilter` trees
(`{"operator": "AND", "operand": [{"operator": "EQUALS", "operand": {"targetName": ..., ...}}]}`),
plus `_fields` projection. A malformed filter raises `FilterError` (the API answers 400)."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Doc = Mapping[str, Any]
Predicate = Callable[[Doc], bool]
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>[()!])|(?P<word>[^\s()"!]+))')
_COMPARE = ("eq", "co", "sw", "gt", "ge", "lt", "le")
_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


class FilterError(ValueError):
    """The filter cannot be parsed or evaluated."""


def values(doc: Any, path: str) -> list[Any]:
    """Every value at a dotted path (`/`-separated for CREST); lists are looked through."""
    parts = path.split("/") if "/" in path and "." not in path else path.split(".")
    current = [doc]
    for part in (p for p in parts if p):
        current = [node[part] for node in current if isinstance(node, Mapping) and part in node]
        current = [v for value in current for v in (value if isinstance(value, list) else [value])]
    return current


def _compare(op: str, have: Any, want: Any) -> bool:
    if isinstance(have, str) and isinstance(want, str):
        have, want = have.casefold(), want.casefold()  # DS matching rules ignore case
        if op == "co":
            return want in have
        if op == "sw":
            return bool(have.startswith(want))
    if op == "eq":
        return bool(have == want)
    if op in ("co", "sw"):
        return False
    try:
        return bool(_ORDER[op](have, want))
    except TypeError:
        return False


class _Crest:
    """Recursive descent over the tokens of one `_queryFilter`."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text.rstrip()):
            found = _TOKEN.match(text, pos)
            if found is None or found.end() == pos:
                raise FilterError(f"Invalid filter: unexpected character at {pos}")
            kind = found.lastgroup or "word"
            self.tokens.append((kind, found.group(kind)))
            pos = found.end()
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise FilterError("Invalid filter: unexpected end")
        self.at += 1
        return self.tokens[self.at - 1]

    def parse(self) -> Predicate:
        found = self.any_of()
        if self.at != len(self.tokens):
            raise FilterError(f"Invalid filter: unexpected {self.peek()!r}")
        return found

    def any_of(self) -> Predicate:
        parts = [self.all_of()]
        while self.peek() == "or":
            self.take()
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else lambda d: any(p(d) for p in parts)

    def all_of(self) -> Predicate:
        parts = [self.unary()]
        while self.peek() == "and":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else lambda d: all(p(d) for p in parts)

    def unary(self) -> Predicate:
        if self.peek() == "!":
            self.take()
            inner = self.unary()
            return lambda d: not inner(d)
        kind, token = self.take()
        if token == "(":
            inner = self.any_of()
            if self.take()[1] != ")":
                raise FilterError("Invalid filter: missing ')'")
            return inner
        if kind == "word" and token in ("true", "false"):
            return (lambda d: True) if token == "true" else (lambda d: False)
        if kind != "word":
            raise FilterError(f"Invalid filter: expected a field, got {token!r}")
        field = token.removeprefix("/")
        op = self.take()[1]
        if op == "pr":
            return lambda d: bool(values(d, field))
        if op not in _COMPARE:
            raise FilterError(f"Invalid filter: unknown operator {op!r}")
        want = _literal(self.take())
        return lambda d: any(_compare(op, v, want) for v in values(d, field))


def _literal(token: tuple[str, str]) -> Any:
    kind, text = token
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise FilterError(f"Invalid filter: bad value {text!r}") from None


def crest_filter(text: str) -> Predicate:
    """`_queryFilter` as a predicate (`eq co sw gt ge lt le pr`, `and or !`, parentheses, true)."""
    return _Crest(text).parse()


def target_filter(tree: Any, ignored: Iterable[str] = ()) -> Predicate:
    """An IGA `targetFilter` as a predicate; terms on an `ignored` targetName always match."""
    skip = frozenset(ignored)
    if not isinstance(tree, Mapping):
        raise FilterError("targetFilter must be an object")
    op, operand = str(tree.get("operator", "")).upper(), tree.get("operand")
    if op in ("AND", "OR"):
        if not isinstance(operand, list) or not operand:
            raise FilterError(f"{op} needs a non-empty operand list")
        parts = [target_filter(o, skip) for o in operand]
        return (lambda d: all(p(d) for p in parts)) if op == "AND" else (lambda d: any(p(d) for p in parts))
    if op == "NOT":
        inner = target_filter(operand[0] if isinstance(operand, list) and operand else operand, skip)
        return lambda d: not inner(d)
    if op in ("EQUALS", "CONTAINS", "STARTS_WITH"):
        if not isinstance(operand, Mapping) or not isinstance(operand.get("targetName"), str):
            raise FilterError(f"{op} needs an operand with targetName and targetValue")
        name, want = str(operand["targetName"]), operand.get("targetValue")
        if name in skip:
            return lambda d: True
        how = {"EQUALS": "eq", "CONTAINS": "co", "STARTS_WITH": "sw"}[op]
        return lambda d: any(_compare(how, v, want) for v in values(d, name))
    raise FilterError(f"unknown operator {op!r}")


def project(doc: Mapping[str, Any], fields: str | None) -> dict[str, Any]:
    """`_fields=a,b.c`: only those top-level keys (and nested paths); all of `doc` without it."""
    if not fields:
        return dict(doc)
    out: dict[str, Any] = {}
    for field in [f.strip() for f in fields.split(",") if f.strip()]:
        head, _, rest = field.partition(".")
        if head not in doc:
            continue
        if not rest or not isinstance(doc[head], Mapping):
            out[head] = doc[head]
            continue
        nested = project(doc[head], rest)
        if nested:
            previous = out.get(head)
            out[head] = {**(previous if isinstance(previous, dict) else {}), **nested}
    return out

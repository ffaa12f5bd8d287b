"""ISC's two query languages, as the simulator evaluates them:

- collection `filters` (`field op value and ...`) and `sorters` of the standard collection
  parameters: strings in double quotes, lists as ("a","b"), and/or/not, parentheses;
- search query strings: `field:"phrase"`, `field:word*`, `@accounts(field:"v")`, AND/OR/NOT,
  parentheses, `*`. Text fields are analysed (tokenised, case-insensitive) as in Elasticsearch,
  so a phrase matches inside longer values: the client must keep only exact matches.

An unsupported field, operator or syntax is a 400, as in ISC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from app.simulator.sailpoint_isc.wire import bad, parse_time

_FILTER_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|(?P<word>[^\s(),"]+))')
Predicate = Callable[[Mapping[str, Any]], bool]


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def parse_filter(text: str, allowed: Mapping[str, set[str]]) -> Predicate:
    """Compile a filter expression; unsupported fields or operators are a 400, as in ISC."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _FILTER_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad(f"invalid filter near: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    at = 0

    def peek() -> tuple[str, str] | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal at
        if at >= len(tokens):
            raise bad("incomplete filter expression")
        at += 1
        return tokens[at - 1]

    def value() -> Any:
        kind, tok = take()
        if kind == "str":
            return _unquote(tok)
        if kind == "lp":
            items = []
            while True:
                k, t = take()
                if k != "str":
                    raise bad("a list in a filter holds quoted strings")
                items.append(_unquote(t))
                k, t = take()
                if k == "rp":
                    return items
                if k != "comma":
                    raise bad("expected ',' or ')' in a filter list")
        if kind == "word":
            return {"true": True, "false": False}.get(tok, tok)
        raise bad(f"unexpected {tok!r} in filter")

    def comparison() -> Predicate:
        kind, name = take()
        if kind == "lp":
            inner = disjunction()
            if take()[0] != "rp":
                raise bad("missing ')' in filter")
            return inner
        if kind == "word" and name == "not":
            negated = comparison()
            return lambda row: not negated(row)
        if kind != "word":
            raise bad(f"expected a field name, got {name!r}")
        op = take()[1]
        if name not in allowed:
            raise bad(f"filtering is not supported for field '{name}'")
        if op not in allowed[name]:
            raise bad(f"operator '{op}' is not supported for field '{name}'")
        if op == "isnull":
            return lambda row: row.get(name) is None
        operand = value()
        if op == "in" and not isinstance(operand, list):
            raise bad('\'in\' needs a list such as ("a","b")')
        return _compare(name, op, operand)

    def conjunction() -> Predicate:
        parts = [comparison()]
        while (nxt := peek()) and nxt == ("word", "and"):
            take()
            parts.append(comparison())
        return lambda row: all(p(row) for p in parts)

    def disjunction() -> Predicate:
        parts = [conjunction()]
        while (nxt := peek()) and nxt == ("word", "or"):
            take()
            parts.append(conjunction())
        return lambda row: any(p(row) for p in parts)

    predicate = disjunction()
    if at != len(tokens):
        raise bad(f"unexpected {tokens[at][1]!r} in filter")
    return predicate


def _comparable(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    return value


def _compare(name: str, op: str, operand: Any) -> Predicate:
    def operand_for(actual: Any) -> Any:
        if isinstance(actual, float) and isinstance(operand, str):  # a timestamp field
            try:
                return parse_time(operand)
            except ValueError:
                raise bad(f"'{operand}' is not an ISO-8601 date-time") from None
        return _comparable(operand)

    def check(row: Mapping[str, Any]) -> bool:
        actual = row.get(name)
        if actual is None:
            return op == "ne"
        if op == "in":
            return _comparable(actual) in {_comparable(v) for v in operand}
        want, have = operand_for(actual), _comparable(actual)
        if op == "sw":
            return isinstance(have, str) and have.startswith(str(want))
        if op == "co":
            return isinstance(have, str) and str(want) in have
        result: bool = {
            "eq": lambda: have == want,
            "ne": lambda: have != want,
            "gt": lambda: have > want,
            "ge": lambda: have >= want,
            "lt": lambda: have < want,
            "le": lambda: have <= want,
        }[op]()
        return result

    return check


def sort_rows(rows: list[dict[str, Any]], sorters: str | None, allowed: set[str]) -> list[dict[str, Any]]:
    if not sorters:
        return rows
    keys = [s.strip() for s in sorters.split(",") if s.strip()]
    for key in reversed(keys):
        name = key.lstrip("+-")
        if name not in allowed:
            raise bad(f"sorting is not supported for field '{name}'")
        rows = sorted(
            rows, key=lambda r: (r.get(name) is None, _comparable(r.get(name) or "")), reverse=key.startswith("-")
        )
    return rows


_QUERY_TOKEN = re.compile(
    r"\s*(?:(?P<nested>@(?P<nname>\w+)\()|(?P<lp>\()|(?P<rp>\))|(?P<op>AND|OR|NOT)(?=[\s(]|$)"
    r'|(?P<term>(?P<field>[\w.]+):(?P<value>"(?:[^"\\]|\\.)*"|[^\s()"]+))|(?P<all>\*(?=[\s)]|$))'
    r'|(?P<bare>"(?:[^"\\]|\\.)*"|[^\s()"]+))'
)
DEFAULT_FIELDS = ("name", "displayName", "firstName", "lastName", "email", "employeeNumber")
EXACT_FIELDS = frozenset({"id", "identityId", "source.id"})


def analyse(text: str) -> list[str]:
    return re.findall(r"[0-9a-z]+", text.casefold())


def field_values(doc: Any, path: str) -> list[Any]:
    current: list[Any] = [doc]
    for part in path.split("."):
        nxt: list[Any] = []
        for node in current:
            if isinstance(node, dict) and part in node:
                value = node[part]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current


def _term_matches(values: Iterable[Any], raw: str, exact: bool) -> bool:
    quoted = raw.startswith('"')
    text = _unquote(raw) if quoted else raw
    strings = [str(v) for v in values if v is not None and not isinstance(v, (dict, list))]
    if exact:
        return any(s.casefold() == text.casefold() for s in strings)
    if not quoted and ("*" in text or "?" in text):
        pattern = re.compile(re.escape(text.casefold()).replace(r"\*", ".*").replace(r"\?", "."))
        return any(pattern.fullmatch(tok) for s in strings for tok in analyse(s))
    wanted = analyse(text)
    if not wanted:
        return False
    for s in strings:
        toks = analyse(s)
        if any(toks[i : i + len(wanted)] == wanted for i in range(len(toks) - len(wanted) + 1)):
            return True
    return False


def parse_query(text: str) -> Predicate:
    tokens: list[re.Match[str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _QUERY_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad(f"Unable to parse query near: {text[pos : pos + 20]!r}")
        tokens.append(m)
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    at = 0

    def peek() -> re.Match[str] | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> re.Match[str]:
        nonlocal at
        if at >= len(tokens):
            raise bad("Unable to parse query: incomplete expression")
        at += 1
        return tokens[at - 1]

    def close() -> None:
        if take().lastgroup != "rp":
            raise bad("Unable to parse query: missing ')'")

    def atom() -> Predicate:
        tok = take()
        kind = tok.lastgroup
        if kind == "op" and tok.group("op") == "NOT":
            inner = atom()
            return lambda doc: not inner(doc)
        if kind == "lp":
            inner = disjunction()
            close()
            return inner
        if kind == "nested":
            name = tok.group("nname")
            inner = disjunction()
            close()
            return lambda doc: any(inner(sub) for sub in field_values(doc, name) if isinstance(sub, dict))
        if kind == "all":
            return lambda doc: True
        if kind == "term":
            fname, raw = tok.group("field"), tok.group("value")
            exact = fname in EXACT_FIELDS
            return lambda doc: _term_matches(field_values(doc, fname), raw, exact)
        if kind == "bare":
            raw = tok.group("bare")
            return lambda doc: any(_term_matches(field_values(doc, f), raw, False) for f in DEFAULT_FIELDS)
        raise bad(f"Unable to parse query near {tok.group(0).strip()!r}")

    def conjunction() -> Predicate:
        parts = [atom()]
        while (
            (nxt := peek()) is not None
            and (nxt.lastgroup != "rp")
            and not (nxt.lastgroup == "op" and nxt.group("op") == "OR")
        ):
            if nxt.lastgroup == "op" and nxt.group("op") == "AND":
                take()
                parts.append(atom())
            else:  # adjacent terms: Elasticsearch's default operator is OR
                break
        return lambda doc: all(p(doc) for p in parts)

    def disjunction() -> Predicate:
        parts = [conjunction()]
        while (nxt := peek()) is not None and nxt.lastgroup != "rp":
            if nxt.lastgroup == "op" and nxt.group("op") == "OR":
                take()
            parts.append(conjunction())
        return lambda doc: any(p(doc) for p in parts)

    if not text:
        return lambda doc: True
    predicate = disjunction()
    if at != len(tokens):
        raise bad("Unable to parse query: unbalanced ')'")
    return predicate

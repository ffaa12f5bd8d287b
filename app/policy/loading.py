"""Reading a policy file, and how a mistake in it is reported.

Every error names the rule and the field, because an operator reading "Input should be 'remove'"
without knowing *where* has to bisect a file under pressure.
"""

from __future__ import annotations

import pathlib
from collections.abc import Hashable
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.policy.rules import DefaultRule, Match, Policy, Rule


class PolicyError(Exception):
    """The policy file cannot be used; the message says where and why, for the operator."""


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which plain YAML silently overwrites."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` may legitimately be overridden by the mapping's own keys
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_ALLOWED_KEYS: dict[str, list[str]] = {
    "policy": sorted(Policy.model_fields),
    "default": sorted(DefaultRule.model_fields),
    "rule": sorted(Rule.model_fields),
    "match": sorted(Match.model_fields),
}


def _rule_label(data: Any, index: int) -> str:
    """``rule 'mailbox-grace' (rules[1])``, or ``rules[1]`` when the rule has no usable name."""
    rules = data.get("rules") if isinstance(data, dict) else None
    name = None
    if isinstance(rules, list) and 0 <= index < len(rules) and isinstance(rules[index], dict):
        name = rules[index].get("name")
    if isinstance(name, str) and name:
        return f"rule {name!r} (rules[{index}])"
    return f"rules[{index}]"


def _path(parts: tuple[int | str, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: ErrorDetails, data: Any) -> str:
    """One pydantic error as ``<where>: <what>``, worded for someone editing the YAML."""
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "policy_duplicate" or not loc:
        return error["msg"]

    if loc[0] == "rules" and len(loc) >= 2 and isinstance(loc[1], int):
        where = _rule_label(data, loc[1])
        rest = loc[2:]
        where = f"{where}.{_path(rest)}" if rest else where
        owner = "match" if rest[:1] == ("match",) else "rule"
    else:
        where = _path(loc)
        owner = "default" if loc[0] == "default" else "policy"

    if kind == "extra_forbidden":
        return f"{where}: unknown key; allowed: {', '.join(_ALLOWED_KEYS[owner])}"
    if kind == "missing":
        if loc == ("default",):
            return "default: required — every policy needs one, e.g. {action: remove, when: effective, reason: ...}"
        return f"{where}: required"
    if kind.startswith("policy_"):
        return f"{where}: {error['msg']}"
    if kind == "literal_error" and loc == ("version",):
        return f"version: {value!r} is not supported; use version: 1"
    message = error["msg"]
    if isinstance(value, str | int | float | bool) or value is None:
        message = f"{value!r} — {message}"
    return f"{where}: {message}"


def _format_validation(exc: ValidationError, data: Any, source: str) -> str:
    problems = [_describe(error, data) for error in exc.errors(include_url=False)]
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(problems)} problems:\n" + "\n".join(f"  - {problem}" for problem in problems)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """YAML text to a validated Policy; every problem becomes one PolicyError naming its place."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PolicyError(f"{source}: YAML syntax error{where}: {problem}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy must be a YAML mapping with version, default and rules")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_validation(exc, data, source)) from None


def load_policy(path: pathlib.Path) -> Policy:
    """Read and validate a policy file; a missing or unreadable file is a PolicyError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such policy file") from None
    except IsADirectoryError:
        raise PolicyError(f"{path}: is a directory, not a policy file") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_policy(text, source=str(path))

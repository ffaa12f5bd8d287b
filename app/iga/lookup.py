"""How an adapter that searches by identifier resolves a person: the identifiers in the target's
`lookup_order`, the first that names exactly one user wins. One that names several is remembered:
it makes the person ambiguous only if no later identifier names exactly one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

Doc = TypeVar("Doc")


async def first_single(
    order: Iterable[str],
    value_of: Callable[[str], str | None],
    candidates: Callable[[str, str], Awaitable[Sequence[Doc]]],
) -> tuple[Doc | None, list[tuple[str, int]]]:
    """The one record the first decisive identifier names (or None), and each identifier that
    named several, with how many."""
    several: list[tuple[str, int]] = []
    for key in order:
        value = value_of(key)
        if not value:
            continue
        docs = await candidates(key, value)
        if len(docs) == 1:
            return docs[0], several
        if docs:
            several.append((key, len(docs)))
    return None, several

"""Offset paging as every simulator does it: the window (`offset`, a size capped by the configured
`page_size_max`) is cut here once; each system names its own parameters, bounds and error."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

#: Builds the system's "bad parameter" error (a 400 in its own body) from a message.
Refuse = Callable[[str], Exception]


def int_param(params: Mapping[str, str], name: str, default: int, refuse: Refuse) -> int:
    """A whole-number query parameter; `default` when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise refuse(f"'{name}' must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows, where it starts, the size it was cut to, and how many rows there were."""

    rows: list[T]
    offset: int
    size: int
    total: int


@dataclass(frozen=True)
class Paging:
    """One system's paging parameters: their names, the size when none is asked for, the largest
    size it accepts (larger is refused), and how it refuses."""

    offset: str
    limit: str
    default: int
    maximum: int
    refuse: Refuse

    def window(
        self, params: Mapping[str, str], cap: int, *, default: int | None = None, maximum: int | None = None
    ) -> tuple[int, int]:
        """(offset, size) asked for, validated; the size capped at `cap` (the configured page size)."""
        offset = int_param(params, self.offset, 0, self.refuse)
        size = int_param(params, self.limit, self.default if default is None else default, self.refuse)
        most = self.maximum if maximum is None else maximum
        if offset < 0:
            raise self.refuse(f"'{self.offset}' must not be negative")
        if size < 0 or size > most:
            raise self.refuse(f"'{self.limit}' must be between 0 and {most}, got {size}")
        return offset, min(size, cap)

    def page(
        self,
        rows: Sequence[T],
        params: Mapping[str, str],
        cap: int,
        *,
        default: int | None = None,
        maximum: int | None = None,
    ) -> Page[T]:
        offset, size = self.window(params, cap, default=default, maximum=maximum)
        return Page(list(rows[offset : offset + size]), offset, size, len(rows))

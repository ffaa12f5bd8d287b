"""The one interface every IGA adapter implements, and its errors classed by what the caller may do.

The pipeline only ever sees this interface and the domain types, so a new IGA system is one module that maps its wire
format onto them; nothing in the worker knows which system it talks to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from app.domain import AccessItem, IgaUser, RemovalRequest, RequestRef, RequestState, UserIdentifiers

if TYPE_CHECKING:
    from app.iga.http import IgaHttp


class IgaError(Exception):
    """Base for adapter errors. `retryable` tells the pipeline whether trying later can help."""

    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class IgaTransientError(IgaError):
    """Throttled, 5xx, timeout or connection error that outlasted the retry budget."""

    retryable = True


class IgaPermanentError(IgaError):
    """A 4xx the IGA will answer the same way every time (bad body, forbidden, unknown ID)."""


class IgaUncertainError(IgaTransientError):
    """A non-idempotent call may or may not have taken effect (timeout, 5xx, dropped connection).

    Never resend after this: look for the earlier request first (design: exactly-once keys)."""


class IgaNotSent(IgaError):
    """A write was not sent because the caller's time (its job lease) ran out first. Certain:
    the IGA never saw it. The worker stops the step; whoever holds the job next recovers."""


class UserNotFound(IgaPermanentError):
    pass


class AmbiguousUser(IgaPermanentError):
    pass


@runtime_checkable
class IgaClient(Protocol):
    """What the pipeline needs from an IGA. One instance per configured target."""

    system: str
    #: The shared HTTP layer the adapter sends through (the runtime may share its rate budget).
    http: IgaHttp

    #: The most items one removal request may carry, per item type; the pipeline batches by it.
    def batch_items(self, requests: Sequence[RemovalRequest]) -> list[list[RemovalRequest]]: ...

    async def find_user(self, ids: UserIdentifiers) -> IgaUser: ...

    async def list_access(self, user: IgaUser) -> list[AccessItem]: ...

    async def submit_removals(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """Submit one batch under correlation `key`. Raises IgaUncertainError when the outcome
        is unknown; returns one ref per item the IGA accepted or adopted as a duplicate."""
        ...

    async def find_existing(self, user: IgaUser, batch: Sequence[RemovalRequest], key: str) -> list[RequestRef]:
        """Refs of an earlier submission of this batch (found by `key`), empty if none."""
        ...

    async def get_requests(self, user: IgaUser, refs: Sequence[RequestRef]) -> dict[str, RequestState]:
        """Current state of each ref, keyed by `tracking_id`, in as few calls as the API allows."""
        ...

    async def cancel_request(self, user: IgaUser, ref: RequestRef, reason: str) -> bool:
        """Withdraw a submitted removal (rehire). False where the IGA no longer allows it."""
        ...

    async def aclose(self) -> None: ...

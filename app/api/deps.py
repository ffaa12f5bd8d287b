"""Typed dependencies every route declares, instead of reaching into `request.app.state`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.runtime import Runtime


@dataclass
class Serving:
    """How this app serves: set by the composition root, read by routes."""

    open_reads: bool = False  # status pages without a token (the embedded demo only)
    stopping: bool = False  # shutdown has begun: not ready any more


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def read_session(rt: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A session for reads. Writes open their own transaction in the route, so that the commit
    happens before the answer is sent."""
    async with rt.sessions() as session:
        yield session


ReadSession = Annotated[AsyncSession, Depends(read_session)]


def get_serving(request: Request) -> Serving:
    serving: Serving = request.app.state.serving
    return serving


ServingDep = Annotated[Serving, Depends(get_serving)]

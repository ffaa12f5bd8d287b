"""Every intake format besides the generic webhook, as one router for the composition root, and
what they need while the app runs: the sources checked at start (a bad one stops the start) and
the Entra workflow resumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter

from app.intake import entra, mapped, okta, scim, ssf
from app.intake.entra_resume import Resumer
from app.intake.sources import sources_of


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    sources = sources_of(app.state, app.state.runtime)
    resumer = Resumer(app.state.runtime, sources)
    app.state.entra_resumer = resumer
    stop = asyncio.Event()
    task = asyncio.create_task(resumer.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


router = APIRouter(lifespan=lifespan)
for _format in (ssf, okta, entra, mapped, scim):
    router.include_router(_format.router)

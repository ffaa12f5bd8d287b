"""One way every simulator answers an error: a handler raises `SimError`; the app renders it, a
framework error (unknown route, wrong method) or a malformed parameter in the system's own body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

#: (status, message or None) -> the system's JSON error body.
ErrorShape = Callable[[int, str | None], Any]


class SimError(Exception):
    """An error answer a handler raises; rendered in the system's error body by `install_error_handlers`.
    A system whose body holds more (a subcode) subclasses it and overrides `render`."""

    def __init__(self, status: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def render(self, shape: ErrorShape) -> Any:
        return shape(self.status, self.message)


def install_error_handlers(app: FastAPI, shape: ErrorShape, invalid: Callable[[str], SimError] | None = None) -> None:
    """Answer `SimError`s, framework errors (unknown route, wrong method) and malformed parameters
    (400; `invalid(message)` picks the error, by default the first problem pydantic found) in `shape`."""

    def answer(err: SimError) -> Response:
        return JSONResponse(err.render(shape), status_code=err.status, headers=err.headers or None)

    async def on_sim_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SimError)
        return answer(exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return answer(SimError(exc.status_code, None, exc.headers))

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = str(exc.errors()[0].get("msg", "invalid request")) if exc.errors() else "invalid request"
        return answer(invalid(message) if invalid else SimError(400, message))

    app.add_exception_handler(SimError, on_sim_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)

"""The one HTTP layer every IGA adapter goes through: auth, retries, pacing, timeouts.

Adapters describe *what* to call; this module decides *how often* and *how long*. It wraps
httpx behind a small surface so that swapping the HTTP client is a change to this file only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import stamina
import structlog
from aiolimiter import AsyncLimiter

from app.iga.base import IgaError, IgaNotSent, IgaPermanentError, IgaTransientError, IgaUncertainError
from app.metrics import IGA_CALLS
from app.settings import HttpSettings

log = structlog.get_logger(__name__)

ErrorText = Callable[[httpx.Response], str]

#: `time.monotonic()` by which a write must have been answered: the caller's lease ends then.
_write_deadline: ContextVar[float | None] = ContextVar("leaver_write_deadline", default=None)
#: A write is not started with less time than this left: it would only time out, uncertain.
MIN_WRITE_SECONDS = 0.5


@contextlib.contextmanager
def write_deadline(deadline: float) -> Iterator[None]:
    """Writes (non-idempotent calls) inside this block are sent only before `deadline`
    (`time.monotonic()`), each bounded to the time that remains; later ones raise IgaNotSent."""
    token = _write_deadline.set(deadline)
    try:
        yield
    finally:
        _write_deadline.reset(token)


class Pacer(Protocol):
    """Spaces a target's calls to its allowed rate; `wait` returns when the next call may go."""

    async def wait(self) -> None: ...


class LocalPacer:
    """The rate budget of one process: `rate` calls per second, bursts of up to one second's worth
    (at least one call, so a rate below 1/s works too)."""

    def __init__(self, rate: float) -> None:
        self._limiter = AsyncLimiter(max(rate, 1.0), max(1.0, 1.0 / rate))

    async def wait(self) -> None:
        await self._limiter.acquire()


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, retry budget and pacing for one IGA target. Defaults are conservative."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    attempts: int = 5
    retry_budget_seconds: float = 60.0
    wait_initial: float = 0.5
    wait_max: float = 30.0
    max_retry_after: float = 120.0
    requests_per_second: float = 5.0
    max_concurrency: int = 4

    @classmethod
    def of(cls, h: HttpSettings, *, requests_per_second: float = 5.0, max_concurrency: int = 4) -> HttpPolicy:
        """A target's `http` settings, with the system's own pace where the target sets none."""
        rate, parallel = h.requests_per_second or requests_per_second, h.max_concurrency or max_concurrency
        timeouts = (h.connect_timeout, h.read_timeout, h.attempts, h.retry_budget_seconds)
        return cls(*timeouts, requests_per_second=rate, max_concurrency=parallel)


class Auth(Protocol):
    """Puts credentials on a request; `invalidate` forgets a token the server refused."""

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


class NoAuth:
    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        return None


class BasicAuth:
    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode()

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        return {"Authorization": self._header}

    def invalidate(self) -> None:
        return None


class OAuth2Token:
    """Token cache for an OAuth2 token endpoint: one fetch at a time, renewed `early` seconds
    before expiry or after a 401. `form` is the grant's body (client credentials, password, ...).

    `revoke_url`: refresh tokens the server hands out are revoked at once, because we never use
    them (NetIQ OSP writes each one to the user's LDAP object until revoked)."""

    def __init__(
        self,
        token_url: str,
        form: Mapping[str, str],
        *,
        early: float = 60.0,
        basic_client: tuple[str, str] | None = None,
        revoke_url: str | None = None,
        revoke_form: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._url = token_url
        self._form = dict(form)
        self._early = early
        self._basic = BasicAuth(*basic_client) if basic_client else None
        self._revoke_url = revoke_url
        self._revoke_form = dict(revoke_form or {})
        self._timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._token = None

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._expires_at:
            async with self._lock:
                if self._token is None or time.monotonic() >= self._expires_at:
                    await self._fetch(http)
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch(self, http: httpx.AsyncClient) -> None:
        extra = await self._basic.headers(http) if self._basic else {}
        try:
            resp = await http.post(self._url, data=self._form, headers=extra, timeout=self._timeout)
        except httpx.TransportError as exc:
            raise IgaTransientError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise IgaTransientError(f"token endpoint answered {resp.status_code}", status_code=resp.status_code)
        if resp.status_code != 200:
            # The body may echo the grant; only the standard error fields are safe to repeat.
            detail = _json_field(resp, "error_description") or _json_field(resp, "error") or ""
            raise IgaPermanentError(
                f"token request refused ({resp.status_code}) {detail}".strip(), status_code=resp.status_code
            )
        body = resp.json()
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 300))
        self._expires_at = time.monotonic() + max(lifetime - self._early, lifetime / 2)
        refresh = body.get("refresh_token")
        if refresh and self._revoke_url:
            await self._revoke(http, str(refresh))

    async def _revoke(self, http: httpx.AsyncClient, refresh_token: str) -> None:
        form = {**self._revoke_form, "token": refresh_token}
        extra = await self._basic.headers(http) if self._basic else {}
        try:
            await http.post(self._revoke_url or "", data=form, headers=extra, timeout=self._timeout)
        except httpx.TransportError:
            log.warning("iga.refresh_token_revoke_failed", url=self._revoke_url)


def json_object(resp: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None where it is not one (HTML error pages, arrays, ...)."""
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _json_field(resp: httpx.Response, name: str) -> str | None:
    value = (json_object(resp) or {}).get(name)
    return str(value) if value is not None else None


def retry_after_seconds(resp: httpx.Response) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date), if any."""
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Retry(Exception):
    """Internal: this attempt failed in a way worth another try."""

    def __init__(self, message: str, *, wait: float | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.wait = wait
        self.status_code = status_code


def _bounded_by_deadline(method: str, path: str, timeout: float | None, read_timeout: float) -> float | None:
    """The timeout of a write under `write_deadline`, checked at the last moment before sending."""
    deadline = _write_deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left < MIN_WRITE_SECONDS:
        raise IgaNotSent(f"{method} {path}: not sent, the job's lease ends in {max(left, 0):.1f}s")
    return min(timeout if timeout is not None else read_timeout, left)


class IgaHttp:
    """One pooled client per IGA target, shared by every worker task of the process, so the
    target's rate and concurrency limits hold for the whole process."""

    def __init__(
        self,
        target: str,
        base_url: str,
        auth: Auth | None = None,
        policy: HttpPolicy | None = None,
        *,
        error_text: ErrorText | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.target = target
        self.policy = policy or HttpPolicy()
        self.auth: Auth = auth or NoAuth()
        self._error_text = error_text or (lambda r: r.text[:500])
        timeout = httpx.Timeout(self.policy.read_timeout, connect=self.policy.connect_timeout)
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport, verify=verify
        )
        self.pacer: Pacer = LocalPacer(self.policy.requests_per_second)
        self._slots = asyncio.Semaphore(self.policy.max_concurrency)

    def share_budget(self, pacer: Pacer) -> None:
        """Pace with a budget shared beyond this process (all workers of the target)."""
        self.pacer = pacer

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send with auth, pacing and retries; return a 2xx/3xx response or raise an IgaError.

        A non-idempotent call is retried only where the IGA cannot have acted on it (429, a
        connection never made); other failures raise IgaUncertainError for the caller to resolve.
        """

        def backoff(exc: Exception) -> bool | float:
            if not isinstance(exc, _Retry):
                return False
            if exc.wait is not None:
                return min(exc.wait, self.policy.max_retry_after)
            return True

        last: _Retry | None = None
        try:
            async for attempt in stamina.retry_context(
                on=backoff,
                attempts=self.policy.attempts,
                timeout=self.policy.retry_budget_seconds,
                wait_initial=self.policy.wait_initial,
                wait_max=self.policy.wait_max,
            ):
                with attempt:
                    try:
                        return await self._once(method, path, params, json, headers, idempotent, timeout)
                    except _Retry as exc:
                        last = exc
                        raise
        except _Retry as exc:
            last = exc
        assert last is not None
        kind = IgaTransientError if idempotent or last.status_code == 429 else IgaUncertainError
        raise kind(f"{method} {path}: {last}", status_code=last.status_code)

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Any,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        timeout: float | None,
    ) -> httpx.Response:
        refreshed = False
        while True:
            auth_headers = await self.auth.headers(self.client)
            started = time.monotonic()
            try:
                async with self._slots:
                    await self.pacer.wait()
                    if not idempotent:
                        timeout = _bounded_by_deadline(method, path, timeout, self.policy.read_timeout)
                    resp = await self.client.request(
                        method,
                        path,
                        params=params,
                        json=body,
                        headers={**auth_headers, **(headers or {})},
                        timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                    )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                IGA_CALLS.labels(self.target, method, "connect_error").inc()
                raise _Retry(f"connection failed ({type(exc).__name__})") from exc
            except httpx.TransportError as exc:
                IGA_CALLS.labels(self.target, method, "transport_error").inc()
                if not idempotent:
                    raise IgaUncertainError(
                        f"{method} {path}: no answer ({type(exc).__name__}); it may have taken effect"
                    ) from exc
                raise _Retry(f"no answer ({type(exc).__name__})") from exc
            IGA_CALLS.labels(self.target, method, str(resp.status_code)).inc()
            log.debug(
                "iga.call",
                target=self.target,
                method=method,
                path=path,
                status=resp.status_code,
                ms=round((time.monotonic() - started) * 1000),
            )
            if resp.status_code == 401 and not refreshed:
                # Expired or revoked token: renew once, then a second 401 is a real refusal.
                self.auth.invalidate()
                refreshed = True
                continue
            if resp.status_code == 429 or (resp.status_code == 503 and resp.headers.get("retry-after")):
                raise _Retry("throttled", wait=retry_after_seconds(resp), status_code=resp.status_code)
            if resp.status_code >= 500:
                if not idempotent:
                    raise IgaUncertainError(
                        f"{method} {path}: {resp.status_code} {self._error_text(resp)}",
                        status_code=resp.status_code,
                    )
                raise _Retry(f"server error {resp.status_code}", status_code=resp.status_code)
            if resp.status_code >= 400:
                raise IgaPermanentError(
                    f"{method} {path}: {resp.status_code} {self._error_text(resp)}",
                    status_code=resp.status_code,
                )
            return resp


__all__ = [
    "Auth",
    "BasicAuth",
    "HttpPolicy",
    "IgaError",
    "IgaHttp",
    "LocalPacer",
    "NoAuth",
    "OAuth2Token",
    "Pacer",
    "json_object",
    "retry_after_seconds",
    "write_deadline",
]

"""How leaver signs in to IDHub: a Keycloak client-credentials token (contract §2), optionally
exchanged (RFC 8693) for a token of the realm the API trusts.

The token cache itself is the shared `OAuth2Token`; this module only decides the URL and form,
and adds the exchange step where a tenant needs it.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from app.iga.base import IgaPermanentError, IgaTransientError
from app.iga.http import Auth, OAuth2Token, json_object
from app.iga.idhub.options import IdHubOptions, TokenExchange
from app.settings import TargetSettings

#: Keycloak tokens live 300 s; renew 30 s early (contract §2).
RENEW_EARLY = 30.0
TOKEN_TIMEOUT = 10.0
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def token_url(target: TargetSettings, options: IdHubOptions) -> str:
    """The target's `token_url`, else the Keycloak pattern on the base URL with the tenant's realm."""
    if target.token_url:
        return target.token_url
    realm = options.realm or options.tenant
    return f"{target.base_url}/auth/realms/{realm}/protocol/openid-connect/token"


def build_auth(target: TargetSettings, options: IdHubOptions) -> Auth:
    if not target.client_id or not target.client_secret:
        raise ValueError(f"target {target.name!r}: idhub needs client_id and client_secret (a Keycloak client)")
    secret = target.client_secret.get_secret_value()
    form = {"grant_type": "client_credentials", "client_id": target.client_id, "client_secret": secret}
    if options.token_scope:
        form["scope"] = options.token_scope
    direct = OAuth2Token(token_url(target, options), form, early=RENEW_EARLY, timeout=TOKEN_TIMEOUT)
    if options.token_exchange is None:
        return direct
    return ExchangedToken(direct, options.token_exchange, target.client_id, secret)


class ExchangedToken:
    """A direct token traded at `exchange.url` for the token the API accepts; both are cached
    and a refusal (401) forgets both."""

    def __init__(self, subject: OAuth2Token, exchange: TokenExchange, client_id: str, client_secret: str) -> None:
        self._subject = subject
        self._exchange = exchange
        self._client = (exchange.client_id or client_id, client_secret)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._token = None
        self._subject.invalidate()

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._expires_at:
            async with self._lock:
                if self._token is None or time.monotonic() >= self._expires_at:
                    await self._fetch(http)
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch(self, http: httpx.AsyncClient) -> None:
        subject = (await self._subject.headers(http))["Authorization"].removeprefix("Bearer ")
        form = {
            "grant_type": EXCHANGE_GRANT,
            "client_id": self._client[0],
            "client_secret": self._client[1],
            "subject_token": subject,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
        }
        if self._exchange.audience:
            form["audience"] = self._exchange.audience
        try:
            resp = await http.post(self._exchange.url, data=form, timeout=TOKEN_TIMEOUT)
        except httpx.TransportError as exc:
            raise IgaTransientError(f"token exchange unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise IgaTransientError(f"token exchange answered {resp.status_code}", status_code=resp.status_code)
        body = json_object(resp) or {}
        if resp.status_code != 200 or "access_token" not in body:
            # Only the standard error fields: the body may echo the subject token.
            detail = body.get("error_description") or body.get("error") or ""
            raise IgaPermanentError(
                f"token exchange refused ({resp.status_code}) {detail}".strip(), status_code=resp.status_code
            )
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 300))
        self._expires_at = time.monotonic() + max(lifetime - RENEW_EARLY, lifetime / 2)

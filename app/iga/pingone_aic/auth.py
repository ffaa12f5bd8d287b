"""How leaver signs in to PingOne AIC (contract §2).

Mode A, the documented way for IGA: a service account's JWT bearer grant. Each token fetch signs a
fresh RS256 assertion (`iss` = `sub` = the service account ID, `aud` the token endpoint with its
port, `exp` +180 s, a new `jti`) with the account's private key, and posts it to the root realm's
`/am/oauth2/access_token`. Mode B: client credentials of a realm client, through the shared
`OAuth2Token`. Either way the token is cached until `expires_in` less a minute, and a 401 renews it.

The private key never leaves this module: no error, log line or repr carries it or the assertion.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid
from pathlib import Path

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from app.iga.base import IgaPermanentError, IgaTransientError
from app.iga.http import Auth, OAuth2Token, json_object
from app.iga.pingone_aic.options import PingOneAicOptions
from app.settings import TargetSettings

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE_A = "fr:am:* fr:idm:* fr:iga:*"
SCOPE_B = "fr:idm:* fr:iga:*"
TOKEN_TIMEOUT = 10.0
log = structlog.get_logger(__name__)


def token_url(target: TargetSettings, options: PingOneAicOptions) -> str:
    """The target's `token_url`, else the root realm's endpoint (mode A) or the realm's (mode B)."""
    if target.token_url:
        return target.token_url
    if options.auth == "jwt_bearer":
        return f"{target.base_url}/am/oauth2/access_token"
    return f"{target.base_url}/am/oauth2/realms/root/realms/{options.realm}/access_token"


def audience(url: str) -> str:
    """The token URL with its port written out (`https://tenant:443/am/oauth2/access_token`)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return urllib.parse.urlunsplit((parts.scheme, f"{parts.hostname}:{port}", parts.path, "", ""))


def load_private_key(options: PingOneAicOptions, target: str) -> RSAKey:
    """The service account's RSA key from `private_key` or `private_key_file`: the JWK file the
    console downloads, or a PEM. Errors name the option, never the key's content."""
    where = "private_key"
    if options.private_key_file is not None:
        where = "private_key_file"
        try:
            text = Path(options.private_key_file).read_text()
        except OSError as exc:
            raise ValueError(f"target {target!r}: private_key_file: cannot read it ({exc.strerror})") from None
    elif options.private_key is not None:
        text = options.private_key.get_secret_value()
    else:
        raise ValueError(f"target {target!r}: pingone-aic sign-in needs private_key or private_key_file")
    try:
        raw: str | dict[str, str | list[str]] = json.loads(text) if text.lstrip().startswith("{") else text
        key = RSAKey.import_key(raw)
    except (ValueError, TypeError, JoseError):
        raise ValueError(f"target {target!r}: {where} is not an RSA private key (a JWK or a PEM)") from None
    if not key.is_private:
        raise ValueError(f"target {target!r}: {where} holds a public key; the service account's private key is needed")
    return key


class JwtBearerToken:
    """`Auth` for a service account: one token fetch at a time, each with a freshly signed assertion."""

    def __init__(
        self,
        url: str,
        account_id: str,
        key: RSAKey,
        *,
        aud: str | None = None,
        scope: str = SCOPE_A,
        lifetime: int = 180,
        early: float = 60.0,
    ) -> None:
        self._url = url
        self._account = account_id
        self._key = key
        self._aud = aud or audience(url)
        self._scope = scope
        self._lifetime = lifetime
        self._early = early
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"JwtBearerToken(url={self._url!r}, account={self._account!r})"

    def invalidate(self) -> None:
        self._token = None

    def assertion(self) -> str:
        """A new signed assertion: its own `jti` and an `exp` from now."""
        claims = {
            "iss": self._account,
            "sub": self._account,
            "aud": self._aud,
            "exp": int(time.time()) + self._lifetime,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode({"alg": "RS256"}, claims, self._key)

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._expires_at:
            async with self._lock:
                if self._token is None or time.monotonic() >= self._expires_at:
                    await self._fetch(http)
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch(self, http: httpx.AsyncClient) -> None:
        form = {
            "client_id": "service-account",
            "grant_type": JWT_BEARER,
            "assertion": self.assertion(),
            "scope": self._scope,
        }
        try:
            resp = await http.post(self._url, data=form, timeout=TOKEN_TIMEOUT)
        except httpx.TransportError as exc:
            raise IgaTransientError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise IgaTransientError(f"token endpoint answered {resp.status_code}", status_code=resp.status_code)
        body = json_object(resp) or {}
        if resp.status_code != 200 or not isinstance(body.get("access_token"), str):
            # Only AM's standard error fields: never the form, which holds the assertion.
            detail = body.get("error_description") or body.get("error") or ""
            log.warning("pingone_aic.token_refused", status=resp.status_code, error=body.get("error"))
            raise IgaPermanentError(
                f"token request refused ({resp.status_code}) {detail}".strip(), status_code=resp.status_code
            )
        self._token = body["access_token"]
        lifetime = float(body.get("expires_in", 899))
        self._expires_at = time.monotonic() + max(lifetime - self._early, lifetime / 2)


def build_auth(target: TargetSettings, options: PingOneAicOptions) -> Auth:
    url = token_url(target, options)
    if options.auth == "client_credentials":
        if not target.client_id or not target.client_secret:
            raise ValueError(f"target {target.name!r}: client_credentials sign-in needs client_id and client_secret")
        form = {"grant_type": "client_credentials", "scope": options.scope or SCOPE_B}
        basic = (target.client_id, target.client_secret.get_secret_value())
        return OAuth2Token(
            url, form, early=options.token_renew_early_seconds, basic_client=basic, timeout=TOKEN_TIMEOUT
        )
    if not options.service_account_id:
        raise ValueError(f"target {target.name!r}: jwt_bearer sign-in needs options.service_account_id")
    return JwtBearerToken(
        url,
        options.service_account_id,
        load_private_key(options, target.name),
        aud=options.jwt_audience,
        scope=options.scope or SCOPE_A,
        lifetime=options.jwt_lifetime_seconds,
        early=options.token_renew_early_seconds,
    )

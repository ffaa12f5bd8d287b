"""The tenant's AM token endpoints (contract §2, §9.1) and the bearer check of `/openidm` and `/iga`.

Mode A: `POST /am/oauth2/access_token` with `client_id=service-account`, the JWT bearer grant and
an RS256 assertion signed with the service account's key: `iss` = `sub` = its ID, `aud` the URL
the assertion was posted to with its port, `exp` in the future, a `jti` never seen before.
Mode B: `POST /am/oauth2/realms/root/realms/<realm>/access_token`, client credentials (Basic or
form). Answers and errors use AM's `{"error", "error_description"}`.
"""

from __future__ import annotations

import base64
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from app.simulator.pingone_aic.config import SCOPES, SimConfig
from app.simulator.pingone_aic.keys import CLIENT_ID, CLIENT_SECRET, DEMO_PUBLIC_JWK, SERVICE_ACCOUNT_ID

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: AM refuses assertions that live longer than this (assumed; the contract's are 180 s).
MAX_ASSERTION_SECONDS = 600
Answer = tuple[int, dict[str, Any]]


@dataclass
class Token:
    expires_at: float  # simulator clock
    scopes: frozenset[str]
    #: Issued by the client-credentials mode (A1: IGA may refuse such tokens).
    client: bool


def _refusal(status: int, error: str, description: str) -> Answer:
    return status, {"error": error, "error_description": description}


def audience(url: str) -> str:
    """The URL an assertion must name: the endpoint's, with the port always written out."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}{parts.path}"


class SignIn:
    """Issues tokens and checks them. Callers hold the simulator lock."""

    def __init__(self) -> None:
        self.tokens: dict[str, Token] = {}
        self.seen_jti: set[str] = set()
        self.public_key = RSAKey.import_key(DEMO_PUBLIC_JWK)

    def _issue(self, config: SimConfig, now: float, scopes: frozenset[str], *, client: bool) -> Answer:
        value = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(32)
        self.tokens[value] = Token(now + config.token_lifetime, scopes, client)
        body = {
            "access_token": value,
            "scope": " ".join(sorted(scopes)),
            "token_type": "Bearer",
            "expires_in": int(config.token_lifetime),
        }
        return 200, body

    def _scopes(self, requested: str | None, allowed: list[str]) -> frozenset[str] | Answer:
        wanted = (requested or "").split() or list(allowed)
        for scope in wanted:
            if scope not in SCOPES or scope not in allowed:
                return _refusal(400, "invalid_scope", f"Unsupported scope for service account: {scope}")
        return frozenset(wanted)

    def jwt_bearer(self, form: Mapping[str, str], url: str, config: SimConfig, now: float) -> Answer:
        if form.get("grant_type") != JWT_BEARER:
            return _refusal(400, "unsupported_grant_type", "Grant type is not supported")
        if form.get("client_id") != "service-account":
            return _refusal(401, "invalid_client", "Client authentication failed")
        assertion = form.get("assertion")
        if not assertion:
            return _refusal(400, "invalid_request", "Missing parameter: assertion")
        try:
            token = jwt.decode(assertion, self.public_key, algorithms=["RS256"])
        except (JoseError, ValueError):
            return _refusal(400, "invalid_grant", "JWT is not valid")
        claims = token.claims
        if claims.get("iss") != SERVICE_ACCOUNT_ID or claims.get("sub") != SERVICE_ACCOUNT_ID:
            return _refusal(400, "invalid_grant", "JWT issuer or subject is not a service account")
        if claims.get("aud") != audience(url):
            return _refusal(400, "invalid_grant", "JWT audience does not match the token endpoint")
        # Assertions carry wall-clock times: they are checked against the wall, not the sim clock.
        exp, wall = claims.get("exp"), time.time()
        if not isinstance(exp, int | float) or exp <= wall or exp > wall + MAX_ASSERTION_SECONDS:
            return _refusal(400, "invalid_grant", "JWT has expired or lives too long")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or jti in self.seen_jti:
            return _refusal(400, "invalid_grant", "JWT jti is missing or was used before")
        self.seen_jti.add(jti)
        scopes = self._scopes(form.get("scope"), config.service_account_scopes)
        if not isinstance(scopes, frozenset):
            return scopes
        return self._issue(config, now, scopes, client=False)

    def client_credentials(self, form: Mapping[str, str], authorization: str, config: SimConfig, now: float) -> Answer:
        creds = dict(form)
        if authorization.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return _refusal(401, "invalid_client", "Client authentication failed")
            creds["client_id"], creds["client_secret"] = urllib.parse.unquote(user), urllib.parse.unquote(password)
        if form.get("grant_type") != "client_credentials":
            return _refusal(400, "unsupported_grant_type", "Grant type is not supported")
        if (creds.get("client_id"), creds.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return _refusal(401, "invalid_client", "Client authentication failed")
        scopes = self._scopes(form.get("scope"), [s for s in SCOPES if s != "fr:am:*"])
        if not isinstance(scopes, frozenset):
            return scopes
        return self._issue(config, now, scopes, client=True)

    def check(self, authorization: str, path: str, config: SimConfig, now: float) -> tuple[int, str] | None:
        """None when the bearer may call `path`; else (401 or 403, message)."""
        token = self.tokens.get(authorization[7:].strip()) if authorization.lower().startswith("bearer ") else None
        if token is None or now >= token.expires_at:
            return 401, "Access Denied"
        needed = "fr:iga:*" if path.startswith("/iga/") else "fr:idm:*"
        if needed not in token.scopes:
            return 403, f"The access token lacks the scope {needed}"
        if needed == "fr:iga:*" and token.client and not config.client_token_accepted_by_iga:
            return 403, "Access Denied: the token has no IGA subject (token modification script missing)"
        return None

    def revoke_all(self) -> None:
        self.tokens.clear()

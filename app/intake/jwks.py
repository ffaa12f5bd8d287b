"""Signed tokens from a sender's published keys (SSF SETs, Entra access tokens), verified with
joserfc: the keys of a JWKS URL cached per process, refetched once when a token names an unknown
`kid` (a rotation) but never more often than the source allows (an attacker's random `kid`s
must not turn leaver into a JWKS flooder)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, RSAKey

log = structlog.get_logger(__name__)
MAX_TOKEN_BYTES = 64 * 1024
MAX_JWKS_BYTES = 512 * 1024
FETCH_TIMEOUT = 5.0


class TokenError(ValueError):
    """The token is malformed, unsigned, of the wrong type, or signed by a key we do not accept."""

    def __init__(self, message: str, *, key_problem: bool = False) -> None:
        super().__init__(message)
        self.key_problem = key_problem


class KeysUnavailable(Exception):
    """The sender's keys cannot be fetched now: not the token's fault, retry later."""


Key = RSAKey | ECKey


@dataclass
class KeyCache:
    """The keys behind one JWKS URL (or an SSF issuer's metadata), for one app."""

    jwks_uri: str | None
    issuer: str | None = None
    cache_seconds: float = 3600.0
    refetch_seconds: float = 60.0

    def __post_init__(self) -> None:
        self._keys: dict[str, Key] = {}
        self._unnamed: list[Key] = []
        self._loaded = float("-inf")  # last successful fetch
        self._tried = float("-inf")  # last attempt
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> Key:
        """The key named `kid`, fetching or refetching the JWKS where the rules allow."""
        if time.monotonic() - self._loaded > self.cache_seconds and self._may_try():
            await self._refresh(self._tried)
        found = self._find(kid)
        if found is None and self._may_try():
            await self._refresh(self._tried)
            found = self._find(kid)
        if found is None:
            if not (self._keys or self._unnamed):
                raise KeysUnavailable("the sender's keys could not be fetched")
            why = f"no key {kid!r} in the sender's JWKS" if kid else "no kid, and the JWKS has several keys"
            raise TokenError(why, key_problem=True)
        return found

    def _may_try(self) -> bool:
        return time.monotonic() - self._tried >= self.refetch_seconds

    def _find(self, kid: str | None) -> Key | None:
        if kid is not None:
            return self._keys.get(kid)
        keys = [*self._keys.values(), *self._unnamed]
        return keys[0] if len(keys) == 1 else None

    async def _refresh(self, seen: float) -> None:
        async with self._lock:
            if self._tried != seen:
                return  # another request fetched meanwhile
            self._tried = time.monotonic()
            try:
                uri = self.jwks_uri or await _discover(self.issuer or "")
                self._load(await _get_json(uri))
            except KeysUnavailable as exc:
                log.warning("intake.jwks_fetch_failed", source=self.jwks_uri or self.issuer, error=str(exc))
                return
            self._loaded = time.monotonic()

    def _load(self, document: Any) -> None:
        raw_keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(raw_keys, list):
            raise KeysUnavailable("the JWKS has no 'keys' list")
        keys: dict[str, Key] = {}
        unnamed: list[Key] = []
        for raw in raw_keys:
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig" or raw.get("kty") not in ("RSA", "EC"):
                continue
            try:
                key = JWKRegistry.import_key(raw)
            except (JoseError, ValueError, TypeError):
                continue  # one bad key must not hide the others
            if not isinstance(key, RSAKey | ECKey):
                continue
            if isinstance(raw.get("kid"), str):
                keys[raw["kid"]] = key
            else:
                unnamed.append(key)
        self._keys, self._unnamed = keys, unnamed


async def _get_json(url: str) -> Any:
    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as http:
            resp = await http.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise KeysUnavailable(f"cannot fetch {url}: {type(exc).__name__}") from None
    if resp.status_code != 200 or len(resp.content) > MAX_JWKS_BYTES:
        raise KeysUnavailable(f"{url} answered {resp.status_code}")
    try:
        return json.loads(resp.content)
    except ValueError:
        raise KeysUnavailable(f"{url} did not answer JSON") from None


def metadata_url(issuer: str) -> str:
    """SSF 1.0 §6.2: `/.well-known/ssf-configuration` goes between the host and the issuer's path."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"/.well-known/ssf-configuration{path}", "", ""))


async def _discover(issuer: str) -> str:
    meta = await _get_json(metadata_url(issuer))
    if not isinstance(meta, dict) or meta.get("issuer") != issuer or not isinstance(meta.get("jwks_uri"), str):
        raise KeysUnavailable("the transmitter metadata does not name this issuer and a jwks_uri")
    return str(meta["jwks_uri"])


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, NOT verified: only to pick the source and key."""
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise TokenError("not a compact JWS")
    try:
        obj = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, UnicodeError):
        raise TokenError("not a compact JWS with a JSON payload") from None
    if not isinstance(claims, dict):
        raise TokenError("the JWS payload is not a JSON object")
    return dict(obj.headers()), claims


async def verify(token: str, keys: KeyCache, algorithms: Collection[str], typ: str | None = None) -> dict[str, Any]:
    """Verify the signature and header of a compact JWS; return its header."""
    header, _ = peek(token)
    alg = str(header.get("alg"))
    if alg not in algorithms:  # never `none`, never HS*: the allow-list holds public-key algorithms only
        raise TokenError(f"alg {alg!r} not accepted; accepted: {', '.join(algorithms)}", key_problem=True)
    if typ is not None and str(header.get("typ", "")).lower().removeprefix("application/") != typ:
        raise TokenError(f"typ must be {typ!r}")
    if "crit" in header:
        raise TokenError("critical header parameters are not supported")
    kid = header.get("kid")
    key = await keys.key(kid if isinstance(kid, str) else None)
    if isinstance(key, RSAKey) != alg.startswith(("RS", "PS")):
        raise TokenError(f"key {kid!r} does not fit alg {alg}", key_problem=True)
    if isinstance(key, RSAKey) and _rsa_bits(key) < 2048:
        raise TokenError(f"key {kid!r} is shorter than 2048 bits", key_problem=True)
    try:
        jws.deserialize_compact(token, key, algorithms=[alg])
    except JoseError:
        raise TokenError("the signature does not verify with the sender's key", key_problem=True) from None
    return header


def _rsa_bits(key: RSAKey) -> int:
    size: int = key.raw_value.key_size
    return size


def cache_for(state: Any, name: str, make: Callable[[], KeyCache]) -> KeyCache:
    """The app's key cache called `name` (one per source), made on first use."""
    caches: dict[str, KeyCache] | None = getattr(state, "intake_key_caches", None)
    if caches is None:
        caches = state.intake_key_caches = {}
    if name not in caches:
        caches[name] = make()
    return caches[name]

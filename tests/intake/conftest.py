"""Intake formats against the real app (ASGI, or real HTTP where a lifespan must run) and the real
database; SETs and Entra tokens signed with joserfc keys made here, their JWKS served by a local
HTTP server, as a transmitter would."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import func, select

from app.main import create_app
from app.runtime import Runtime, build_runtime
from app.settings import IntakeSource, TargetSettings
from app.simulator import simulator_spec
from app.store.models import Case, Event
from tests.conftest import make_settings
from tests.servers import serve_in_thread
from tests.support import FIRST_SYSTEM

TARGETS: list[TargetSettings] = [simulator_spec(FIRST_SYSTEM).demo_target("http://127.0.0.1:9/none", "iga")]
ISSUER = "https://idp.acme.com/"
AUDIENCE = "https://leaver.acme.com"
STREAM_TOKEN = "ssf-stream-token-0123456789abcdef"
SCIM_TOKEN = "scim-entra-token-0123456789abcdef"
OKTA_SECRET = "Bearer hk_okta-hook-secret-0123456789"
ENTRA_SECRET = "entra-logic-app-secret-0123456789"
MAPPED_TOKEN = "netiq-rest-driver-token-0123456789"
MAPPED_WHSEC = "whsec_bGVhdmVyLXJvdGF0aW9uLXRlc3Qta2V5LTAwMDI="


@dataclass
class KeyServer:
    """A transmitter's published keys (and SSF metadata), served over HTTP; counts fetches."""

    keys: list[RSAKey | ECKey]
    url: str = ""
    fetches: int = 0

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"

    def add(self, kid: str, kind: str = "RSA") -> RSAKey | ECKey:
        key = (
            ECKey.generate_key("P-256", parameters={"kid": kid})
            if kind == "EC"
            else RSAKey.generate_key(2048, parameters={"kid": kid})
        )
        self.keys.append(key)
        return key

    def sign(
        self,
        claims: dict[str, Any],
        *,
        kid: str = "tx-1",
        alg: str = "RS256",
        typ: str | None = "secevent+jwt",
        key: RSAKey | ECKey | None = None,
    ) -> str:
        signer = key or next(k for k in self.keys if k.kid == kid)
        header = {"alg": alg, "kid": kid} | ({"typ": typ} if typ else {})
        return jws.serialize_compact(header, json.dumps(claims), signer, algorithms=[alg])


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer([RSAKey.generate_key(2048, parameters={"kid": "tx-1"})])
    app = FastAPI()

    @app.get("/jwks")
    async def jwks() -> JSONResponse:
        server.fetches += 1
        return JSONResponse({"keys": [k.as_dict(private=False) for k in server.keys]})

    @app.get("/.well-known/ssf-configuration")
    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse({"spec_version": "1_0", "issuer": server.url + "/", "jwks_uri": server.jwks_uri})

    with serve_in_thread(app) as url:
        server.url = url
        yield server


def set_claims(event: str = "risc/event-type/account-disabled", **changes: Any) -> dict[str, Any]:
    """The SET of intake-formats.md §2, with a fresh `jti` and `iat`."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
        "iat": int(time.time()),
        "txn": "8675309",
        "sub_id": {"format": "iss_sub", "iss": ISSUER, "sub": "jdoe"},
        "events": {f"https://schemas.openid.net/secevent/{event}": {"reason": "bulk-account"}},
    }
    claims.update(changes)
    return claims


def ssf_source(keys: KeyServer, **options: Any) -> dict[str, Any]:
    return {
        "name": "acme-idp",
        "format": "ssf",
        "secrets": [STREAM_TOKEN],
        "options": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": keys.jwks_uri, **options},
    }


SOURCES: dict[str, dict[str, Any]] = {
    "scim": {"name": "entra-scim", "format": "scim", "secrets": [SCIM_TOKEN]},
    "okta": {"name": "okta", "format": "okta", "secrets": [OKTA_SECRET]},
    "entra": {"name": "entra-lcw", "format": "entra", "secrets": [ENTRA_SECRET], "options": {"resume": "never"}},
}

Intake = Callable[..., Awaitable[tuple[httpx.AsyncClient, Runtime]]]


@pytest.fixture
async def intake(database_url: str, tmp_path: Path) -> AsyncIterator[Intake]:
    """Start leaver (API only, ASGI) with these sources; returns (client, runtime)."""
    started: list[tuple[httpx.AsyncClient, Runtime]] = []

    async def start(
        *sources: dict[str, Any], targets: list[TargetSettings] | None = None, db: str | None = None, **overrides: Any
    ) -> tuple[httpx.AsyncClient, Runtime]:
        settings = make_settings(
            db or database_url,
            tmp_path,
            TARGETS if targets is None else targets,
            sources=[IntakeSource.model_validate(s) for s in sources],
            workers=0,
            **overrides,
        )
        rt = build_runtime(settings)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(rt, workers=0)), base_url="http://leaver"
        )
        started.append((client, rt))
        return client, rt

    yield start
    for client, rt in started:
        await client.aclose()
        await rt.aclose()


DOWN = "postgresql+asyncpg://leaver@127.0.0.1:1/leaver"


async def stored(rt: Runtime) -> list[dict[str, Any]]:
    """Every stored event: its columns, payload and number of cases, oldest first."""
    async with rt.sessions() as session:
        events = (await session.scalars(select(Event).order_by(Event.received_at, Event.id))).all()
        counts = dict((await session.execute(select(Case.event_id, func.count()).group_by(Case.event_id))).all())
    return [
        {
            "id": e.id,
            "source": e.source,
            "external_id": e.external_id,
            "type": e.type,
            "format": e.format,
            "user": {k: v for k, v in e.payload["user"].items() if v},
            "attributes": e.payload["attributes"],
            "occurred_at": e.occurred_at,
            "cases": counts.get(e.id, 0),
        }
        for e in events
    ]

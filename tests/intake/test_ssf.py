"""OpenID SSF push delivery: SETs signed with joserfc keys made here, the JWKS served over HTTP.
Every refusal is RFC 8935's `400 {"err","description"}` (413/415 for size and media type) and
stores nothing; an accepted SET is `202` with an empty body, stored once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey

from app.intake.sources import SsfOptions
from app.intake.ssf import SsfError, check_claims
from app.intake.ssf_subjects import SubjectError, subject_view
from tests.intake.conftest import (
    AUDIENCE,
    DOWN,
    ISSUER,
    STREAM_TOKEN,
    Intake,
    KeyServer,
    set_claims,
    ssf_source,
    stored,
)
from tests.support import row_counts

SET = "application/secevent+jwt"


async def push(
    client: httpx.AsyncClient, token: str, *, auth: str | None = STREAM_TOKEN, media: str = SET
) -> httpx.Response:
    headers = {"content-type": media, "accept": "application/json"}
    if auth is not None:
        headers["authorization"] = f"Bearer {auth}"
    return await client.post("/webhooks/ssf", content=token, headers=headers)


async def test_the_documented_account_disabled_set_is_stored_once_and_answered_202_empty(
    intake: Intake, key_server: KeyServer
) -> None:
    client, rt = await intake(ssf_source(key_server))
    token = key_server.sign(set_claims())
    first = await push(client, token)
    assert first.status_code == 202 and first.content == b"" and "content-type" not in first.headers
    again = await push(client, token)  # a transmitter's retry: same SET, same answer
    assert again.status_code == 202 and again.content == b""
    (event,) = await stored(rt)
    assert (event["type"], event["source"], event["format"], event["cases"]) == ("user.disabled", "acme-idp", "ssf", 1)
    assert event["user"]["username"] == "jdoe"
    assert event["attributes"]["ssf"]["event"] == {"reason": "bulk-account"}
    assert (await row_counts(rt))["jobs"] == 1


@pytest.mark.parametrize(
    ("event", "type_"),
    [("risc/event-type/account-purged", "user.terminated"), ("risc/event-type/account-enabled", "user.enabled")],
)
async def test_risc_purged_and_enabled_become_terminated_and_enabled(
    intake: Intake, key_server: KeyServer, event: str, type_: str
) -> None:
    client, rt = await intake(ssf_source(key_server))
    claims = set_claims(event)
    claims["events"] = {next(iter(claims["events"])): {}}
    assert (await push(client, key_server.sign(claims))).status_code == 202
    (stored_event,) = await stored(rt)
    assert stored_event["type"] == type_ and stored_event["cases"] == 1


@pytest.mark.parametrize("event", ["caep/event-type/session-revoked", "caep/event-type/credential-change"])
async def test_caep_signals_are_recorded_without_any_removal(intake: Intake, key_server: KeyServer, event: str) -> None:
    client, rt = await intake(ssf_source(key_server))
    claims = set_claims(event, events={f"https://schemas.openid.net/secevent/{event}": {"event_timestamp": 1795194000}})
    assert (await push(client, key_server.sign(claims))).status_code == 202
    (signal,) = await stored(rt)
    assert signal["cases"] == 0 and signal["attributes"]["ssf"]["recorded_only"] is True
    assert signal["occurred_at"].timestamp() == 1795194000
    counts = await row_counts(rt)
    assert (counts["cases"], counts["jobs"]) == (0, 0)


@pytest.mark.parametrize(
    "event",
    [
        {"ssf/event-type/verification": {"state": "abc"}},
        {"ssf/event-type/stream-updated": {"status": "paused"}},
        {"risc/event-type/identifier-changed": {}},
    ],
)
async def test_stream_and_unknown_events_are_acknowledged_and_not_stored(
    intake: Intake, key_server: KeyServer, event: dict[str, Any]
) -> None:
    client, rt = await intake(ssf_source(key_server))
    events = {f"https://schemas.openid.net/secevent/{k}": v for k, v in event.items()}
    resp = await push(client, key_server.sign(set_claims(events=events)))
    assert resp.status_code == 202
    assert await stored(rt) == []


async def test_a_different_set_reusing_a_jti_is_refused(intake: Intake, key_server: KeyServer) -> None:
    client, rt = await intake(ssf_source(key_server))
    claims = set_claims()
    assert (await push(client, key_server.sign(claims))).status_code == 202
    replay = await push(client, key_server.sign({**claims, "sub_id": {"format": "email", "email": "ceo@acme.com"}}))
    assert replay.status_code == 400 and replay.json()["err"] == "invalid_request"
    assert len(await stored(rt)) == 1


def _hs256(_: KeyServer) -> str:
    return jws.serialize_compact(
        {"alg": "HS256", "typ": "secevent+jwt"}, json.dumps(set_claims()), OctKey.import_key(b"k" * 32)
    )


def _none(_: KeyServer) -> str:
    import base64

    def b64(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none', 'typ': 'secevent+jwt'})}.{b64(set_claims())}."


def _forged(keys: KeyServer) -> str:
    return keys.sign(set_claims(), key=RSAKey.generate_key(2048, parameters={"kid": "tx-1"}))


def _weak(keys: KeyServer) -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = RSAKey.import_key(private, parameters={"kid": "weak"})
    keys.keys.append(weak)
    return jws.serialize_compact({"alg": "RS256", "kid": "weak", "typ": "secevent+jwt"}, json.dumps(set_claims()), weak)


def _tampered(keys: KeyServer) -> str:
    header, _, sig = keys.sign(set_claims()).split(".")
    import base64

    other = base64.urlsafe_b64encode(json.dumps(set_claims(jti="tampered")).encode()).decode().rstrip("=")
    return f"{header}.{other}.{sig}"


#: name -> (the token, given the key server; the answer's status; its `err`)
HOSTILE: dict[str, tuple[Callable[[KeyServer], str], int, str]] = {
    "signed by another key under the same kid": (_forged, 400, "invalid_key"),
    "claims changed after signing": (_tampered, 400, "invalid_key"),
    "unknown kid": (lambda k: k.sign(set_claims(), key=RSAKey.generate_key(2048), kid="nope"), 400, "invalid_key"),
    "alg none": (_none, 400, "invalid_key"),
    "HS256 with a guessed secret": (_hs256, 400, "invalid_key"),
    "RSA key of 1024 bits": (_weak, 400, "invalid_key"),
    "unknown issuer": (lambda k: k.sign(set_claims(iss="https://evil.example/")), 400, "invalid_issuer"),
    "wrong audience": (lambda k: k.sign(set_claims(aud="https://other.example")), 400, "invalid_audience"),
    "typ JWT": (lambda k: k.sign(set_claims(), typ="JWT"), 400, "invalid_request"),
    "no typ": (lambda k: k.sign(set_claims(), typ=None), 400, "invalid_request"),
    "iat in the future": (lambda k: k.sign(set_claims(iat=int(time.time()) + 3600)), 400, "invalid_request"),
    "expired: older than max age": (
        lambda k: k.sign(set_claims(iat=int(time.time()) - 8 * 86400)),
        400,
        "invalid_request",
    ),
    "exp in the past": (lambda k: k.sign(set_claims(exp=int(time.time()) - 10)), 400, "invalid_request"),
    "no jti": (lambda k: k.sign({c: v for c, v in set_claims().items() if c != "jti"}), 400, "invalid_request"),
    "two events": (
        lambda k: k.sign(
            set_claims(
                events={
                    "https://schemas.openid.net/secevent/risc/event-type/account-disabled": {},
                    "https://schemas.openid.net/secevent/risc/event-type/account-enabled": {},
                }
            )
        ),
        400,
        "invalid_request",
    ),
    "unsupported subject format": (
        lambda k: k.sign(set_claims(sub_id={"format": "x509", "x": "1"})),
        400,
        "invalid_request",
    ),
    "no subject": (lambda k: k.sign({c: v for c, v in set_claims().items() if c != "sub_id"}), 400, "invalid_request"),
    "control character in a claim": (lambda k: k.sign(set_claims(txn="a\u0000b")), 400, "invalid_request"),
    "not a JWS": (lambda k: "this is not a token", 400, "invalid_request"),
    "JSON instead of a JWS": (lambda k: json.dumps(set_claims()), 400, "invalid_request"),
    "payload is not an object": (lambda k: k.sign([1, 2]), 400, "invalid_request"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.filterwarnings("ignore:Key size should be")
async def test_a_bad_set_gets_an_rfc_8935_error_and_stores_nothing(
    intake: Intake, key_server: KeyServer, name: str
) -> None:
    client, rt = await intake(ssf_source(key_server))
    make, status, err = HOSTILE[name]
    resp = await push(client, make(key_server))
    assert resp.status_code == status, (name, resp.text)
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["err"] == err and resp.json()["description"]
    assert await stored(rt) == []


@pytest.mark.parametrize("auth", [None, "wrong-token-0123456789abcdef", ""])
async def test_without_the_stream_token_nothing_is_even_parsed(
    intake: Intake, key_server: KeyServer, auth: str | None
) -> None:
    client, rt = await intake(ssf_source(key_server))
    resp = await push(client, key_server.sign(set_claims()), auth=auth)
    assert resp.status_code == 400 and resp.json()["err"] == "authentication_failed"
    assert key_server.fetches == 0  # refused before any key was fetched
    assert await stored(rt) == []


async def test_wrong_media_type_and_oversize_bodies_are_refused(intake: Intake, key_server: KeyServer) -> None:
    client, rt = await intake(ssf_source(key_server), max_body_bytes=4096)
    token = key_server.sign(set_claims())
    wrong = await push(client, token, media="application/json")
    assert wrong.status_code == 415 and wrong.json()["err"] == "invalid_request"
    big = await push(client, key_server.sign(set_claims(txn="x" * 5000)))
    assert big.status_code == 413 and big.json()["err"] == "invalid_request"
    assert await stored(rt) == []


async def test_a_rotated_key_is_fetched_once_and_unknown_kids_do_not_flood_the_jwks(
    intake: Intake, key_server: KeyServer
) -> None:
    client, _ = await intake(ssf_source(key_server, jwks_refetch_seconds=0))
    assert (await push(client, key_server.sign(set_claims()))).status_code == 202
    key_server.add("tx-2")
    assert (await push(client, key_server.sign(set_claims(), kid="tx-2"))).status_code == 202
    assert key_server.fetches == 2

    client, _ = await intake(ssf_source(key_server, jwks_refetch_seconds=3600))
    assert (await push(client, key_server.sign(set_claims(), kid="tx-2"))).status_code == 202
    fetched = key_server.fetches
    for n in range(5):
        resp = await push(client, key_server.sign(set_claims(), key=RSAKey.generate_key(2048), kid=f"random-{n}"))
        assert resp.json()["err"] == "invalid_key"
    assert key_server.fetches == fetched


async def test_es256_and_keys_found_through_the_transmitter_metadata(intake: Intake, key_server: KeyServer) -> None:
    key_server.add("ec-1", "EC")
    issuer = key_server.url + "/"
    source = ssf_source(key_server)
    source["options"] = {"issuer": issuer, "audience": [AUDIENCE, "other"]}
    client, rt = await intake(source)
    resp = await push(client, key_server.sign(set_claims(iss=issuer), kid="ec-1", alg="ES256"))
    assert resp.status_code == 202, resp.text
    assert len(await stored(rt)) == 1


async def test_several_transmitters_each_with_its_own_token_and_issuer(intake: Intake, key_server: KeyServer) -> None:
    other = {**ssf_source(key_server), "name": "partner", "secrets": ["partner-stream-token-0123456789"]}
    other["options"] = {**other["options"], "issuer": "https://partner.example/"}
    client, rt = await intake(ssf_source(key_server), other)
    mine = await push(client, key_server.sign(set_claims()))
    theirs = await push(
        client, key_server.sign(set_claims(iss="https://partner.example/")), auth="partner-stream-token-0123456789"
    )
    crossed = await push(client, key_server.sign(set_claims(iss="https://partner.example/")))
    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert crossed.status_code == 400 and crossed.json()["err"] == "invalid_issuer"
    assert sorted(e["source"] for e in await stored(rt)) == ["acme-idp", "partner"]


async def test_a_database_that_is_down_answers_503_so_the_transmitter_retries(
    intake: Intake, key_server: KeyServer
) -> None:
    client, _ = await intake(ssf_source(key_server), db=DOWN)
    resp = await push(client, key_server.sign(set_claims()))
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"


def test_the_documented_example_passes_with_the_clock_at_its_time() -> None:
    claims = {
        "iss": "https://idp.acme.com/",
        "aud": "https://leaver.acme.com",
        "jti": "5f1c0d7e9a2b4e6f",
        "iat": 1795194010,
        "txn": "8675309",
        "sub_id": {"format": "iss_sub", "iss": "https://idp.acme.com/", "sub": "jdoe"},
        "events": {"https://schemas.openid.net/secevent/risc/event-type/account-disabled": {"reason": "bulk-account"}},
    }
    options = SsfOptions(issuer=ISSUER, audience=[AUDIENCE])
    uri, event = check_claims(claims, options, now=1795194012)
    assert uri.endswith("account-disabled") and event == {"reason": "bulk-account"}
    with pytest.raises(SsfError) as refused:
        check_claims({**claims, "aud": "https://elsewhere"}, options, now=1795194012)
    assert refused.value.err == "invalid_audience"


@pytest.mark.parametrize(
    ("subject", "view"),
    [
        ({"format": "email", "email": "jdoe@acme.com"}, {"email": "jdoe@acme.com"}),
        ({"format": "iss_sub", "iss": ISSUER, "sub": "jdoe"}, {"iss": ISSUER, "sub": "jdoe"}),
        ({"subject_type": "iss-sub", "iss": ISSUER, "sub": "jdoe"}, {"iss": ISSUER, "sub": "jdoe"}),
        ({"format": "opaque", "id": "u-17"}, {"opaque": "u-17"}),
        ({"format": "account", "uri": "acct:jdoe@acme.com"}, {"account": "jdoe@acme.com"}),
        (
            {
                "format": "complex",
                "user": {"format": "email", "email": "jdoe@acme.com"},
                "tenant": {"format": "opaque", "id": "t"},
            },
            {"email": "jdoe@acme.com"},
        ),
        (
            {
                "format": "aliases",
                "identifiers": [{"format": "email", "email": "a@b.c"}, {"format": "opaque", "id": "7"}],
            },
            {"email": "a@b.c", "opaque": "7"},
        ),
    ],
)
def test_subject_identifiers_of_rfc_9493(subject: dict[str, Any], view: dict[str, str]) -> None:
    assert subject_view(subject) == view


@pytest.mark.parametrize(
    "subject",
    [
        None,
        "jdoe",
        {"format": "email"},
        {"format": "email", "email": 7},
        {"format": "complex", "tenant": {}},
        {"format": "aliases", "identifiers": []},
    ],
)
def test_unreadable_subjects_are_refused(subject: Any) -> None:
    with pytest.raises(SubjectError):
        subject_view(subject)


async def test_subject_inside_the_event_and_email_subjects_map_to_the_user(
    intake: Intake, key_server: KeyServer
) -> None:
    client, rt = await intake(ssf_source(key_server))
    legacy = set_claims()
    del legacy["sub_id"]
    legacy["events"] = {
        "https://schemas.openid.net/secevent/risc/event-type/account-purged": {
            "subject": {"subject_type": "iss-sub", "iss": ISSUER, "sub": "asmith"}
        }
    }
    by_email = set_claims(sub_id={"format": "email", "email": "jdoe@example.com"})
    for claims in (legacy, by_email):
        assert (await push(client, key_server.sign(claims))).status_code == 202
    users = [e["user"] for e in await stored(rt)]
    assert {"username": "asmith"} in users and {"email": "jdoe@example.com"} in users

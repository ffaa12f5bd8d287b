"""Standard Webhooks verification against the spec's published test vectors."""

from __future__ import annotations

import pytest
import standardwebhooks

from app.intake.signature import SignatureError, sign, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROTATED = "whsec_bGVhdmVyLXJvdGF0aW9uLXRlc3Qta2V5LTAwMDI="
BODY = (
    b'{"id":"evt-123","type":"user.terminated","occurred_at":"2026-11-20T17:00:00Z","source":"netiq-idm",'
    b'"user":{"username":"jdoe","email":"jdoe@acme.com"}}'
)
MSG, TS = "msg_2yZRt1f4dGqB7QkXo9WvP3sLhNc", 1795194005


def headers(signature: str, msg_id: str = MSG, ts: int = TS) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_reference_library_vector() -> None:
    sig = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_leaver_example_and_rotation_vectors() -> None:
    assert sign(SECRET, MSG, TS, BODY) == "v1,FiZrJof+zoWegYDm1B3wKjazIL9wQXwcxvAqDHg2nG8="
    assert sign(ROTATED, MSG, TS, BODY) == "v1,2sNiTbwAQkbOrmp+T93U9yufctc+q4WImq1LYJSfEW0="


def test_agrees_with_the_reference_library() -> None:
    wh = standardwebhooks.Webhook(SECRET)
    from datetime import UTC, datetime

    expected = wh.sign(MSG, datetime.fromtimestamp(TS, UTC), BODY.decode())
    assert sign(SECRET, MSG, TS, BODY) == expected


@pytest.mark.parametrize("secrets", [[SECRET], [ROTATED], [ROTATED, SECRET]])
def test_either_key_verifies_a_header_carrying_both(secrets: list[str]) -> None:
    both = f"{sign(SECRET, MSG, TS, BODY)} {sign(ROTATED, MSG, TS, BODY)}"
    assert verify(secrets, headers(both), BODY, now=TS) == MSG


def test_second_configured_secret_is_tried() -> None:
    assert verify([ROTATED, SECRET], headers(sign(SECRET, MSG, TS, BODY)), BODY, now=TS) == MSG


@pytest.mark.parametrize(
    ("hdrs", "message"),
    [
        ({}, "missing"),
        (headers("v1,AAAA"), "no signature matches"),
        (headers("garbage-without-comma"), "no v1 signature"),
        (headers("v1a,abc v2,xyz"), "no v1 signature"),
        (headers(sign(SECRET, MSG, TS, BODY), ts=TS - 301), "too old"),
        (headers(sign(SECRET, MSG, TS, BODY), ts=TS + 301), "too new"),
        (headers(sign(SECRET, "a.b", TS, BODY), msg_id="a.b"), "must not contain"),
        ({"webhook-id": MSG, "webhook-timestamp": "soon", "webhook-signature": "v1,x"}, "not an integer"),
    ],
)
def test_refusals(hdrs: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify([SECRET], hdrs, BODY, now=TS)


def test_tampered_body_is_refused() -> None:
    with pytest.raises(SignatureError):
        verify([SECRET], headers(sign(SECRET, MSG, TS, BODY)), BODY.replace(b"jdoe", b"jdo3"), now=TS)

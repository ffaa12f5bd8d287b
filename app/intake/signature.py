"""Standard Webhooks (v1, HMAC-SHA256) verification, written to the spec rather than wrapping the
reference library, which raises a bare ValueError on malformed headers and holds one secret only."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence


class SignatureError(Exception):
    """The request is not provably from the sender: answered 401, never logged with secrets."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not valid base64 after 'whsec_'") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message (used by `leaver events send` and tests)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> str:
    """Check the three headers against any of `secrets`; return the `webhook-id`."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if "." in msg_id or len(msg_id) > 255:
        raise SignatureError("webhook-id must not contain '.' and must be at most 255 characters")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise SignatureError("webhook-timestamp is too old")
    if timestamp > current + tolerance:
        raise SignatureError("webhook-timestamp is too new")
    offered = []
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and value:
            offered.append(value.encode())
    if not offered:
        raise SignatureError("no v1 signature in webhook-signature")
    for secret in secrets:
        expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1].encode()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return msg_id
    raise SignatureError("no signature matches")

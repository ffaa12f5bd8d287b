"""Secrets never reach the log: values under secret-looking keys and secret-looking strings are masked."""

from __future__ import annotations

from app.logs import redact


def test_secret_keys_are_masked() -> None:
    out = redact(None, "info", {"event": "x", "client_secret": "abc", "Authorization": "Bearer abc", "token": "t"})
    assert out == {"event": "x", "client_secret": "***", "Authorization": "***", "token": "***"}


def test_secret_looking_values_are_masked_anywhere() -> None:
    out = redact(
        None,
        "info",
        {
            "event": "call failed: Bearer eyJhbGciOi.eyJzdWIi.sig with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "path": "/api/request/users/abc/perms",
        },
    )
    assert "eyJ" not in out["event"] and "whsec_Mf" not in out["event"]
    assert out["path"] == "/api/request/users/abc/perms"

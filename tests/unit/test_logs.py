"""Secrets never reach the log: values under secret-looking keys and secret-looking strings are masked."""

from __future__ import annotations

import json

import pytest
import structlog

from app.logs import configure_logging, redact


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


def test_json_logs_keep_the_traceback_of_an_exception(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            structlog.get_logger("t").exception("step.failed", case=7)
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    finally:
        configure_logging("console", "info")
    assert line["event"] == "step.failed"
    assert line["exception"][0]["exc_type"] == "ValueError" and line["exception"][0]["frames"]

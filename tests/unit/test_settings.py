"""Configuration: clear errors naming the setting, secrets from files, the demo's generated secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.demo import prepare_demo
from app.settings import ConfigError, Settings, check_resend_grace, load_settings


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAVER_WORKERS", "many")
    with pytest.raises(ConfigError, match="LEAVER_WORKERS"):
        load_settings()


def test_webhook_secret_must_be_whsec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAVER_WEBHOOK_SECRET", "hunter2")
    with pytest.raises(ConfigError, match="LEAVER_WEBHOOK_SECRET") as err:
        load_settings()
    assert "hunter2" not in str(err.value)


def test_unknown_target_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LEAVER_TARGETS", '[{"name": "x", "system": "netiq-ig", "base_url": "https://ig", "clientsecret": "s"}]'
    )
    with pytest.raises(ConfigError, match=r"(?i)clientsecret"):
        load_settings()


def test_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wh").write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
    (tmp_path / "cs").write_text("s3cret\n")
    monkeypatch.setenv("LEAVER_WEBHOOK_SECRET_FILE", str(tmp_path / "wh"))
    monkeypatch.setenv(
        "LEAVER_TARGETS",
        f'[{{"name": "x", "system": "netiq-ig", "base_url": "https://ig", "client_secret_file": "{tmp_path / "cs"}"}}]',
    )
    settings = load_settings()
    assert settings.webhook_secrets == ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    assert settings.targets[0].client_secret is not None
    assert settings.targets[0].client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_missing_secret_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAVER_OPS_TOKEN_FILE", "/nonexistent/token")
    with pytest.raises(ConfigError, match="LEAVER_OPS_TOKEN_FILE"):
        load_settings()


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "leaver.yaml"
    cfg.write_text("workers: 7\ntargets:\n  - {name: ig, system: netiq-ig, base_url: 'https://ig.example'}\n")
    monkeypatch.setenv("LEAVER_CONFIG_FILE", str(cfg))
    settings = load_settings()
    assert settings.workers == 7 and settings.targets[0].name == "ig" and not settings.demo


def test_demo_generates_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    first = prepare_demo(Settings(data_dir=tmp_path))
    again = prepare_demo(Settings(data_dir=tmp_path))
    assert first.webhook_secrets and first.webhook_secrets == again.webhook_secrets
    assert first.webhook_secrets[0].startswith("whsec_")
    assert first.ops_token is not None and again.ops_token is not None
    assert first.ops_token.get_secret_value() == again.ops_token.get_secret_value()
    assert (tmp_path / "webhook-secret").stat().st_mode & 0o077 == 0


def test_resend_grace_shorter_than_a_send_plus_listing_lag_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAVER_RESEND_GRACE_SECONDS", "30")
    monkeypatch.setenv(
        "LEAVER_TARGETS",
        '[{"name": "x", "system": "netiq-ig", "base_url": "https://ig", "listing_lag_seconds": 10,'
        ' "http": {"read_timeout": 60}}]',
    )
    settings = load_settings()
    with pytest.raises(ConfigError, match=r"LEAVER_RESEND_GRACE_SECONDS: .* at least 58") as err:
        check_resend_grace(settings, settings.targets)  # lease 60 s: a send lasts at most 48 s
    assert "\n" not in str(err.value)
    check_resend_grace(settings.model_copy(update={"resend_grace_seconds": 58.0}), settings.targets)

"""Configuration: clear errors naming the setting, secrets from files, the demo's generated secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import check_resend_grace, check_targets, load_settings, safe_database_url
from app.demo import prepare_demo
from app.settings import ConfigError, Settings, TargetSettings


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


GOOD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LEAVER_WORKRES", "3", r"^LEAVER_WORKRES: unknown setting; did you mean LEAVER_WORKERS\?$"),
        ("LEAVER_TARGETS", "not json", r"^LEAVER_TARGETS: not valid JSON$"),
        ("LEAVER_DATABASE_URL", "sqlite:///x.db", r"^LEAVER_DATABASE_URL: driver 'sqlite' is not supported; use "),
        ("LEAVER_DATABASE_URL", "::nonsense::", r"^LEAVER_DATABASE_URL: not a database URL"),
        ("LEAVER_WEBHOOK_SECRET", "whsec_", r"^LEAVER_WEBHOOK_SECRET: the key is 0 bytes"),
        (
            "LEAVER_WEBHOOK_SECRET",
            "whsec_not*base64!",
            r"^LEAVER_WEBHOOK_SECRET: the part after 'whsec_' is not valid base64$",
        ),
        ("LEAVER_WEBHOOK_SECRET", "whsec_c2hvcnQ=", r"^LEAVER_WEBHOOK_SECRET: the key is 5 bytes"),
        ("LEAVER_OPS_TOKEN", "short", r"^LEAVER_OPS_TOKEN: 5 characters; use at least 20"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "\n" not in str(err.value)
    assert re.match(expected, str(err.value)), str(err.value)
    if name != "LEAVER_WORKRES" and len(value) > 8:
        assert value not in str(err.value)  # secrets and URLs are not echoed


def test_a_wrong_yaml_key_is_named_in_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "leaver.yaml"
    cfg.write_text("wokers: 7\n")
    monkeypatch.setenv("LEAVER_CONFIG_FILE", str(cfg))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg))}: wokers: unknown setting; did you mean workers\?$"):
        load_settings()
    cfg.write_text("workers: many\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(cfg))}: workers: "):
        load_settings()


def test_targets_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  - {name: ig, system: netiq-ig, base_url: 'https://ig.example', client_secret: s}\n")
    monkeypatch.setenv("LEAVER_TARGETS_FILE", str(path))
    settings = load_settings()
    assert [t.name for t in settings.targets] == ["ig"]
    path.write_text('[{"name": "ig", "system": "netiq-ig", "base_url": "ftp://x"}]')
    with pytest.raises(ConfigError, match=rf"^LEAVER_TARGETS_FILE \({re.escape(str(path))}\)\[0\]\.base_url: "):
        load_settings()


async def test_an_unknown_adapter_option_stops_the_start() -> None:
    target = TargetSettings(name="ig", system="netiq-ig", base_url="https://ig.example", options={"colour": "red"})
    with pytest.raises(ConfigError, match=r"LEAVER_TARGETS\[0\]\.options\.colour \(target 'ig'\): unknown option"):
        await check_targets([target])


def test_the_database_url_is_shown_without_its_password() -> None:
    shown = safe_database_url("postgresql+asyncpg://leaver:hunter2@db:5432/leaver")
    assert "hunter2" not in shown and shown.startswith("postgresql+asyncpg://leaver:***@db")

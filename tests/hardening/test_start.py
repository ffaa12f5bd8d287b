"""Starting `leaver` as an operator would: without configuration there is no silent demo; a bad
setting stops the start with one line naming it and exit code 2, never a traceback;
`--check-config` checks and exits; a taken port fails before any banner."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OPS_TOKEN, WEBHOOK_SECRET

TARGET = {
    "name": "iga",
    "system": "netiq-ig",
    "base_url": "http://127.0.0.1:9/unused",
    "client_id": "iac",
    "client_secret": "x",
    "username": "svc",
    "password": "y",
}


def leaver(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEAVER_")}
    clean |= {"LEAVER_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def configured(**more: str) -> dict[str, str]:
    return {
        "LEAVER_TARGETS": json.dumps([TARGET]),
        "LEAVER_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LEAVER_OPS_TOKEN": OPS_TOKEN,
        **more,
    }


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_without_targets_serve_refuses_instead_of_running_the_demo(tmp_path: Path) -> None:
    line = one_line(leaver(["serve", "--check-config"], tmp_path, LEAVER_OPS_TOKEN=OPS_TOKEN))
    assert line.startswith("leaver: no IGA target configured") and "--demo" in line
    assert not (tmp_path / "data" / "webhook-secret").exists()  # nothing of the demo was prepared


def test_check_config_checks_and_exits(tmp_path: Path) -> None:
    result = leaver(["serve", "--check-config"], tmp_path, **configured())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configuration OK: targets iga (netiq-ig)")
    demo = leaver(["serve", "--demo", "--check-config"], tmp_path)
    assert demo.returncode == 0 and "netiq-ig" in demo.stdout, demo.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LEAVER_WORKRES": "2"}, "leaver: LEAVER_WORKRES: unknown setting; did you mean LEAVER_WORKERS?"),
        ({"LEAVER_TARGETS": "not json"}, "leaver: LEAVER_TARGETS: not valid JSON"),
        ({"LEAVER_DATABASE_URL": "sqlite:///x.db"}, "leaver: LEAVER_DATABASE_URL: driver 'sqlite' is not supported"),
        ({"LEAVER_WEBHOOK_SECRET": "whsec_"}, "leaver: LEAVER_WEBHOOK_SECRET: the key is 0 bytes"),
        (
            {"LEAVER_TARGETS": json.dumps([{**TARGET, "options": {"colour": "red"}}])},
            "leaver: LEAVER_TARGETS[0].options.colour (target 'iga'): unknown option",
        ),
        (
            {"LEAVER_TARGETS": json.dumps([{**TARGET, "system": "oracle-iam"}])},
            "leaver: LEAVER_TARGETS[0].system: Input should be 'netiq-ig'",
        ),
        ({"LEAVER_RESEND_GRACE_SECONDS": "5"}, "leaver: LEAVER_RESEND_GRACE_SECONDS: 5s is shorter than"),
    ],
)
def test_a_bad_setting_stops_the_start_with_one_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    for command in (["serve", "--check-config"], ["worker", "--check-config"]):
        line = one_line(leaver(command, tmp_path, **configured(**env)))
        assert line.startswith(expected), line


def test_a_taken_port_fails_before_the_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(leaver(["serve", "--demo", "--port", str(port)], tmp_path))
    assert f"cannot listen on 127.0.0.1:{port}" in line


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"target": "nowhere"}, "leaver: LEAVER_SOURCES[0] (corp-idm).target: no IGA target named 'nowhere'"),
        ({"secrets": ["short"]}, "leaver: LEAVER_SOURCES[0] (corp-idm).secrets[0]: at least"),
        ({"user": {"username": "$.["}}, "leaver: LEAVER_SOURCES[0] (corp-idm): "),
    ],
)
def test_a_bad_intake_source_stops_the_api_start_with_one_line(
    tmp_path: Path, source: dict[str, object], expected: str
) -> None:
    sources = [
        {
            "name": "corp-idm",
            "format": "mapped",
            "secrets": ["s" * 32],
            "options": {"id": "$.id", "type": "$.type"},
            **source,
        }
    ]
    line = one_line(leaver(["serve", "--check-config"], tmp_path, **configured(LEAVER_SOURCES=json.dumps(sources))))
    assert line.startswith(expected), line

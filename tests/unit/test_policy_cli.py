"""`leaver policy check|explain`: exit codes, messages on stderr, and the explained plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli.policy import policy_app

ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = ROOT / "app" / "policy" / "demo_policy.yaml"
EXAMPLE_POLICY = ROOT / "examples" / "policy.yaml"
NOW = "2026-11-20T18:00:00Z"

runner = CliRunner()


def run(*args: str | Path) -> Any:
    return runner.invoke(policy_app, [str(arg) for arg in args])


def write_event(tmp_path: Path, **overrides: Any) -> Path:
    event: dict[str, Any] = {
        "id": "evt-123",
        "type": "user.terminated",
        "occurred_at": "2026-11-20T17:00:00Z",
        "effective_at": "2026-11-21T00:00:00Z",
        "source": "netiq-idm",
        "user": {"username": "jdoe", "email": "jdoe@example.com", "employee_id": "E1001"},
        "target": "netiq-ig",
        "attributes": {"employeeStatus": "T"},
    }
    event.update(overrides)
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    return path


def row(output: str, name: str) -> str:
    """The table line of the item called `name`."""
    lines = [line for line in output.splitlines() if f"  {name}  " in line]
    assert len(lines) == 1, output
    return lines[0]


# ------------------------------------------------------------------------------------------ check


def test_check_demo_policy() -> None:
    result = run("check", DEMO_POLICY)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "OK: 3 rules, default: remove (effective)"


def test_check_example_policy() -> None:
    result = run("check", EXAMPLE_POLICY)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "OK: 3 rules, default: remove (effective)"


def test_check_reports_non_remove_default_and_singular(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\ndefault: {action: hold, reason: review}\nrules: [{name: a, match: {}, action: keep, reason: k}]\n",
        encoding="utf-8",
    )
    result = run("check", path)
    assert result.exit_code == 0
    assert result.stdout.strip() == "OK: 1 rule, default: hold"


def test_check_bad_policy_exits_2_with_message_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\ndefault: {action: remove, reason: d}\n"
        "rules:\n  - {name: mailbox-grace, match: {}, action: remove, when: effective+P1M, reason: m}\n",
        encoding="utf-8",
    )
    result = run("check", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "rule 'mailbox-grace' (rules[0]).when: 'effective+P1M' — months are not supported" in result.stderr
    assert str(path) in result.stderr


def test_check_yaml_syntax_error_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\ndefault: {action: remove\n", encoding="utf-8")
    result = run("check", path)
    assert result.exit_code == 2
    assert "YAML syntax error at line" in result.stderr


def test_check_missing_file_exits_2(tmp_path: Path) -> None:
    result = run("check", tmp_path / "absent.yaml")
    assert result.exit_code == 2
    assert "no such policy file" in result.stderr


# ---------------------------------------------------------------------------------------- explain


def test_explain_demo_data_for_jdoe(tmp_path: Path) -> None:
    result = run("explain", EXAMPLE_POLICY, write_event(tmp_path), "--now", NOW)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0].split() == ["TYPE", "APPLICATION", "NAME", "ACTION", "WHEN", "RULE", "REASON"]
    mailbox = row(out, "Mailbox jdoe")
    assert "mailbox-grace" in mailbox and "2026-12-21T00:00:00Z" in mailbox
    finance = row(out, "Finance RW")
    assert "default" in finance and "2026-11-21T00:00:00Z" in finance
    assert "10 items: 10 remove, 0 keep, 0 hold" in out


def test_explain_demo_policy_keeps_birthright(tmp_path: Path) -> None:
    result = run("explain", DEMO_POLICY, write_event(tmp_path), "--now", NOW)
    assert result.exit_code == 0, result.output
    staff = row(result.stdout, "All Staff")
    assert "keep" in staff and "birthright-stays" in staff
    assert staff.endswith("Birthright access follows the IDM account; it ends at the source")


def test_explain_disabled_event_holds_privileged_access(tmp_path: Path) -> None:
    result = run("explain", EXAMPLE_POLICY, write_event(tmp_path, type="user.disabled"), "--now", NOW)
    assert result.exit_code == 0, result.output
    admins = row(result.stdout, "Domain Admins")
    assert "hold" in admins and "privileged-needs-approval" in admins


@pytest.mark.parametrize(
    "user",
    [
        {"employee_id": "E1001"},
        {"email": "JDOE@example.com"},
        {"dn": "cn=jdoe,ou=users,o=example"},
    ],
)
def test_explain_finds_demo_user_by_any_identifier(tmp_path: Path, user: dict[str, str]) -> None:
    result = run("explain", DEMO_POLICY, write_event(tmp_path, user=user), "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "Mailbox jdoe" in result.stdout


def test_explain_demo_user_attributes_come_from_the_demo_person(tmp_path: Path) -> None:
    result = run("explain", DEMO_POLICY, write_event(tmp_path, user={"username": "lhold"}), "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "3 items: 0 remove, 3 keep, 0 hold" in result.stdout
    assert "legal-hold" in row(result.stdout, "Domain Admins")


def test_explain_user_attrs_override_demo_attributes(tmp_path: Path) -> None:
    result = run("explain", DEMO_POLICY, write_event(tmp_path), "--now", NOW, "--user-attrs", '{"legalHold": "true"}')
    assert result.exit_code == 0, result.output
    assert "10 items: 0 remove, 10 keep, 0 hold" in result.stdout


def test_explain_with_items_file(tmp_path: Path) -> None:
    items = [
        {"id": "e-1", "type": "entitlement", "name": "Mailbox someone", "application": "Exchange Online"},
        {"id": "r-1", "type": "role", "name": "Prod Admins", "privileged": True, "granted_by": "direct"},
        {"id": "b-1", "type": "entitlement", "name": "All Staff", "granted_by": "birthright", "removable": False},
    ]
    items_path = tmp_path / "items.json"
    items_path.write_text(json.dumps(items), encoding="utf-8")
    event = write_event(tmp_path, user={"username": "not-in-the-demo"}, type="user.disabled")
    result = run("explain", EXAMPLE_POLICY, event, "--items", items_path, "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "mailbox-grace" in row(result.stdout, "Mailbox someone")
    assert "privileged-needs-approval" in row(result.stdout, "Prod Admins")
    assert "default" in row(result.stdout, "All Staff")
    assert "3 items: 2 remove, 0 keep, 1 hold" in result.stdout


def test_explain_items_file_with_user_attrs(tmp_path: Path) -> None:
    items_path = tmp_path / "items.json"
    items_path.write_text(json.dumps([{"id": "x", "type": "account", "name": "x"}]), encoding="utf-8")
    result = run(
        "explain",
        EXAMPLE_POLICY,
        write_event(tmp_path, user={"username": "nobody"}),
        "--items",
        items_path,
        "--user-attrs",
        '{"legalHold": true}',
        "--now",
        NOW,
    )
    assert result.exit_code == 0, result.output
    assert "legal-hold" in row(result.stdout, "x")


def test_explain_target_option_feeds_target_match(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\ndefault: {action: remove, reason: d}\n"
        "rules: [{name: isc-only, match: {target: isc-prod}, action: keep, reason: k}]\n",
        encoding="utf-8",
    )
    event = write_event(tmp_path)
    assert "isc-only" not in run("explain", policy, event, "--now", NOW).stdout
    assert "isc-only" in run("explain", policy, event, "--now", NOW, "--target", "isc-prod").stdout


def test_explain_now_option_sets_due_time_of_now_rules(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\ndefault: {action: remove, when: now, reason: d}\n", encoding="utf-8")
    result = run("explain", policy, write_event(tmp_path), "--now", "2030-01-02T03:04:05+01:00")
    assert result.exit_code == 0, result.output
    assert "2030-01-02T02:04:05Z" in row(result.stdout, "Finance RW")


def test_explain_unknown_user_without_items_exits_2(tmp_path: Path) -> None:
    result = run("explain", DEMO_POLICY, write_event(tmp_path, user={"username": "nobody"}))
    assert result.exit_code == 2
    assert "no demo user matches" in result.stderr
    assert "--items" in result.stderr


def test_explain_ambiguous_demo_user_exits_2(tmp_path: Path) -> None:
    result = run("explain", DEMO_POLICY, write_event(tmp_path, user={"email": "twins@example.com"}))
    assert result.exit_code == 2
    assert "several demo users (twin1, twin2)" in result.stderr


def test_explain_bad_event_exits_2(tmp_path: Path) -> None:
    result = run("explain", DEMO_POLICY, write_event(tmp_path, type="user.deleted"))
    assert result.exit_code == 2
    assert "not a valid event" in result.stderr
    assert "event.type" in result.stderr


def test_explain_event_not_json_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text("{not json", encoding="utf-8")
    result = run("explain", DEMO_POLICY, path)
    assert result.exit_code == 2
    assert "not a valid event" in result.stderr


def test_explain_missing_event_file_exits_2(tmp_path: Path) -> None:
    result = run("explain", DEMO_POLICY, tmp_path / "absent.json")
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_explain_bad_policy_exits_2(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\n", encoding="utf-8")
    result = run("explain", policy, write_event(tmp_path))
    assert result.exit_code == 2
    assert "default: required" in result.stderr


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ('[{"id": "x", "type": "group", "name": "x"}]', "items[0].type"),
        ('[{"id": "x", "type": "role", "name": "x", "colour": "red"}]', "items[0].colour"),
        ('{"id": "x"}', "not a JSON list of access items"),
        ("[", "not a JSON list of access items"),
    ],
)
def test_explain_bad_items_exit_2(tmp_path: Path, items: str, fragment: str) -> None:
    items_path = tmp_path / "items.json"
    items_path.write_text(items, encoding="utf-8")
    result = run("explain", DEMO_POLICY, write_event(tmp_path), "--items", items_path)
    assert result.exit_code == 2
    assert fragment in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--user-attrs", "{oops"), "--user-attrs: not valid JSON"),
        (("--user-attrs", "[1, 2]"), "expected a JSON object"),
        (("--now", "yesterday"), "--now 'yesterday': not an ISO 8601 time"),
    ],
)
def test_explain_bad_options_exit_2(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    result = run("explain", DEMO_POLICY, write_event(tmp_path), *args)
    assert result.exit_code == 2
    assert fragment in result.stderr

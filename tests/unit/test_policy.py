"""The policy: loading and validation (errors name rule and field) and evaluation (first match wins)."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import AccessItem, IgaUser, LeaverEvent
from app.policy.evaluate import Decision, Plan, evaluate, explain
from app.policy.model import (
    Policy,
    PolicyError,
    load_policy,
    parse_duration,
    parse_policy,
    parse_when,
)

ROOT = Path(__file__).resolve().parents[2]
OCCURRED = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
EFFECTIVE = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 17, 0, 5, tzinfo=UTC)
DEFAULT_REASON = "Leaver: remove all remaining access"

EXAMPLE = """
version: 1
default: {action: remove, when: effective, reason: "Leaver: remove all remaining access"}
rules:
  - name: legal-hold
    match: {user: {legalHold: "true"}}
    action: keep
    reason: "Legal hold: access changes need counsel"
  - name: mailbox-grace
    match: {application: "Exchange Online", type: entitlement, name: "Mailbox*"}
    action: remove
    when: effective+P30D
    reason: "Mailbox kept 30 days for handover"
  - name: privileged-needs-approval
    match: {privileged: true, event: [user.disabled]}
    action: hold
    reason: "Disabled, not terminated: an operator decides on privileged access"
"""


# ------------------------------------------------------------------------------------------ helpers


def make_event(
    type_: str = "user.terminated",
    *,
    effective_at: datetime | None = EFFECTIVE,
    attributes: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
) -> LeaverEvent:
    return LeaverEvent.model_validate(
        {
            "id": "evt-1",
            "type": type_,
            "occurred_at": OCCURRED.isoformat(),
            "effective_at": effective_at.isoformat() if effective_at else None,
            "user": user
            or {
                "dn": "cn=jdoe,ou=users,o=example",
                "username": "jdoe",
                "email": "jdoe@example.com",
                "employee_id": "E1001",
            },
            "target": "netiq-prod",
            "attributes": attributes or {},
        }
    )


def make_item(
    name: str = "Finance RW",
    *,
    id_: str | None = None,
    type_: Any = "entitlement",
    application: str | None = "Active Directory",
    privileged: bool = False,
    granted_by: Any = "direct",
) -> AccessItem:
    return AccessItem(
        id=id_ or f"{type_}:{name}",
        type=type_,
        name=name,
        application=application,
        privileged=privileged,
        granted_by=granted_by,
    )


USER = IgaUser(id="u-1", attributes={"department": "Finance"})


def one_rule(match: dict[str, Any], **rule: Any) -> Policy:
    """A policy whose single rule `r` keeps what `match` selects; everything else is removed."""
    body = {"name": "r", "match": match, "action": "keep", "reason": "matched"}
    body.update(rule)
    return Policy.model_validate(
        {"version": 1, "default": {"action": "remove", "reason": DEFAULT_REASON}, "rules": [body]}
    )


def decide(
    policy: Policy,
    item: AccessItem | None = None,
    *,
    event: LeaverEvent | None = None,
    user: IgaUser = USER,
    target: str = "netiq-prod",
    now: datetime = NOW,
) -> Decision:
    plan = evaluate(policy, event or make_event(), user, [item or make_item()], target=target, now=now)
    assert len(plan.decisions) == 1
    return plan.decisions[0]


def matched(match: dict[str, Any], item: AccessItem | None = None, **kwargs: Any) -> bool:
    return decide(one_rule(match), item, **kwargs).rule == "r"


def policy_error(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(textwrap.dedent(text), source="p.yaml")
    return str(caught.value)


# ------------------------------------------------------------------------------------ first match


def test_first_matching_rule_wins_over_later_matching_rules() -> None:
    policy = parse_policy(
        textwrap.dedent(
            """
            version: 1
            default: {action: remove, reason: d}
            rules:
              - {name: first, match: {application: "Active*"}, action: keep, reason: one}
              - {name: second, match: {application: "Active Directory"}, action: hold, reason: two}
              - {name: third, match: {}, action: remove, when: now, reason: three}
            """
        )
    )
    decision = decide(policy, make_item())
    assert (decision.rule, decision.action, decision.reason) == ("first", "keep", "one")


def test_later_rule_decides_when_earlier_rules_do_not_match() -> None:
    policy = parse_policy(EXAMPLE)
    decision = decide(policy, make_item("Mailbox jdoe", application="Exchange Online"))
    assert decision.rule == "mailbox-grace"
    assert decision.reason == "Mailbox kept 30 days for handover"


def test_default_is_used_when_no_rule_matches() -> None:
    decision = decide(parse_policy(EXAMPLE), make_item("VPN Users"))
    assert decision.rule == "default"
    assert decision.action == "remove"
    assert decision.reason == DEFAULT_REASON
    assert decision.due_at == EFFECTIVE


def test_policy_without_rules_applies_default_to_everything() -> None:
    policy = parse_policy("version: 1\ndefault: {action: hold, reason: review all}\n")
    items = [make_item("a"), make_item("b", type_="role")]
    plan = evaluate(policy, make_event(), USER, items, target="t", now=NOW)
    assert [(d.rule, d.action, d.due_at) for d in plan.decisions] == [("default", "hold", None)] * 2


def test_example_policy_decides_each_demo_kind_of_item() -> None:
    policy = parse_policy(EXAMPLE)
    items = [
        make_item("Domain Admins", privileged=True),
        make_item("Mailbox jdoe", application="Exchange Online"),
        make_item("VPN Users"),
    ]
    disabled = evaluate(policy, make_event("user.disabled"), USER, items, target="t", now=NOW)
    assert [(d.rule, d.action) for d in disabled.decisions] == [
        ("privileged-needs-approval", "hold"),
        ("mailbox-grace", "remove"),
        ("default", "remove"),
    ]
    terminated = evaluate(policy, make_event("user.terminated"), USER, items, target="t", now=NOW)
    assert terminated.decisions[0].rule == "default"
    legal = IgaUser(id="u", attributes={"legalHold": "true"})
    held = evaluate(policy, make_event(), legal, items, target="t", now=NOW)
    assert {(d.rule, d.action) for d in held.decisions} == {("legal-hold", "keep")}


def test_empty_item_list_gives_empty_plan() -> None:
    assert evaluate(parse_policy(EXAMPLE), make_event(), USER, [], target="t", now=NOW) == Plan(decisions=[])


# ------------------------------------------------------------------------------------- match keys


def test_empty_match_matches_everything() -> None:
    assert matched({}, make_item("anything", type_="account", application=None))


@pytest.mark.parametrize(
    ("events", "event_type", "expected"),
    [
        ("user.disabled", "user.disabled", True),
        ("user.disabled", "user.terminated", False),
        (["user.disabled", "user.terminated"], "user.terminated", True),
        (["user.enabled"], "user.terminated", False),
    ],
)
def test_match_event(events: Any, event_type: str, expected: bool) -> None:
    assert matched({"event": events}, event=make_event(event_type)) is expected


@pytest.mark.parametrize(
    ("targets", "target", "expected"),
    [
        ("netiq-prod", "netiq-prod", True),
        ("netiq-prod", "isc-prod", False),
        (["isc-prod", "netiq-prod"], "netiq-prod", True),
    ],
)
def test_match_target_uses_the_target_argument(targets: Any, target: str, expected: bool) -> None:
    assert matched({"target": targets}, target=target) is expected


def test_match_target_ignores_the_events_own_target() -> None:
    # The event says netiq-prod; the case being planned is for another target.
    assert not matched({"target": "netiq-prod"}, target="isc-prod")


@pytest.mark.parametrize(
    ("types", "item_type", "expected"),
    [
        ("role", "role", True),
        ("role", "entitlement", False),
        (["application", "account"], "account", True),
        (["application", "account"], "access_profile", False),
    ],
)
def test_match_type(types: Any, item_type: str, expected: bool) -> None:
    assert matched({"type": types}, make_item(type_=item_type)) is expected


@pytest.mark.parametrize(
    ("patterns", "application", "expected"),
    [
        ("Exchange Online", "Exchange Online", True),
        ("exchange online", "EXCHANGE ONLINE", True),
        ("Exchange*", "Exchange Online", True),
        ("*online", "Exchange Online", True),
        ("Exchange", "Exchange Online", False),
        ("SAP ?RP", "SAP ERP", True),
        (["SAP*", "Exchange*"], "Exchange Online", True),
        (["SAP*", "Jira"], "Exchange Online", False),
        ("*", None, False),
    ],
)
def test_match_application_glob(patterns: Any, application: str | None, expected: bool) -> None:
    assert matched({"application": patterns}, make_item(application=application)) is expected


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        ("Mailbox*", "Mailbox jdoe", True),
        ("mailbox*", "MAILBOX JDOE", True),
        ("Mailbox*", "Shared Mailbox", False),
        ("*Admin*", "Domain Admins", True),
        (["VPN*", "Wiki*"], "Wiki Editors", True),
        (["VPN*", "Wiki*"], "Finance RW", False),
    ],
)
def test_match_name_glob(patterns: Any, name: str, expected: bool) -> None:
    assert matched({"name": patterns}, make_item(name)) is expected


@pytest.mark.parametrize(
    ("ids", "item_id", "expected"),
    [
        ("ent-1", "ent-1", True),
        ("ent-1", "ent-10", False),
        ("ent-*", "ent-1", False),  # exact, not a glob
        (["ent-2", "ent-1"], "ent-1", True),
    ],
)
def test_match_id_is_exact(ids: Any, item_id: str, expected: bool) -> None:
    assert matched({"id": ids}, make_item(id_=item_id)) is expected


@pytest.mark.parametrize(("wanted", "privileged"), [(True, True), (False, False)])
def test_match_privileged(wanted: bool, privileged: bool) -> None:
    assert matched({"privileged": wanted}, make_item(privileged=privileged))
    assert not matched({"privileged": wanted}, make_item(privileged=not privileged))


@pytest.mark.parametrize(
    ("sources", "granted_by", "expected"),
    [
        ("birthright", "birthright", True),
        ("birthright", "direct", False),
        (["role", "birthright"], "role", True),
        (["role", "birthright"], "direct", False),
    ],
)
def test_match_granted_by(sources: Any, granted_by: str, expected: bool) -> None:
    assert matched({"granted_by": sources}, make_item(granted_by=granted_by)) is expected


def test_all_given_keys_must_match() -> None:
    match = {"application": "Exchange Online", "type": "entitlement", "name": "Mailbox*"}
    assert matched(match, make_item("Mailbox jdoe", application="Exchange Online"))
    assert not matched(match, make_item("Mailbox jdoe", application="Exchange Online", type_="role"))
    assert not matched(match, make_item("Calendar", application="Exchange Online"))
    assert not matched(match, make_item("Mailbox jdoe", application="Gmail"))


def test_match_user_attribute_glob_is_case_insensitive() -> None:
    user = IgaUser(id="u", attributes={"department": "Finance EMEA"})
    assert matched({"user": {"department": "finance*"}}, user=user)
    assert matched({"user": {"department": "FINANCE EMEA"}}, user=user)
    assert not matched({"user": {"department": "HR*"}}, user=user)


def test_match_user_needs_every_attribute() -> None:
    user = IgaUser(id="u", attributes={"department": "Finance", "country": "DE"})
    assert matched({"user": {"department": "Finance", "country": "DE"}}, user=user)
    assert not matched({"user": {"department": "Finance", "country": "FR"}}, user=user)


def test_match_user_missing_attribute_never_matches_even_star() -> None:
    assert not matched({"user": {"costCenter": "*"}}, user=IgaUser(id="u"))


def test_match_user_compares_booleans_and_numbers_as_text() -> None:
    user = IgaUser(id="u", attributes={"legalHold": True, "level": 7})
    assert matched({"user": {"legalHold": "true"}}, user=user)
    assert matched({"user": {"level": "7"}}, user=user)
    assert not matched({"user": {"legalHold": "false"}}, user=user)


def test_match_user_unquoted_yaml_boolean_means_the_text() -> None:
    policy = parse_policy(
        "version: 1\ndefault: {action: remove, reason: d}\n"
        "rules: [{name: r, match: {user: {legalHold: true}}, action: keep, reason: k}]\n"
    )
    assert policy.rules[0].match.user == {"legalHold": "true"}
    assert decide(policy, user=IgaUser(id="u", attributes={"legalHold": "TRUE"})).rule == "r"


def test_match_user_multi_valued_attribute_matches_any_value() -> None:
    user = IgaUser(id="u", attributes={"groups": ["staff", "legal-hold"]})
    assert matched({"user": {"groups": "legal-*"}}, user=user)
    assert not matched({"user": {"groups": "admins"}}, user=user)


def test_user_attribute_iga_user_comes_before_event_attributes() -> None:
    event = make_event(attributes={"legalHold": "false"})
    user = IgaUser(id="u", attributes={"legalHold": "true"})
    assert matched({"user": {"legalHold": "true"}}, user=user, event=event)
    assert not matched({"user": {"legalHold": "false"}}, user=user, event=event)


def test_user_attribute_falls_back_to_event_attributes() -> None:
    event = make_event(attributes={"employeeStatus": "T"})
    assert matched({"user": {"employeeStatus": "t"}}, user=IgaUser(id="u"), event=event)


def test_user_attribute_none_in_iga_falls_through_to_event() -> None:
    event = make_event(attributes={"legalHold": "true"})
    assert matched({"user": {"legalHold": "true"}}, user=IgaUser(id="u", attributes={"legalHold": None}), event=event)


def test_user_attribute_event_attributes_come_before_event_user_fields() -> None:
    event = make_event(attributes={"username": "someone-else"})
    assert matched({"user": {"username": "someone-*"}}, user=IgaUser(id="u"), event=event)
    assert not matched({"user": {"username": "jdoe"}}, user=IgaUser(id="u"), event=event)


@pytest.mark.parametrize(
    ("field", "pattern"),
    [("dn", "cn=jdoe,*"), ("username", "JDOE"), ("email", "*@example.com"), ("employee_id", "E1*")],
)
def test_user_attribute_falls_back_to_event_user_fields(field: str, pattern: str) -> None:
    assert matched({"user": {field: pattern}}, user=IgaUser(id="u"), event=make_event())


def test_user_attribute_event_user_field_missing_does_not_match() -> None:
    event = make_event(user={"username": "jdoe"})
    assert not matched({"user": {"email": "*"}}, user=IgaUser(id="u"), event=event)


def test_user_attribute_only_the_four_identifier_fields_are_looked_up_on_the_event_user() -> None:
    event = make_event(user={"username": "jdoe", "ids": {"netiq-prod": "x1"}})
    assert not matched({"user": {"ids": "*"}}, user=IgaUser(id="u"), event=event)


# ------------------------------------------------------------------------------------------- when


def when_policy(when: str | None) -> Policy:
    rule: dict[str, Any] = {"name": "r", "match": {}, "action": "remove", "reason": "why"}
    if when is not None:
        rule["when"] = when
    return Policy.model_validate({"version": 1, "default": {"action": "keep", "reason": "k"}, "rules": [rule]})


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (None, EFFECTIVE),
        ("effective", EFFECTIVE),
        ("now", NOW),
        ("effective+P30D", datetime(2026, 12, 21, 0, 0, tzinfo=UTC)),
        ("effective+PT12H", datetime(2026, 11, 21, 12, 0, tzinfo=UTC)),
        ("effective+P1W", datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),
        ("effective+P1DT2H", datetime(2026, 11, 22, 2, 0, tzinfo=UTC)),
        ("effective+PT90M", datetime(2026, 11, 21, 1, 30, tzinfo=UTC)),
        ("effective+PT45S", datetime(2026, 11, 21, 0, 0, 45, tzinfo=UTC)),
        ("effective+P1DT1H1M1S", datetime(2026, 11, 22, 1, 1, 1, tzinfo=UTC)),
        ("effective + p2d", datetime(2026, 11, 23, 0, 0, tzinfo=UTC)),
        ("effective+P0D", EFFECTIVE),
    ],
)
def test_when_forms_give_exact_due_times(when: str | None, expected: datetime) -> None:
    decision = decide(when_policy(when))
    assert decision.action == "remove"
    assert decision.due_at == expected
    assert decision.due_at is not None and decision.due_at.utcoffset() == timedelta(0)


def test_effective_falls_back_to_occurred_at() -> None:
    event = make_event(effective_at=None)
    assert decide(when_policy("effective"), event=event).due_at == OCCURRED
    assert decide(when_policy("effective+P1D"), event=event).due_at == OCCURRED + timedelta(days=1)


def test_due_at_is_converted_to_utc() -> None:
    now = datetime(2026, 11, 20, 19, 0, tzinfo=timezone(timedelta(hours=2)))
    due = decide(when_policy("now"), now=now).due_at
    assert due == datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    assert due is not None and due.tzinfo == UTC


def test_due_in_the_past_is_kept_as_computed() -> None:
    # The pipeline decides what "past" means; the policy does not clamp to now.
    late_now = EFFECTIVE + timedelta(days=60)
    assert decide(when_policy("effective+P30D"), now=late_now).due_at == EFFECTIVE + timedelta(days=30)


@pytest.mark.parametrize("action", ["keep", "hold"])
def test_keep_and_hold_have_no_due_time(action: str) -> None:
    policy = one_rule({}, action=action)
    assert decide(policy).due_at is None
    default_only = Policy.model_validate({"version": 1, "default": {"action": action, "reason": "x"}, "rules": []})
    assert decide(default_only).due_at is None


def test_default_when_is_honoured() -> None:
    policy = parse_policy("version: 1\ndefault: {action: remove, when: effective+PT1H, reason: d}\n")
    assert decide(policy).due_at == EFFECTIVE + timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", timedelta(days=30)),
        ("PT12H", timedelta(hours=12)),
        ("P1W", timedelta(weeks=1)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT5M", timedelta(minutes=5)),
        ("PT30S", timedelta(seconds=30)),
        ("P1W2D", timedelta(days=9)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("P1M", "months are not supported"),
        ("P1Y", "years are not supported"),
        ("P1Y2M", "years are not supported"),
        ("P", "not an ISO 8601 duration"),
        ("PT", "not an ISO 8601 duration"),
        ("P1DT", "not an ISO 8601 duration"),
        ("30D", "not an ISO 8601 duration"),
        ("P1.5D", "not an ISO 8601 duration"),
        ("P-1D", "not an ISO 8601 duration"),
        ("P99999D", "maximum"),
        ("P99999999999999999999D", "maximum"),
    ],
)
def test_parse_duration_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_duration(text)


def test_minutes_in_the_time_part_are_not_months() -> None:
    assert parse_duration("PT1M") == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("later", "expected now, effective or effective+DURATION"),
        ("effective+", "expected now, effective or effective+DURATION"),
        ("effective-P1D", "only delays after"),
        ("now+P1D", "only allowed after 'effective'"),
        ("occurred+P1D", "expected now, effective"),
    ],
)
def test_parse_when_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_when(text)


def test_when_keeps_its_text_for_display() -> None:
    assert str(parse_when("effective+p30d")) == "effective+P30D"
    assert str(parse_when("now")) == "now"
    assert parse_policy(EXAMPLE).rules[1].describe() == "remove (effective+P30D)"


# ------------------------------------------------------------------------------------- wall clock


def test_evaluate_uses_only_the_now_it_is_given() -> None:
    """A `now` decades away from the real clock must come back unchanged."""
    policy = when_policy("now")
    for now in (datetime(1999, 1, 1, tzinfo=UTC), datetime(2090, 6, 1, 12, 30, tzinfo=UTC)):
        assert decide(policy, now=now).due_at == now


def test_evaluate_is_deterministic() -> None:
    policy = parse_policy(EXAMPLE)
    items = [make_item(f"item {n}", privileged=n % 2 == 0) for n in range(20)]
    event = make_event("user.disabled")
    first = evaluate(policy, event, USER, items, target="t", now=NOW)
    second = evaluate(policy, event, USER, items, target="t", now=NOW)
    assert first == second


def test_evaluate_does_not_call_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.policy.evaluate as module

    class NoClock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> NoClock:
            raise AssertionError("evaluate read the clock")

        @classmethod
        def utcnow(cls) -> NoClock:
            raise AssertionError("evaluate read the clock")

    monkeypatch.setattr(module, "datetime", NoClock)
    assert decide(when_policy("now")).due_at == NOW


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(when_policy("now"), now=datetime(2026, 11, 20, 17, 0))


# ------------------------------------------------------------------------------------- validation


def test_unknown_key_in_match_names_rule_and_field() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - {name: first, match: {}, action: keep, reason: k}
          - {name: typo, match: {aplication: SAP}, action: keep, reason: k}
        """
    )
    assert "rule 'typo' (rules[1]).match.aplication: unknown key" in message
    assert "application" in message  # the allowed keys are listed


def test_unknown_key_on_rule_and_top_level() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d, note: x}
        rulez: []
        rules:
          - {name: r, match: {}, action: keep, reason: k, comment: x}
        """
    )
    assert "default.note: unknown key" in message
    assert "rulez: unknown key" in message
    assert "rule 'r' (rules[0]).comment: unknown key" in message


def test_bad_action_names_rule_and_field() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - {name: nuke, match: {}, action: delete, reason: k}
        """
    )
    assert "rule 'nuke' (rules[0]).action: 'delete'" in message
    assert "'remove', 'keep' or 'hold'" in message


@pytest.mark.parametrize(
    ("match", "field"),
    [
        ("{type: group}", "match.type[0]"),
        ("{granted_by: inherited}", "match.granted_by[0]"),
        ("{event: user.deleted}", "match.event[0]"),
        ("{privileged: 'yes please'}", "match.privileged"),
        ("{privileged: 'true'}", "match.privileged"),
        ("{application: []}", "match.application"),
        ("{user: {legalHold: [a, b]}}", "match.user.legalHold"),
    ],
)
def test_bad_match_values_name_rule_and_field(match: str, field: str) -> None:
    message = policy_error(
        f"""
        version: 1
        default: {{action: remove, reason: d}}
        rules:
          - {{name: r, match: {match}, action: keep, reason: k}}
        """
    )
    assert f"rule 'r' (rules[0]).{field}:" in message


def test_missing_default() -> None:
    message = policy_error("version: 1\nrules: []\n")
    assert "default: required" in message


def test_missing_version_and_wrong_version() -> None:
    assert "version: required" in policy_error("default: {action: remove, reason: d}\n")
    assert "version: 2 is not supported" in policy_error("version: 2\ndefault: {action: remove, reason: d}\n")


def test_rule_without_name_is_named_by_index() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - {match: {}, action: keep, reason: k}
        """
    )
    assert "rules[0].name: required" in message


def test_rule_without_match_is_an_error() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - {name: everything, action: keep, reason: k}
        """
    )
    assert "rule 'everything' (rules[0]).match: required" in message


def test_duplicate_rule_names() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - {name: same, match: {}, action: keep, reason: k}
          - {name: other, match: {}, action: keep, reason: k}
          - {name: same, match: {}, action: hold, reason: h}
        """
    )
    assert "rule 'same' (rules[2]).name: duplicate, already used by rules[0]" in message


@pytest.mark.parametrize("name", ["Mailbox", "mail box", "-lead", "mail_box", ""])
def test_bad_rule_names(name: str) -> None:
    message = policy_error(
        f"""
        version: 1
        default: {{action: remove, reason: d}}
        rules:
          - {{name: '{name}', match: {{}}, action: keep, reason: k}}
        """
    )
    assert "(rules[0]).name:" in message or "rules[0].name:" in message
    assert "lowercase letters, digits and '-'" in message


def test_default_is_a_reserved_rule_name() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - {name: default, match: {}, action: keep, reason: k}
        """
    )
    assert "rule 'default' (rules[0]).name: 'default' is reserved" in message


def test_months_are_refused_with_the_documented_message() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - {name: keep-me, match: {}, action: keep, reason: k}
          - name: mailbox-grace
            match: {name: "Mailbox*"}
            action: remove
            when: effective+P1M
            reason: Mailbox kept
        """
    )
    assert (
        "rule 'mailbox-grace' (rules[1]).when: 'effective+P1M' — months are not supported, use days (P30D)" in message
    )


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ("effective+30 days", "not an ISO 8601 duration"),
        ("tomorrow", "expected now, effective or effective+DURATION"),
        ("effective+P2Y", "years are not supported"),
        ("30", "expected a string"),
    ],
)
def test_bad_when_names_rule_and_field(when: str, fragment: str) -> None:
    message = policy_error(
        f"""
        version: 1
        default: {{action: remove, reason: d}}
        rules:
          - {{name: later, match: {{}}, action: remove, when: {when}, reason: k}}
        """
    )
    assert "rule 'later' (rules[0]).when:" in message
    assert fragment in message


@pytest.mark.parametrize("action", ["keep", "hold"])
def test_when_on_keep_or_hold_is_an_error(action: str) -> None:
    message = policy_error(
        f"""
        version: 1
        default: {{action: remove, reason: d}}
        rules:
          - {{name: r, match: {{}}, action: {action}, when: now, reason: k}}
        """
    )
    assert f"rule 'r' (rules[0]).when: 'when' only applies to action remove, not {action}" in message


def test_when_on_a_keep_default_is_an_error() -> None:
    message = policy_error("version: 1\ndefault: {action: keep, when: effective, reason: d}\n")
    assert "default.when: 'when' only applies to action remove, not keep" in message


@pytest.mark.parametrize("reason", ['""', '"   "'])
def test_empty_reason_is_an_error(reason: str) -> None:
    message = policy_error(
        f"""
        version: 1
        default: {{action: remove, reason: d}}
        rules:
          - {{name: r, match: {{}}, action: keep, reason: {reason}}}
        """
    )
    assert "rule 'r' (rules[0]).reason: must not be empty" in message
    default_message = policy_error(f"version: 1\ndefault: {{action: remove, reason: {reason}}}\n")
    assert "default.reason: must not be empty" in default_message


def test_missing_reason_is_an_error() -> None:
    assert "default.reason: required" in policy_error("version: 1\ndefault: {action: remove}\n")


def test_reason_is_trimmed() -> None:
    policy = parse_policy("version: 1\ndefault: {action: remove, reason: '  spaced  '}\n")
    assert policy.default.reason == "spaced"


def test_several_problems_are_all_reported() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - {name: a, match: {typ: role}, action: keep, reason: k}
          - {name: b, match: {}, action: drop, reason: k}
        """
    )
    assert message.startswith("p.yaml: 2 problems:")
    assert "rule 'a' (rules[0]).match.typ: unknown key" in message
    assert "rule 'b' (rules[1]).action: 'drop'" in message


def test_yaml_syntax_error_reports_line() -> None:
    message = policy_error("version: 1\ndefault: {action: remove, reason: d\nrules: []\n")
    assert message.startswith("p.yaml: YAML syntax error at line ")
    line = int(message.split("at line ")[1].split(",")[0])
    assert 2 <= line <= 4


def test_yaml_syntax_error_line_is_exact_for_bad_indentation() -> None:
    message = policy_error("version: 1\ndefault:\n  action: remove\n reason: d\n")
    assert "at line 4" in message


def test_duplicate_yaml_keys_are_refused() -> None:
    message = policy_error(
        """
        version: 1
        default: {action: remove, reason: d}
        rules:
          - name: r
            match: {application: SAP}
            match: {}
            action: keep
            reason: k
        """
    )
    assert "duplicate key 'match'" in message
    assert "line 7" in message


def test_yaml_merge_keys_may_be_overridden() -> None:
    policy = parse_policy(
        "version: 1\n"
        "default: &base {action: keep, reason: shared}\n"
        "rules:\n"
        "  - {<<: *base, name: r, match: {}, reason: own}\n"
    )
    assert policy.rules[0].reason == "own"
    assert policy.rules[0].action == "keep"


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_policy_must_be_a_mapping(text: str) -> None:
    assert "a policy must be a YAML mapping" in policy_error(text)


def test_error_message_starts_with_the_source() -> None:
    assert policy_error("version: 1\nrules: []\n").startswith("p.yaml: ")


def test_single_values_and_lists_are_equivalent() -> None:
    single = one_rule({"type": "role", "granted_by": "direct", "event": "user.terminated"})
    listed = one_rule({"type": ["role"], "granted_by": ["direct"], "event": ["user.terminated"]})
    assert single == listed


# ------------------------------------------------------------------------------------------ files


def test_load_policy_reads_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(EXAMPLE, encoding="utf-8")
    assert [rule.name for rule in load_policy(good).rules] == [
        "legal-hold",
        "mailbox-grace",
        "privileged-needs-approval",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules: []\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad\.yaml: default: required"):
        load_policy(bad)


def test_load_policy_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "absent.yaml")


def test_load_policy_directory_and_binary_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="is a directory"):
        load_policy(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00version")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(binary)


def test_example_policy_file_is_the_documented_policy() -> None:
    policy = load_policy(ROOT / "examples" / "policy.yaml")
    assert policy == parse_policy(EXAMPLE)


def test_demo_policy_settles_a_termination_without_waiting_and_holds_a_disabled_admin() -> None:
    """The embedded demo needs a termination's items terminal within seconds (no delays, no hold
    for terminations), and a disable that holds privileged access for the console's buttons."""
    policy = load_policy(ROOT / "app" / "policy" / "demo_policy.yaml")
    assert [rule.name for rule in policy.rules] == ["legal-hold", "birthright-stays", "privileged-needs-approval"]
    for rule in [policy.default, *policy.rules]:
        assert rule.due is None or rule.due.offset == timedelta(0)
    assert policy.default.describe() == "remove (effective)"
    admin = [make_item("Domain Admins", privileged=True)]
    user = IgaUser(id="jdoe", attributes={"legalHold": "false"})
    terminated = evaluate(policy, make_event(), user, admin, target="netiq-ig", now=NOW)
    assert [d.action for d in terminated.decisions] == ["remove"]
    disabled = evaluate(policy, make_event("user.disabled"), user, admin, target="netiq-ig", now=NOW)
    assert [(d.rule, d.action) for d in disabled.decisions] == [("privileged-needs-approval", "hold")]


def test_demo_policy_decisions_for_jdoe_and_a_legal_hold() -> None:
    policy = load_policy(ROOT / "app" / "policy" / "demo_policy.yaml")
    items = [make_item("All Staff", granted_by="birthright"), make_item("Finance RW")]
    plan = evaluate(
        policy, make_event(), IgaUser(id="jdoe", attributes={"legalHold": "false"}), items, target="netiq-ig", now=NOW
    )
    assert [(d.rule, d.action) for d in plan.decisions] == [("birthright-stays", "keep"), ("default", "remove")]
    assert plan.decisions[0].reason == "Birthright access follows the IDM account; it ends at the source"
    held = evaluate(
        policy, make_event(), IgaUser(id="lhold", attributes={"legalHold": "true"}), items, target="netiq-ig", now=NOW
    )
    assert {d.rule for d in held.decisions} == {"legal-hold"}


def test_policy_is_immutable() -> None:
    policy = parse_policy(EXAMPLE)
    with pytest.raises(ValueError, match="frozen"):
        policy.version = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------------------- explain


def test_explain_table_lists_every_item_with_rule_reason_and_when() -> None:
    policy = parse_policy(EXAMPLE)
    items = [
        make_item("Mailbox jdoe", application="Exchange Online"),
        make_item("Domain Admins", privileged=True),
        make_item("Sales Global", type_="role", application=None),
    ]
    text = explain(evaluate(policy, make_event("user.disabled"), USER, items, target="t", now=NOW))
    lines = text.splitlines()
    assert lines[0].split() == ["TYPE", "APPLICATION", "NAME", "ACTION", "WHEN", "RULE", "REASON"]
    mailbox = next(line for line in lines if "Mailbox jdoe" in line)
    assert "remove" in mailbox and "2026-12-21T00:00:00Z" in mailbox and "mailbox-grace" in mailbox
    assert mailbox.endswith("Mailbox kept 30 days for handover")
    admins = next(line for line in lines if "Domain Admins" in line)
    assert "hold" in admins and "privileged-needs-approval" in admins and "Z" not in admins.split("hold")[1][:25]
    role = next(line for line in lines if "Sales Global" in line)
    assert role.split()[:2] == ["role", "-"]
    assert lines[-1] == "3 items: 2 remove, 0 keep, 1 hold"
    # Columns line up: every row starts its ACTION column at the same offset.
    offset = lines[0].index("ACTION")
    assert {line[offset:].split()[0] for line in lines[1:4]} == {"remove", "hold"}


def test_explain_keeps_each_item_on_one_line() -> None:
    plan = Plan([Decision(make_item("two\nlines"), "keep", "r", "because\nreasons", None)])
    lines = explain(plan).splitlines()
    assert len(lines) == 4  # header, row, blank, summary
    assert "two lines" in lines[1] and lines[1].endswith("because reasons")


def test_explain_empty_plan() -> None:
    assert "nothing to decide" in explain(Plan([]))


# ---------------------------------------------------------------------------------------- property

TYPES = ["role", "entitlement", "application", "account", "access_profile"]
GRANTS = ["direct", "role", "birthright"]
APPS = ["Active Directory", "Exchange Online", "SAP ERP", "Jira"]
EVENTS = ["user.disabled", "user.terminated", "user.enabled"]

items_strategy = st.lists(
    st.builds(
        AccessItem,
        id=st.sampled_from([f"id-{n}" for n in range(6)]),
        type=st.sampled_from(TYPES),
        name=st.sampled_from(["Finance RW", "Mailbox jdoe", "Domain Admins", "VPN Users"]),
        application=st.one_of(st.none(), st.sampled_from(APPS)),
        privileged=st.booleans(),
        granted_by=st.sampled_from(GRANTS),
    ),
    max_size=12,
)

match_strategy = st.fixed_dictionaries(
    {},
    optional={
        "type": st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True),
        "granted_by": st.lists(st.sampled_from(GRANTS), min_size=1, max_size=2, unique=True),
        "application": st.lists(st.sampled_from([*APPS, "exchange online"]), min_size=1, max_size=2),
        "id": st.lists(st.sampled_from([f"id-{n}" for n in range(6)]), min_size=1, max_size=3),
        "privileged": st.booleans(),
        "event": st.lists(st.sampled_from(EVENTS), min_size=1, max_size=2, unique=True),
    },
)

rule_strategy = st.tuples(
    match_strategy,
    st.sampled_from(["remove", "keep", "hold"]),
    st.sampled_from(["now", "effective", "effective+P3D"]),
)


def oracle_matches(match: dict[str, Any], item: AccessItem, event_type: str) -> bool:
    """A deliberately plain restatement of the matching rules for the keys generated above."""
    checks = [
        "type" not in match or item.type in match["type"],
        "granted_by" not in match or item.granted_by in match["granted_by"],
        "application" not in match
        or (item.application is not None and item.application.lower() in [a.lower() for a in match["application"]]),
        "id" not in match or item.id in match["id"],
        "privileged" not in match or item.privileged == match["privileged"],
        "event" not in match or event_type in match["event"],
    ]
    return all(checks)


@settings(max_examples=200, deadline=None)
@given(
    items=items_strategy,
    rules=st.lists(rule_strategy, max_size=6),
    default_action=st.sampled_from(["remove", "keep", "hold"]),
    event_type=st.sampled_from(EVENTS),
)
def test_every_item_gets_one_decision_from_the_first_matching_rule(
    items: list[AccessItem],
    rules: list[tuple[dict[str, Any], str, str]],
    default_action: str,
    event_type: str,
) -> None:
    document: dict[str, Any] = {
        "version": 1,
        "default": {"action": default_action, "reason": "fallback"},
        "rules": [
            {"name": f"rule-{n}", "match": match, "action": action, "reason": f"reason {n}"}
            | ({"when": when} if action == "remove" else {})
            for n, (match, action, when) in enumerate(rules)
        ],
    }
    policy = parse_policy(yaml.safe_dump(document, sort_keys=False))
    event = make_event(event_type)
    plan = evaluate(policy, event, USER, items, target="t", now=NOW)

    assert len(plan.decisions) == len(items)
    for item, decision in zip(items, plan.decisions, strict=True):
        assert decision.item is item
        first = next((n for n, (match, _, _) in enumerate(rules) if oracle_matches(match, item, event_type)), None)
        if first is None:
            assert (decision.rule, decision.action, decision.reason) == ("default", default_action, "fallback")
        else:
            _, action, when = rules[first]
            assert (decision.rule, decision.action, decision.reason) == (f"rule-{first}", action, f"reason {first}")
            expected_due = {"now": NOW, "effective": EFFECTIVE, "effective+P3D": EFFECTIVE + timedelta(days=3)}
            assert decision.due_at == (expected_due[when] if action == "remove" else None)

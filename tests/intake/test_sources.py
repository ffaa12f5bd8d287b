"""The sources setting: every mistake stops the start with one line naming it; the field mapping;
the API description lists every format; the ingress publishes exactly the routes that exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.intake.mapping import MappingError, compile_choice, compile_expr, map_user
from app.intake.sources import build_sources, offered_credentials
from app.main import create_app
from app.runtime import build_runtime
from app.settings import ConfigError, IntakeSource, Settings
from tests.conftest import make_settings
from tests.intake.conftest import SOURCES, TARGETS

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"name": "okta", "format": "okta", "secrets": ["okta-hook-secret-0123456789"]}


def build(*sources: dict[str, Any]) -> None:
    build_sources([IntakeSource.model_validate(s) for s in sources], ["iga"])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({**GOOD, "target": "elsewhere"}, "target: no IGA target named 'elsewhere'"),
        ({**GOOD, "secrets": ["short"]}, "secrets[0]: at least 16 characters"),
        ({**GOOD, "secrets": []}, "needs at least one secret"),
        ({**GOOD, "secrets": ["whsec_!!"]}, "not valid base64"),
        ({**GOOD, "secrets": ["whsec_c2hvcnQ="]}, "at least 24 random bytes"),
        ({**GOOD, "options": {"colour": "red"}}, "options.colour: Extra inputs are not permitted"),
        ({**GOOD, "user": {"username": "login"}}, "neither a path"),
        ({**GOOD, "user": {"username": "{login}"}}, "neither a path"),
        ({**GOOD, "user": {"username": "$.a|shout"}}, "unknown filter 'shout'"),
        ({**GOOD, "user": {"nickname": "$.a"}}, "nickname: not a user field"),
        ({**GOOD, "user": {"ids.elsewhere": "$.id"}}, "no IGA target named 'elsewhere'"),
        ({**GOOD, "user": {"username": "$.a[x"}}, "cannot read the path"),
        ({**GOOD, "format": "ssf", "options": {"issuer": "x"}}, "options.audience: Field required"),
        ({**GOOD, "format": "entra", "options": {}}, "resume needs tenant_id"),
        ({**GOOD, "format": "mapped", "options": {"id": "$.id", "type": "user"}}, "neither a path"),
    ],
)
def test_a_bad_source_is_one_line_naming_it(source: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        build(source)
    assert message in str(refused.value) and str(refused.value).startswith("LEAVER_SOURCES[0] (okta)")


def test_source_names_are_unique_and_secrets_never_printed() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        build(GOOD, GOOD)
    source = IntakeSource.model_validate(GOOD)
    assert "okta-hook-secret" not in repr(source) and "okta-hook-secret" not in str(build_sources([source], []))


def test_sources_come_from_the_environment_and_secrets_from_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "scim-token"
    secret.write_text("scim-token-from-a-file-0123456789\nprevious-token-0123456789abcdef\n")
    raw = [{"name": "entra-scim", "format": "scim", "secrets_file": str(secret)}]
    monkeypatch.setenv("LEAVER_SOURCES", json.dumps(raw))
    settings = Settings()
    (source,) = build_sources(settings.sources, []).all
    assert source.secrets == ("scim-token-from-a-file-0123456789", "previous-token-0123456789abcdef")


async def test_a_bad_source_stops_the_app_at_start(database_url: str, tmp_path: Path) -> None:
    bad = IntakeSource.model_validate({**GOOD, "target": "elsewhere"})
    app = create_app(build_runtime(make_settings(database_url, tmp_path, TARGETS, sources=[bad])), workers=0)
    with pytest.raises(ConfigError, match="elsewhere"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.parametrize(
    ("spec", "data", "expected"),
    [
        ("$.user.login", {"user": {"login": "jdoe"}}, "jdoe"),
        ("$['Login Disabled'][0]", {"Login Disabled": ["true"]}, "true"),
        ('$["a.b"]', {"a.b": 1}, "1"),
        ("$.CN", {"CN": ["jdoe", "jd"]}, "jdoe"),
        ("$.flag", {"flag": False}, "false"),
        ("$.upn|local|upper", {"upn": "jdoe@acme.com"}, "JDOE"),
        ("cn={$.cn|lower},ou={$.ou}", {"cn": "JDoe", "ou": "users"}, "cn=jdoe,ou=users"),
        ("cn={$.cn},ou={$.ou}", {"cn": "JDoe"}, None),
        ("$.missing[3].x", {"missing": []}, None),
        ("$.obj", {"obj": {"a": 1}}, None),
    ],
)
def test_field_paths_and_templates(spec: str, data: Any, expected: str | None) -> None:
    assert compile_expr(spec).render(data) == expected


def test_alternatives_and_user_mapping() -> None:
    assert compile_choice(["$.a", "$.b"]).render({"b": "x"}) == "x"
    mapping = {"username": compile_choice("$.sub"), "ids.iga": compile_choice("$.id")}
    assert map_user(mapping, {"sub": "jdoe", "id": "u-1"}) == {"username": "jdoe", "ids": {"iga": "u-1"}}
    with pytest.raises(MappingError):
        compile_choice([])


def test_credentials_a_header_may_offer() -> None:
    assert offered_credentials("Bearer abc") == ["Bearer abc", "abc"]
    assert offered_credentials("Basic dXNlcjpwdw==") == ["Basic dXNlcjpwdw==", "pw"]
    assert offered_credentials("Basic ***") == ["Basic ***"]
    assert offered_credentials(None) == []


async def test_the_api_description_documents_every_format(database_url: str, tmp_path: Path) -> None:
    sources = [IntakeSource.model_validate(s) for s in SOURCES.values()]
    app = create_app(build_runtime(make_settings(database_url, tmp_path, TARGETS, sources=sources)), workers=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leaver") as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert "post" in paths["/webhooks/ssf"] and "application/secevent+jwt" in json.dumps(paths["/webhooks/ssf"])
    assert {"get", "post"} <= set(paths["/webhooks/okta"])
    assert "post" in paths["/webhooks/entra"] and "post" in paths["/webhooks/mapped/{source}"]
    assert {"get", "put", "patch", "delete"} <= set(paths["/scim/v2/Users/{user_id}"])
    for path in ("/scim/v2/Users", "/scim/v2/ServiceProviderConfig", "/scim/v2/Schemas", "/scim/v2/ResourceTypes"):
        assert path in paths


def test_the_ingress_publishes_exactly_the_intake_routes() -> None:
    """Every route an IDM calls is published, and every published prefix leads to a route."""
    app = create_app(build_runtime(make_settings("sqlite+aiosqlite:///:memory:", Path("/tmp"), TARGETS)), workers=0)
    routes = set(app.openapi()["paths"])
    intake = {p for p in routes if p.startswith(("/webhooks/", "/scim/"))}
    ingress = yaml.safe_load((ROOT / "deploy" / "overlays" / "prod" / "ingress.yaml").read_text())
    published = {(p["path"], p["pathType"]) for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}

    def covered(route: str) -> bool:
        return any(
            route == path or (kind == "Prefix" and route.startswith(path.rstrip("/") + "/")) for path, kind in published
        )

    assert all(covered(r) for r in intake), sorted(r for r in intake if not covered(r))
    for path, kind in published:
        assert path == "/" or any(
            r == path or (kind == "Prefix" and r.startswith(path.rstrip("/") + "/")) for r in routes
        ), path

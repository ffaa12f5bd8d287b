"""Schemathesis against the running API over real HTTP: whatever it sends, no route answers 5xx,
and every answer (status and media type) is one the OpenAPI document declares."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from app.main import create_app
from app.runtime import build_runtime
from app.settings import TargetSettings
from tests.conftest import OPS_TOKEN, make_settings
from tests.servers import serve_in_thread

TARGETS = [TargetSettings(name="iga", system="netiq-ig", base_url="http://127.0.0.1:9/unused")]


@pytest.fixture(scope="module")
def api_url(migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    if migrated_template.startswith("postgresql"):
        url = migrated_template
    else:
        shutil.copy(migrated_template, data_dir / "leaver.db")
        url = f"sqlite+aiosqlite:///{data_dir / 'leaver.db'}"
    app = create_app(build_runtime(make_settings(url, data_dir, TARGETS)), workers=0)
    with serve_in_thread(app) as base:
        yield base


def test_no_route_answers_5xx_or_anything_undocumented(api_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # intake, status, ops, health: the document lists them all
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=api_url,
                headers={"Authorization": f"Bearer {OPS_TOKEN}"},
                checks=[checks.not_a_server_error, status_code_conformance, content_type_conformance],
            )

        call()

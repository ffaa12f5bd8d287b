"""docker-compose.yml: valid against the Compose Specification, and wired as the demo needs.

The schema (tests/deploy/compose-spec.json) is the Compose Specification's JSON schema
(github.com/compose-spec/compose-spec, schema/compose-spec.json, Apache-2.0, licence alongside),
vendored from the check-jsonschema 0.39.0 wheel (check_jsonschema/builtin_schemas/vendor/), sha256
d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64. To refresh it, copy that file
from a newer check-jsonschema release.

`docker compose config` runs too where the Compose CLI plugin is installed (skipped otherwise).
"""

from __future__ import annotations

import copy
import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from app.settings import Settings, TargetSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")

LEAVER_SERVICES = ("migrate", "api", "worker", "sim-netiq-ig", "sim-sailpoint-isc")
SIMULATORS = {"sim-netiq-ig": "netiq-ig", "sim-sailpoint-isc": "sailpoint-isc"}
SIMULATOR_MODULES = {"netiq-ig": "app.simulator.netiq_ig", "sailpoint-isc": "app.simulator.sailpoint_isc"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def interpolate_defaults(value: str) -> str:
    """`${VAR:-default}` -> default, as `docker compose` does with VAR unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def demo_targets(compose: dict[str, Any]) -> list[dict[str, Any]]:
    config = ROOT / compose["configs"]["leaver-config"]["file"]
    targets: list[dict[str, Any]] = yaml.safe_load(config.read_text())["targets"]
    return targets


# --- schema --------------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any], validator: Any) -> None:
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda c: c["services"]["api"].update(comand=["serve"]), "unknown service key"),
        (lambda c: c["services"]["api"]["depends_on"]["migrate"].update(condition="done"), "bad condition"),
        (lambda c: c["services"]["api"]["healthcheck"].update(intervall="5s"), "unknown healthcheck key"),
    ],
)
def test_schema_catches_mistakes(compose: dict[str, Any], validator: Any, mutate: Any, why: str) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert list(validator.iter_errors(broken)), f"the schema should reject: {why}"


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode:
        pytest.skip("the Docker Compose CLI plugin is not installed; the schema test covers the file")
    proc = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# --- the demo's wiring ---------------------------------------------------------------------------


def test_services_and_commands(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert set(svc) == {"postgres", *LEAVER_SERVICES}
    assert svc["migrate"]["command"] == ["migrate"]
    assert svc["api"]["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert svc["worker"]["command"] == ["worker"]
    assert svc["worker"]["deploy"]["replicas"] == 2
    for name, system in SIMULATORS.items():
        command = svc[name]["command"]
        assert command[:2] == ["simulate", system] and "--port" in command
    assert svc["migrate"]["restart"] == "no", "migrate is one-shot"


def test_start_order_uses_health_conditions(compose: dict[str, Any]) -> None:
    svc = services(compose)

    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in svc[name]["depends_on"].items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    assert conditions("api") == {"migrate": "service_completed_successfully"}
    assert conditions("worker") == {
        "migrate": "service_completed_successfully",
        **{sim: "service_healthy" for sim in SIMULATORS},
    }
    for name, spec in svc.items():
        for dep, dep_spec in spec.get("depends_on", {}).items():
            if dep_spec["condition"] == "service_healthy":
                check = svc[dep].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), f"{name} waits on {dep}'s healthcheck"


def test_healthchecks(compose: dict[str, Any]) -> None:
    svc = services(compose)
    assert "/readyz" in " ".join(svc["api"]["healthcheck"]["test"])
    assert svc["worker"]["healthcheck"] == {"disable": True}, "workers serve no HTTP: the image check must be off"
    for name in SIMULATORS:
        port = svc[name]["command"][svc[name]["command"].index("--port") + 1]
        assert port in " ".join(svc[name]["healthcheck"]["test"])
    assert "pg_isready" in svc["postgres"]["healthcheck"]["test"]


def test_containers_are_hardened(compose: dict[str, Any]) -> None:
    for name, spec in services(compose).items():
        assert not spec.get("privileged"), f"{name} is privileged"
        assert "no-new-privileges:true" in spec.get("security_opt", []), name
        image = spec["image"]
        tag = interpolate_defaults(image).rsplit(":", 1)[-1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: pin the image ({image})"
    for name in LEAVER_SERVICES:
        spec = services(compose)[name]
        assert spec["read_only"] is True, name
        assert "/tmp" in spec["tmpfs"], name
        assert spec["cap_drop"] == ["ALL"], name
        assert not spec.get("cap_add"), name
        uid = str(spec["user"]).split(":")[0]
        assert uid.isdigit() and int(uid) != 0, name
        assert environment(spec)["LEAVER_DATA_DIR"].startswith("/tmp/"), name


def test_settings_are_production_shaped(compose: dict[str, Any]) -> None:
    svc = services(compose)
    for name in ("migrate", "api", "worker"):
        env = environment(svc[name])
        url = urlsplit(interpolate_defaults(env["LEAVER_DATABASE_URL"]))
        assert (url.scheme, url.hostname, url.port) == ("postgresql+asyncpg", "postgres", 5432), name
        assert env["LEAVER_AUTO_MIGRATE"] == "false", f"{name}: migrations belong to the migrate service"
        mounted = {c["target"] for c in svc[name]["configs"]}
        assert env["LEAVER_CONFIG_FILE"] in mounted, name
    assert environment(svc["api"])["LEAVER_WORKERS"] == "0", "the API runs no in-process workers here"
    assert interpolate_defaults(environment(svc["api"])["LEAVER_WEBHOOK_SECRET"]).startswith("whsec_")
    for source in compose["configs"].values():
        assert (ROOT / source["file"]).is_file(), source["file"]


def test_environment_names_are_real_settings(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name, spec in services(compose).items():
        for key in environment(spec):
            if not key.startswith("LEAVER_"):
                continue
            setting = key.removeprefix("LEAVER_").lower().split("__")[0]
            if setting not in fields and setting.endswith("_file"):
                setting = setting.removesuffix("_file")  # LEAVER_<NAME>_FILE: the value from a file
            assert setting in fields, f"{name}: {key} is not a leaver setting"


# --- the demo targets ----------------------------------------------------------------------------


def test_demo_targets_point_at_the_simulators(compose: dict[str, Any]) -> None:
    svc = services(compose)
    targets = demo_targets(compose)
    assert {t["system"] for t in targets} == set(SIMULATORS.values())
    for raw in targets:
        target = TargetSettings.model_validate(raw)
        url = urlsplit(target.base_url)
        assert url.hostname in SIMULATORS, f"{target.name}: {url.hostname} is not a simulator service"
        command = svc[url.hostname]["command"]
        assert command[1] == target.system
        assert str(url.port) == command[command.index("--port") + 1]
        if target.token_url:
            assert urlsplit(target.token_url).netloc == url.netloc


@pytest.mark.parametrize("system", sorted(SIMULATOR_MODULES))
def test_demo_credentials_match_the_simulator(compose: dict[str, Any], system: str) -> None:
    try:
        module = __import__(SIMULATOR_MODULES[system], fromlist=["demo_target"])
        demo_target = module.demo_target
    except (ImportError, AttributeError):
        pytest.fail(f"{SIMULATOR_MODULES[system]}.demo_target() is gone: where are the demo credentials now?")
    (ours,) = [t for t in demo_targets(compose) if t["system"] == system]
    params = inspect.signature(demo_target).parameters
    kwargs = {"base_url": ours["base_url"]} if "base_url" in params else {}
    theirs = demo_target(**kwargs)
    theirs = theirs.model_dump() if hasattr(theirs, "model_dump") else dict(theirs)

    def plain(value: Any) -> Any:
        return value.get_secret_value() if hasattr(value, "get_secret_value") else value

    for field in ("client_id", "client_secret", "username", "password", "options"):
        assert (plain(theirs.get(field)) or None) == (ours.get(field) or None), (
            f"deploy/compose/leaver.yaml: {system} {field} differs from the simulator's demo_target()"
        )
    if theirs.get("token_url"):
        assert ours["token_url"].endswith(urlsplit(theirs["token_url"]).path)

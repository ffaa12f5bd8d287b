"""The rooms of `app/` and what each may import (README, "Architecture"), checked on the source:
imports run downwards only, one module changes states, simulators never share adapter code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
MODULES = sorted(p for p in APP.rglob("*.py") if "migrations" not in p.parts)

#: room -> the rooms of `app` it must not import
FORBIDDEN = {
    "domain": {"*"},
    "policy": {"api", "cli", "iga", "intake", "main", "runtime", "simulator", "store", "worker", "settings"},
    "store": {"api", "cli", "iga", "intake", "main", "runtime", "simulator", "worker"},
    "iga": {"api", "cli", "intake", "main", "policy", "runtime", "simulator", "store", "worker"},
    "simulator": {"api", "cli", "iga", "intake", "main", "policy", "runtime", "store", "worker"},
    "worker": {"api", "cli", "intake", "main", "simulator"},
    "intake": {"cli", "main", "simulator", "worker"},
    "api": {"cli", "main", "simulator"},
}


def room(path: Path) -> str:
    parts = path.relative_to(APP).parts
    return parts[0].removesuffix(".py")


def imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "app" else [f"app.{a.name}" for a in node.names]
        rooms.update(n.split(".")[1] for n in names if n.startswith("app."))
    return rooms


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_imports_only_run_downwards(path: Path) -> None:
    own = room(path)
    forbidden = FORBIDDEN.get(own, set())
    found = imported_rooms(path) - {own}
    bad = found if "*" in forbidden else found & forbidden
    assert not bad, f"{path.relative_to(APP)} ({own}) imports {sorted(bad)}"


ROW_CLASSES = {"Case", "PlanItem", "IgaRequest"}


def test_only_the_state_owner_assigns_a_state() -> None:
    owner = APP / "store" / "transitions.py"
    offenders = []
    for path in MODULES:
        if path == owner or room(path) == "simulator":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                if any(isinstance(e, ast.Attribute) and e.attr == "state" for e in elts):
                    offenders.append(f"{path.relative_to(APP)}:{node.lineno}")
            constructs_row = isinstance(node, ast.Call) and getattr(node.func, "id", None) in ROW_CLASSES
            if constructs_row and any(k.arg == "state" for k in node.keywords):
                offenders.append(f"{path.relative_to(APP)}:{node.lineno}")
    assert not offenders, f"state assigned outside store/transitions.py: {offenders}"


def test_no_module_grows_past_one_concept() -> None:
    sizes = {str(p.relative_to(APP)): len(p.read_text().splitlines()) for p in MODULES}
    long = {name: n for name, n in sizes.items() if n > 400}
    assert not long, f"modules over 400 lines: {long}"

"""The packages depend on each other in one direction only, as the README's layout says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"rating", "settings", "accounts", "ivr", "callcontrol", "api", "ics"}
#: What each package may import of ours (besides itself).
ALLOWED = {
    "rating": set(),
    "settings": {"rating"},
    "accounts": {"rating"},
    "ivr": {"rating"},
    "callcontrol": {"ivr", "accounts", "rating", "settings"},
    "api": {"accounts", "rating", "settings"},
    "ics": OURS - {"ics"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """Our top-level packages that ``package`` imports, with the files that do."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".", 1)[0]
                if top in OURS and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    wrong = {dep: files for dep, files in imported_packages(package).items()
             if dep not in ALLOWED[package]}
    assert wrong == {}, f"{package} must not import {sorted(wrong)}: {wrong}"


def test_the_check_sees_an_import() -> None:
    assert "rating" in imported_packages("accounts")

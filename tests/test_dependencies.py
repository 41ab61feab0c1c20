"""Every third-party module that station/ imports (at the top or inside a function) belongs to a
distribution pyproject.toml declares: a dependency, or an extra for the optional parts."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_canonical(re.match(r"[A-Za-z0-9._-]+", r.strip()).group(0)) for r in requirements}


def _imported_modules() -> dict[str, str]:
    """Top-level module -> the first file of station/ that imports it."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "station").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return {m: f for m, f in found.items() if m != "station" and m not in sys.stdlib_module_names}


def test_every_imported_module_is_declared():
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = []
    for module, where in sorted(_imported_modules().items()):
        owners = {_canonical(d) for d in distributions.get(module, [])}
        if not owners & declared:
            undeclared.append(f"{module} (imported in {where}; distribution {sorted(owners) or 'not installed'})")
    assert not undeclared, "imported but not declared in pyproject.toml: " + "; ".join(undeclared)

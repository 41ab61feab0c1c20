"""A ``@Slot`` only on QObject classes: on a mixin, PySide6 calls it in the emitting thread."""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).parents[1] / "station" / "ui"


def _decorated_slots(cls: ast.ClassDef) -> list[str]:
    names = []
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Name) and target.id == "Slot":
                    names.append(node.name)
    return names


def test_slots_are_declared_only_on_qt_classes():
    offenders = []
    for path in sorted(UI.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        for cls in classes.values():
            bases = {getattr(base, "id", getattr(base, "attr", "")) for base in cls.bases}
            is_qt = any(base.startswith("Q") for base in bases) or bases & set(classes)
            if not is_qt and _decorated_slots(cls):
                offenders.append(f"{path.name}:{cls.name}: {', '.join(_decorated_slots(cls))}")
    assert not offenders, offenders

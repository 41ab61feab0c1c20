"""Windows conditions, simulated on Linux: files saved by Notepad (UTF-8 with a BOM), the cp1252
code page of redirected output and of open() without an encoding, the DLL load order of torch and
Qt, tests that call os.geteuid, and the venv's Scripts folder."""

from __future__ import annotations

import ast
import codecs
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.training_data import make_deeppcb_dataset

REPO = Path(__file__).resolve().parents[1]


def with_bom(path: Path) -> Path:
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    return path


def test_settings_saved_with_a_bom_keep_their_values(tmp_path):
    from station.config import Settings, load_settings, save_settings

    path = tmp_path / "settings.json"
    save_settings(Settings(device="cpu", foot_pedal_key="F9", recipe="Bare PCB"), path)
    loaded = load_settings(with_bom(path))
    assert (loaded.device, loaded.foot_pedal_key, loaded.recipe) == ("cpu", "F9", "Bare PCB")


def test_a_recipe_saved_with_a_bom_reads(tmp_path):
    from station.inference.recipes import read_recipe

    source = REPO / "resources" / "recipes" / "bare_pcb_deeppcb.json"
    plain = read_recipe(source)
    copy = with_bom(Path(shutil.copy(source, tmp_path / source.name)))
    assert read_recipe(copy).name == plain.name


def test_a_model_card_saved_with_a_bom_loads(tmp_path):
    from station.ml.cards import load_card

    folder = tmp_path / "card"
    folder.mkdir()
    with_bom(Path(shutil.copy(REPO / "models" / "wbam-ffem-deeppcb" / "card.json", folder / "card.json")))
    assert load_card(folder).name == "wbam-ffem-deeppcb"


def test_annotations_saved_with_a_bom_keep_their_first_box(tmp_path):
    from station.training.datasets import read_dataset

    root = make_deeppcb_dataset(tmp_path / "pcb", count=2)
    expected = [len(s.boxes) for s in read_dataset(root, "deeppcb").samples]
    for annotation in root.rglob("*_not/*.txt"):
        with_bom(annotation)
    index = read_dataset(root, "deeppcb")
    assert not index.problems and [len(s.boxes) for s in index.samples] == expected


def _text_calls_without_encoding(path: Path) -> list[str]:
    """Builtin ``open`` in text mode and ``Path.read_text`` / ``write_text`` with no ``encoding=``:
    they use the locale's code page, cp1252 on a Western Windows."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or any(k.arg == "encoding" for k in node.keywords):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("read_text", "write_text"):
            found.append(f"{path.relative_to(REPO)}:{node.lineno} {func.attr}()")
        elif isinstance(func, ast.Name) and func.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"),
                                                                 None)
            text = "r" if mode is None else mode.value if isinstance(mode, ast.Constant) else "?"
            if "b" not in str(text):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} open(mode={text!r})")
    return found


def test_text_files_name_their_encoding():
    found = [call for path in sorted((REPO / "station").rglob("*.py")) for call in _text_calls_without_encoding(path)]
    assert not found, "text I/O in the locale's encoding:\n" + "\n".join(found)


def test_cli_output_is_utf8_when_redirected_to_a_cp1252_file(tmp_path, monkeypatch):
    from station.cli import main

    folder = tmp_path / "card"
    folder.mkdir()
    shutil.copy(REPO / "models" / "wbam-ffem-deeppcb" / "card.json", folder / "card.json")
    redirected = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(redirected, encoding="cp1252"))
    assert main(["models", "limitations", str(folder), "--add", "template → tested image, Zoë's boards"]) == 0
    sys.stdout.flush()
    assert "template → tested image, Zoë's boards" in redirected.getvalue().decode("utf-8")
    data = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    assert data["limitations"][-1] == "template → tested image, Zoë's boards"


_IMPORT_ORDER_PROBE = r"""
import argparse, sys

class FirstQtImport:
    def find_spec(self, name, path=None, target=None):
        if name == "PySide6":
            raise SystemExit(0 if "torch" in sys.modules else 3)
        return None

sys.meta_path.insert(0, FirstQtImport())
from station import app
parser = argparse.ArgumentParser()
app.configure(parser)
app.run(parser.parse_args([]))
raise SystemExit(4)
"""


def test_the_window_loads_torch_before_qt(tmp_path):
    from station.app import missing_display_libraries

    if missing_display_libraries():
        pytest.skip("Qt's system libraries are not here")
    env = os.environ | {"PYTHONPATH": str(REPO), "STATION_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", _IMPORT_ORDER_PROBE], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"exit {done.returncode} (3: Qt first; 4: no Qt at all)\n{done.stderr[-2000:]}"


def test_tests_that_need_posix_users_skip_on_windows(tmp_path, monkeypatch):
    from helpers_storage import run_station_on_full_disk, run_station_read_only, running_as_root

    monkeypatch.delattr(os, "geteuid")
    assert not running_as_root()
    with pytest.raises(pytest.skip.Exception, match="not on Windows"):
        run_station_read_only(tmp_path, "audit", "verify")
    with pytest.raises(pytest.skip.Exception, match="not on Windows"):
        run_station_on_full_disk(tmp_path, [], "audit", "verify")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_the_makefile_uses_the_windows_venv_layout():
    def dry_run(*extra: str) -> str:
        return subprocess.run(["make", "-n", "-B", "test", "demo", *extra], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout

    windows = dry_run("OS=Windows_NT")
    assert ".venv/Scripts/python -m pytest" in windows and ".venv/Scripts/station --demo" in windows
    assert ".venv/bin" not in windows and "python -m venv .venv" in windows
    assert ".venv/bin/python -m pytest" in dry_run()

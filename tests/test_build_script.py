"""``scripts/build-app.sh`` reports success and failure by its exit status (an installer pipeline
and ``make app`` rely on it). PyInstaller is replaced by a stand-in ``python`` so this runs in
seconds; the real build is tests/test_packaging.py."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

# A stand-in interpreter: `-c ...` (the PyInstaller import check) succeeds; `-m PyInstaller`
# lays out a bundle with thousands of library entries (a real bundle's size report is long enough
# for `| head` to close its pipe early) or fails, as BUILD_MODE says.
FAKE_PYTHON = """#!/usr/bin/env bash
if [[ $1 == -c ]]; then exit 0; fi
case ${BUILD_MODE:-ok} in
    fail) echo "PyInstaller: error" >&2; exit 1 ;;
    no-executable) mkdir -p dist/station/_internal; exit 0 ;;
esac
mkdir -p dist/station/_internal
for i in $(seq 1 3000); do mkdir -p "dist/station/_internal/lib$i"; echo x > "dist/station/_internal/lib$i/f"; done
printf '#!/bin/sh\\n' > dist/station/station; printf '#!/bin/sh\\n' > dist/station/station-gui
chmod +x dist/station/station dist/station/station-gui
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "build-app.sh", project / "scripts" / "build-app.sh")
    (project / "station").mkdir()
    (project / "station" / "__init__.py").write_text('__version__ = "9.9.9"\n', encoding="utf-8")
    (project / "build.spec").write_text("", encoding="utf-8")
    python = project / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON, encoding="utf-8")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return project


def _build(project: Path, mode: str, *options: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "VENV": str(project / "venv"), "BUILD_MODE": mode}
    return subprocess.run(
        ["bash", str(project / "scripts" / "build-app.sh"), *options],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )


def test_a_successful_build_exits_zero_and_archives(tmp_path: Path) -> None:
    project = _project(tmp_path)
    result = _build(project, "ok")
    assert result.returncode == 0, result.stderr
    assert "largest parts:" in result.stdout
    assert list((project / "dist").glob("station-9.9.9-*.tar.gz"))


def test_no_archive_build_exits_zero(tmp_path: Path) -> None:
    result = _build(_project(tmp_path), "ok", "--no-archive")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("mode", ["fail", "no-executable"])
def test_a_failed_build_exits_non_zero(tmp_path: Path, mode: str) -> None:
    result = _build(_project(tmp_path), mode, "--no-archive")
    assert result.returncode != 0
    assert "built dist/station" not in result.stdout

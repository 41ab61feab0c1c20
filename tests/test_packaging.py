"""The PyInstaller bundle (build.spec), run the way a bench PC runs it: no Python environment.

Part of the test command wherever the build can run (Linux, PyInstaller installed, which the dev
extra installs, and room on the disk): the session builds ``dist/station/`` once with
``scripts/build-app.sh --no-archive`` (about 2.5 min here, docs/PACKAGING.md), or reuses one newer
than every build input. Under xdist each worker is a session: a file lock lets one build while
another that draws a packaging test waits, then reuses that bundle (``xdist_group`` cannot keep
them on one worker here: pytest-xdist 3.8 renames node ids in a way pytest 9.2 ignores).
``STATION_PACKAGING=0`` leaves them out (a quick local run).

    .venv/bin/python -m pytest tests/test_packaging.py -x -q
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "dist" / "station"
BUILD_INPUTS = ("station", "packaging", "resources", "models", "build.spec", "pyproject.toml", "scripts/build-app.sh")
DEMO_RECIPE = "IC package (demo)"
BUILD_SPACE_GB = 12  # the bundle (4.6 GB) and PyInstaller's build/ folder, with room to spare


def _why_no_build() -> str | None:
    if os.environ.get("STATION_PACKAGING") == "0":
        return "STATION_PACKAGING=0 leaves the bundle out"
    if not sys.platform.startswith("linux"):
        return "runs the Linux bundle"
    if importlib.util.find_spec("PyInstaller") is None:
        return "PyInstaller is not installed (make install installs it with the dev extra)"
    free_gb = shutil.disk_usage(ROOT).free / 1e9
    if free_gb < BUILD_SPACE_GB:
        return f"the build needs {BUILD_SPACE_GB} GB free beside the checkout, {free_gb:.1f} GB are"
    return None


pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(_why_no_build() is not None, reason=_why_no_build() or ""),
]


def _newest_input_mtime() -> float:
    newest = 0.0
    for name in BUILD_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


@pytest.fixture(scope="session")
def bundle() -> Path:
    executable = BUNDLE / "station"
    lock_path = ROOT / "build" / "packaging-test.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building waits here, then reuses its bundle
        if not executable.exists() or executable.stat().st_mtime < _newest_input_mtime():
            # built from the environment running the tests, the one that has PyInstaller
            build = subprocess.run(["bash", str(ROOT / "scripts" / "build-app.sh"), "--no-archive"], cwd=ROOT,
                                   env={**os.environ, "VENV": sys.prefix}, capture_output=True, text=True, timeout=1800)
            assert build.returncode == 0, f"the bundle build failed:\n{build.stdout[-3000:]}\n{build.stderr[-5000:]}"
    return BUNDLE


def run_frozen(command: list[str], home: Path, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    """Run a bundle executable with a bare environment: no venv, no PYTHON* variables, system PATH."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "STATION_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", **extra_env}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def without_network(command: list[str]) -> list[str]:
    """In a network namespace with no interfaces where the system allows one (root, or user
    namespaces): proof that nothing downloads at run time."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n", *command]
    return command


def _demo_recipe_models() -> tuple[str, str]:
    recipe = json.loads((ROOT / "resources" / "recipes" / "ic_package_demo.json").read_text(encoding="utf-8"))
    assert recipe["name"] == DEMO_RECIPE
    return recipe["classifier"], recipe["detector"]


def _pyz_module_names(executable: Path) -> set[str]:
    from PyInstaller.archive.readers import CArchiveReader

    return set(CArchiveReader(str(executable)).open_embedded_archive("PYZ.pyz").toc)


def _selftest_report(result: subprocess.CompletedProcess) -> dict:
    assert result.stdout.strip(), f"no self-test output; stderr:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


def _assert_selftest_passed(result: subprocess.CompletedProcess) -> dict:
    report = _selftest_report(result)
    failed = {check["name"]: check["detail"] for check in report["checked"] if not check["ok"]}
    assert not failed and result.returncode == 0, f"frozen self-test failed: {failed}\n{result.stderr[-3000:]}"
    return report


def test_bundle_holds_resources_and_models_and_leaves_training_out(bundle: Path) -> None:
    internal = bundle / "_internal"
    assert os.access(bundle / "station", os.X_OK) and os.access(bundle / "station-gui", os.X_OK)
    recipes = sorted(p.name for p in (ROOT / "resources" / "recipes").glob("*.json"))
    assert sorted(p.name for p in (internal / "resources" / "recipes").glob("*.json")) == recipes
    repo_models = sorted(p.name for p in (ROOT / "models").glob("*") if p.is_dir()) if (ROOT / "models").is_dir() else []
    bundled_models = sorted(p.name for p in (internal / "models").glob("*") if p.is_dir()) if (internal / "models").is_dir() else []
    assert bundled_models == repo_models

    modules = _pyz_module_names(bundle / "station")
    assert "station.inference" in modules and "station.selftest" in modules
    for left_out in ("station.training", "torchmetrics", "faster_coco_eval", "triton", "tkinter", "IPython", "pytest"):
        assert not any(m == left_out or m.startswith(left_out + ".") for m in modules), f"{left_out} is in the bundle"
    qt_libraries = {p.name for p in (internal / "PySide6" / "Qt" / "lib").glob("libQt6*")}
    for unused in ("Quick", "Qml", "WebEngine", "3D", "Multimedia", "Bluetooth"):
        assert not any(name.startswith(f"libQt6{unused}") for name in qt_libraries), f"Qt{unused} is in the bundle"
    assert not (internal / "triton").exists()


def test_console_executable_runs_without_python_environment(bundle: Path, tmp_path: Path) -> None:
    from station import __version__

    version = run_frozen([str(bundle / "station"), "--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"station {__version__}", version.stderr

    train = run_frozen([str(bundle / "station"), "train"], tmp_path)
    assert train.returncode == 2
    assert "not available in this build" in train.stderr


def test_frozen_selftest_every_stage_with_stand_in_models(bundle: Path, tmp_path: Path) -> None:
    """Random-init stand-ins under the demo recipe's model names (in tmp_path, never bundled) drive
    torch, torchvision's operators, Grad-CAM (captum, matplotlib) and safetensors inside the bundle,
    whether or not the real models are trained yet."""
    from helpers_models import make_tiny_classifier, make_tiny_detector

    classifier, detector = _demo_recipe_models()
    make_tiny_classifier(tmp_path / "models" / classifier)
    make_tiny_detector(tmp_path / "models" / detector)
    result = run_frozen(
        without_network([str(bundle / "station"), "selftest", "--json", "--device", "cpu"]),
        tmp_path / "home",
        STATION_MODELS=str(tmp_path / "models"),
    )
    _assert_selftest_passed(result)


def test_frozen_selftest_with_bundled_models(bundle: Path, tmp_path: Path) -> None:
    missing = [name for name in _demo_recipe_models() if not (ROOT / "models" / name / "card.json").is_file()]
    assert not missing, f"the demo recipe's bundled models are missing: {', '.join('models/' + n for n in missing)}"
    _assert_selftest_passed(run_frozen(without_network([str(bundle / "station"), "selftest", "--json"]), tmp_path))


def test_frozen_gui_opens_the_demo_window(bundle: Path, tmp_path: Path) -> None:
    import cv2

    screenshot = tmp_path / "frozen.png"
    command = [str(bundle / "station-gui"), "--demo", "--operator", "demo-tech", "--screenshot", str(screenshot)]
    if shutil.which("xvfb-run"):
        command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *command]
    result = run_frozen(command, tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    image = cv2.imread(str(screenshot))
    assert image is not None, f"no screenshot; stderr:\n{result.stderr[-3000:]}"
    height, width = image.shape[:2]
    assert width >= 800 and height >= 500
    assert float(image.std()) > 10.0, "the screenshot is a blank window"


def _gi_installed() -> bool:
    return importlib.util.find_spec("gi") is not None


def test_frozen_selftest_checks_every_configured_part(bundle: Path, tmp_path: Path, monkeypatch, lab_database) -> None:
    """The lab's PostgreSQL log, ONNX Runtime, the users store with a user, the signing key and PDF
    export, all inside the bundle: the imports PyInstaller commonly misses (psycopg_binary,
    _cffi_backend, cryptography's Rust part, onnxruntime's providers) are exercised."""
    from station.audit import AuditLog
    from station.users import UserDirectory

    home = tmp_path / "home"
    monkeypatch.setenv("STATION_HOME", str(home))
    with AuditLog() as audit_log:  # the frozen station's own log, which its users store lives in
        UserDirectory(audit_log).add_first_admin("A001", "Ada Admin", "correct horse battery 9")
    command = [str(bundle / "station"), "selftest", "--json", "--device", "cpu", "--onnxruntime",
               "--audit-url", lab_database.station_url]
    report = _assert_selftest_passed(run_frozen(command, home))
    checked = {check["name"]: check["detail"] for check in report["checked"]}
    skipped = {part["name"]: part["reason"] for part in report["skipped"]}
    for part in ("postgresql", "onnxruntime", "users", "signing-key", "pdf-export"):
        assert part in checked, f"{part} was not checked: {skipped.get(part)}"
    assert "binary implementation" in checked["postgresql"]
    assert checked["users"].startswith("1 users read from")
    assert ("genicam" in checked) == _gi_installed(), (checked, skipped)


def _bundle_without(bundle: Path, copy: Path, *patterns: str) -> Path:
    """A hard-linked copy of the bundle (seconds, no space) with the files under _internal/ that
    match ``patterns`` removed: a bundle whose build missed those imports."""
    shutil.rmtree(copy, ignore_errors=True)
    subprocess.run(["cp", "-al", str(bundle), str(copy)], check=True)
    for pattern in patterns:
        matches = list((copy / "_internal").glob(pattern))
        assert matches, f"the bundle holds nothing matching {pattern}"
        for match in matches:
            shutil.rmtree(match) if match.is_dir() else match.unlink()
    return copy


@pytest.mark.parametrize(
    ("removed", "part", "module"),
    [
        ("_cffi_backend*.so", "users", "_cffi_backend"),  # argon2's compiled part needs it
        ("onnxruntime/capi/onnxruntime_pybind11_state*.so", "onnxruntime", "onnxruntime.capi.onnxruntime_pybind11_state"),
        ("psycopg_binary", "postgresql", "psycopg_binary"),  # psycopg would run on the PC's own libpq
    ],
)
def test_a_missing_hidden_import_fails_the_frozen_selftest_with_its_name(
    bundle: Path, tmp_path: Path, lab_database, removed: str, part: str, module: str
) -> None:
    copy = _bundle_without(bundle, ROOT / "build" / f"bundle-without-{part}", removed)
    try:
        command = [str(copy / "station"), "selftest", "--json", "--device", "cpu", "--onnxruntime",
                   "--audit-url", lab_database.station_url]
        result = run_frozen(command, tmp_path / "home")
        report = _selftest_report(result)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    failed = {check["name"]: check["detail"] for check in report["checked"] if not check["ok"]}
    assert result.returncode == 1 and not report["ok"]
    assert f"missing module '{module}'" in failed.get(part, ""), failed

"""Windows conditions, simulated on Linux: files saved by Notepad (UTF-8 with a BOM), the cp1252
code page of redirected output and of open() without an encoding, the DLL load order of torch and
Qt, tests that call os.geteuid, the venv's Scripts folder, and files held open by another program
(Windows refuses to replace them: ``os.replace`` raises PermissionError, WinError 32)."""

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


def _run_window_probe(probe: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``probe`` in a fresh Python with the station's home in ``tmp_path``, on Qt's offscreen platform."""
    from station.app import missing_display_libraries

    assert not missing_display_libraries(), f"Qt's system libraries are missing: {missing_display_libraries()}"
    env = os.environ | {"PYTHONPATH": str(REPO), "STATION_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)


def test_the_window_loads_torch_before_qt(tmp_path):
    done = _run_window_probe(_IMPORT_ORDER_PROBE, tmp_path)
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


# -- files in use: Windows refuses to replace a file another program holds open -------------------


def hold_open(monkeypatch, *held: Path) -> None:
    """``os.replace`` onto any of ``held`` fails as on Windows while Excel or Acrobat has it open."""
    real_replace = os.replace
    names = {os.fspath(p) for p in held}

    def replace(src, dst, **kwargs):
        if os.fspath(dst) in names:
            raise PermissionError(13, "The process cannot access the file because it is being used by another "
                                      "process", os.fspath(src), None, os.fspath(dst))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.fixture
def audit_db(tmp_path) -> Path:
    from station.audit import Action, AuditLog, EntryDraft

    path = tmp_path / "log" / "audit.sqlite3"
    with AuditLog(path, station_id="bench-1") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="zoë"))
        log.append(EntryDraft(Action.SIGN_OUT, operator_id="zoë"))
    return path


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_export_over_a_file_open_in_excel_keeps_both(audit_db, tmp_path, monkeypatch, capsys, fmt):
    from station.cli import main

    out = tmp_path / f"audit.{fmt}"
    out.write_text("last week's export", encoding="utf-8")
    hold_open(monkeypatch, out)
    assert main(["audit", "export", "--db", str(audit_db), "--format", fmt, "--out", str(out)]) == 1
    message = capsys.readouterr().err
    kept = tmp_path / f"audit (2).{fmt}"
    assert "Traceback" not in message and f"audit.{fmt} is open in another program" in message
    assert "close it there" in message and str(kept) in message
    assert out.read_text(encoding="utf-8") == "last week's export"
    assert "zoë" in kept.read_text(encoding="utf-8-sig")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_export_over_a_read_only_file_says_so(audit_db, tmp_path, monkeypatch):
    from station.audit.export import export
    from station.storage import OutputFileError

    out = tmp_path / "audit.csv"
    out.write_text("signed copy", encoding="utf-8")
    hold_open(monkeypatch, out)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == out else real_access(path, mode))
    with pytest.raises(OutputFileError, match="audit.csv is read-only: clear its read-only attribute") as caught:
        export("csv", out, db_path=audit_db)
    assert caught.value.kept == tmp_path / "audit (2).csv" and caught.value.kept.is_file()


def test_an_export_into_a_folder_that_cannot_be_written_names_it(audit_db, tmp_path, monkeypatch):
    from station.audit.export import export
    from station.storage import OutputFileError

    locked = tmp_path / "shared"
    locked.mkdir()
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self.parent == locked:
            raise PermissionError(13, "Access is denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(OutputFileError, match="no permission to write there in the folder .*shared; choose another"):
        export("csv", locked / "audit.csv", db_path=audit_db)
    assert list(locked.iterdir()) == []


def test_a_pdf_report_over_a_file_open_in_acrobat_is_kept_beside_it(qapp, tmp_path, monkeypatch):
    from station.reports.pdf import write_pdf
    from station.storage import OutputFileError

    out = tmp_path / "report.pdf"
    out.write_bytes(b"%PDF-1.4 yesterday")
    hold_open(monkeypatch, out)
    with pytest.raises(OutputFileError, match="report.pdf is open in another program") as caught:
        write_pdf("<h1>Shift report</h1>", out, title="Shift")
    assert caught.value.kept.read_bytes().startswith(b"%PDF") and out.read_bytes() == b"%PDF-1.4 yesterday"


def test_a_batch_review_csv_held_open_is_kept_and_the_command_says_so(tmp_path, monkeypatch):
    from station.review.export import write_csv
    from station.review.scan import FolderScan, ScannedFile
    from station.review.store import BatchStore
    from station.storage import OutputFileError

    out = tmp_path / "lot-7-review.csv"
    out.write_text("open in Excel", encoding="utf-8")
    hold_open(monkeypatch, out)
    with BatchStore(tmp_path / "store") as store:
        store.sync(FolderScan(tmp_path, False, (ScannedFile("a.png", 10, 1, True),)))
        with pytest.raises(OutputFileError, match="lot-7-review.csv is open in another program") as caught:
            write_csv(store, out)
    assert "a.png" in caught.value.kept.read_text(encoding="utf-8-sig")


def test_the_review_of_a_drive_root_is_offered_a_file_name():
    from pathlib import PurePosixPath, PureWindowsPath

    from station.review.export import export_path

    assert export_path(PureWindowsPath("E:/"), "csv") == PureWindowsPath("E:/E-drive-review.csv")
    assert export_path(PureWindowsPath(r"\\lab\scans"), "pdf") == PureWindowsPath(r"\\lab\scans\lab-scans-review.pdf")
    assert export_path(PureWindowsPath(r"E:\lot 7"), "csv") == PureWindowsPath(r"E:\lot 7-review.csv")
    assert export_path(PurePosixPath("/"), "csv") == PurePosixPath("/root-review.csv")


def test_an_export_to_a_folder_gets_a_file_name_in_it(audit_db, tmp_path):
    from station.audit.export import export

    result = export("csv", tmp_path, db_path=audit_db)
    assert result.path.parent == tmp_path and result.path.name.startswith("audit-") and result.path.suffix == ".csv"


def test_two_writers_archiving_the_same_frame_on_windows(tmp_path, monkeypatch):
    """The second writer's os.replace meets the first one's read-only copy: Windows refuses."""
    import numpy as np

    from station.audit.archive import archive_image

    frame = np.full((8, 8, 3), 7, np.uint8)
    real_replace = os.replace

    def first_writer_wins(src, dst, **kwargs):
        shutil.copyfile(src, dst)  # the other process's copy: the same bytes under the same name
        os.chmod(dst, 0o444)
        raise PermissionError(13, "Access is denied", os.fspath(src), None, os.fspath(dst))

    monkeypatch.setattr(os, "replace", first_writer_wins)
    sha, path = archive_image(frame, tmp_path / "archive")
    monkeypatch.setattr(os, "replace", real_replace)
    assert path.name == f"{sha}.png" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_read_only_archive_folder_is_named(tmp_path, monkeypatch):
    import numpy as np

    from station.audit.archive import archive_image
    from station.audit.entry import AuditWriteError

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Access is denied", os.fspath(path))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(AuditWriteError, match="the image archive folder is read-only .*modify rights on .*archive"):
        archive_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "archive")


# -- shutdown: a Windows session's end emits aboutToQuit, never a close event ---------------------


def test_about_to_quit_shuts_the_window_down_once(qtbot, qapp, monkeypatch):
    from station.ui import main_window
    from station.ui.application import shut_down_on_quit
    from station.ui.main_window import MainWindow

    saved = []
    monkeypatch.setattr(main_window, "save_settings", lambda settings: saved.append(settings))
    window = MainWindow(main_window.Settings(), "CPU (test)", recipes={})
    qtbot.addWidget(window)
    shut_down_on_quit(qapp, window)
    window.show()
    with qtbot.waitSignal(window.source_started, timeout=10_000):
        window.start_source("demo")
    try:
        qapp.aboutToQuit.emit()  # what Qt does on WM_ENDSESSION
        assert window.capture_thread.thread.isFinished() and window.audit_thread.thread.isFinished()
        window.close()
        assert len(saved) == 1
    finally:
        qapp.aboutToQuit.disconnect(window.shutdown)
        from station.logs import close_log_file

        qapp.aboutToQuit.disconnect(close_log_file)


_INTERRUPT_PROBE = r"""
import os, signal, sys
import torch  # noqa: F401  (the window's own import order)
from PySide6.QtCore import QTimer
from station.audit import AuditLog
from station.ui import application

opened = application.shut_down_on_quit

def shut_down_on_quit(app, window):
    opened(app, window)

    def interrupt_once_signed_in():
        if window.operator is not None:
            with AuditLog(readonly=True) as log:
                if any(e.action == "SIGN_IN" for e in log.query()):
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C in the console
                    return
        QTimer.singleShot(100, interrupt_once_signed_in)

    QTimer.singleShot(0, interrupt_once_signed_in)

application.shut_down_on_quit = shut_down_on_quit
from station.cli import main
sys.exit(main(["gui", "--demo", "--operator", "demo-tech"]))
"""


def test_ctrl_c_in_the_console_signs_the_operator_out_once(tmp_path):
    from station.audit import AuditLog

    done = _run_window_probe(_INTERRUPT_PROBE, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with AuditLog(tmp_path / "data" / "audit.sqlite3", readonly=True) as log:
        actions = [e.action for e in log.query(operator="demo-tech")]
    assert actions[-2:] == ["SIGN_IN", "SIGN_OUT"] and actions.count("SIGN_OUT") == 1
    assert (tmp_path / "config" / "settings.json").is_file()
    assert "SIGINT" in (tmp_path / "logs" / "station.log").read_text(encoding="utf-8")


# -- network drives: SQLite's locks do not hold on SMB or NFS ---------------------------------------


def test_network_paths_are_told_from_local_ones(tmp_path, monkeypatch):
    from station import storage

    assert storage.is_network_path(r"\\lab-nas\qa\audit.sqlite3") and storage.is_network_path("//lab-nas/qa/x")
    assert storage.is_network_path(r"\\?\UNC\lab-nas\qa\audit.sqlite3")
    assert not storage.is_network_path(r"\\?\C:\station\audit.sqlite3") and not storage.is_network_path(tmp_path)
    monkeypatch.setattr(sys, "platform", "win32")
    drive_types = {"Z:\\": 4, "C:\\": 3}  # DRIVE_REMOTE: a mapped network drive; DRIVE_FIXED
    monkeypatch.setattr(storage, "_windows_drive_type", lambda root: drive_types.get(root.upper(), 0))
    assert storage.is_network_path(r"Z:\station\audit.sqlite3") and storage.is_network_path("z:/audit.sqlite3")
    assert not storage.is_network_path(r"C:\ProgramData\Station\audit.sqlite3")


def fake_mounts(monkeypatch, tmp_path, *lines: str) -> None:
    from station import storage

    mounts = tmp_path / "mounts"
    mounts.write_text("".join(f"{line}\n" for line in ("/dev/sda1 / ext4 rw 0 0", *lines)), encoding="utf-8")
    monkeypatch.setattr(storage, "_MOUNTS", mounts)


def test_linux_mounts_of_nfs_and_smb_are_network_drives(tmp_path, monkeypatch):
    from station.storage import is_network_path

    share = tmp_path / "lab share"
    (share / "station").mkdir(parents=True)
    fake_mounts(monkeypatch, tmp_path, f"//nas/qa {str(share).replace(' ', chr(92) + '040')} cifs rw 0 0",
                f"nas:/export {tmp_path / 'nfs'} nfs4 rw 0 0")
    assert is_network_path(share / "station" / "audit.sqlite3") and is_network_path(tmp_path / "nfs" / "x")
    assert not is_network_path(tmp_path / "lab share2" / "x") and not is_network_path(tmp_path / "local")


def test_the_audit_writer_refuses_a_log_on_a_network_drive(tmp_path, monkeypatch):
    from station.audit import Action, AuditLog, EntryDraft
    from station.audit.entry import AuditWriteError

    local = tmp_path / "share" / "audit.sqlite3"
    with AuditLog(local, station_id="bench-1") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
    fake_mounts(monkeypatch, tmp_path, f"//nas/qa {tmp_path / 'share'} cifs rw 0 0")
    with pytest.raises(AuditWriteError, match="on a network drive.*lab's PostgreSQL log"):
        with AuditLog(local, station_id="bench-1") as log:
            log.append(EntryDraft(Action.SIGN_OUT, operator_id="jdoe"))
    with pytest.raises(AuditWriteError, match="network drive"):
        with AuditLog(Path(r"\\nas\qa\station\audit.sqlite3"), station_id="bench-1") as log:
            log.append(EntryDraft(Action.SIGN_OUT, operator_id="jdoe"))
    with AuditLog(local, readonly=True) as log:  # reading a copy on a share is fine
        assert [e.action for e in log.query()] == ["SIGN_IN"]


def test_reader_uris_work_for_unc_paths_and_odd_names(tmp_path):
    import sqlite3
    from pathlib import PureWindowsPath

    from station.audit import Action, AuditLog, EntryDraft
    from station.storage import sqlite_uri

    assert (sqlite_uri(PureWindowsPath(r"\\lab-nas\qa share\station\audit #1.sqlite3"), "mode=ro")
            == "file:////lab-nas/qa%20share/station/audit%20%231.sqlite3?mode=ro")
    assert sqlite_uri(PureWindowsPath(r"\\?\UNC\lab-nas\qa\a.sqlite3")) == "file:////lab-nas/qa/a.sqlite3"
    assert sqlite_uri(PureWindowsPath(r"C:\Program Data\a?.sqlite3"), "mode=ro") == "file:///C:/Program%20Data/a%3F.sqlite3?mode=ro"
    # what Path.as_uri() gives for a UNC path (and a mapped drive, once resolved): SQLite refuses a host
    assert PureWindowsPath(r"\\lab-nas\qa\a.sqlite3").as_uri() == "file://lab-nas/qa/a.sqlite3"
    with pytest.raises(sqlite3.OperationalError, match="invalid uri authority"):
        sqlite3.connect("file://lab-nas/qa/a.sqlite3?mode=ro", uri=True)
    odd = tmp_path / "lot #7 ? 100% µ" / "audit.sqlite3"
    with AuditLog(odd, station_id="bench-1") as log:
        log.append(EntryDraft(Action.SIGN_IN, operator_id="jdoe"))
    # the UNC form has an empty authority and a path starting with two slashes, which SQLite keeps
    # as it is (here POSIX reads //tmp/... as /tmp/...)
    four_slashes = sqlite3.connect("file:///" + sqlite_uri(odd, "mode=ro").removeprefix("file://"), uri=True)
    assert four_slashes.execute("SELECT count(*) FROM entries").fetchone()[0] == 1
    four_slashes.close()
    with AuditLog(odd, readonly=True) as log:
        assert [e.action for e in log.query()] == ["SIGN_IN"]


# -- one log file per process: two processes rotating one file break on Windows (WinError 32) -------




def _log_files(root) -> list[str]:
    import logging

    return [Path(h.baseFilename).name for h in root.handlers if isinstance(h, logging.FileHandler)]


def test_a_second_process_logs_to_its_own_file(fresh_logging, station_home):
    from station import logs

    root = logs.setup_logging(console=False)
    assert _log_files(root) == ["station.log"]
    env = os.environ | {"PYTHONPATH": str(REPO), "STATION_HOME": str(station_home)}
    done = subprocess.run([sys.executable, "-m", "station", "audit", "list"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "no audit log" in done.stderr
    others = sorted(p.name for p in (station_home / "logs").glob("station-*.log"))
    assert len(others) == 1 and others[0] != f"station-{os.getpid()}.log"
    logs.close_log_file()  # the lock goes with the file: the next process takes station.log
    fresh_logging.__dict__.pop("_station_configured")
    assert _log_files(logs.setup_logging(console=False)) == ["station.log"]


def test_process_logs_older_than_two_weeks_are_removed(fresh_logging, station_home):
    from station import logs, paths

    folder = paths.log_dir()
    old, recent = folder / "station-4242.log", folder / "station-4343.log.1"
    for path in (old, recent):
        path.write_text("x", encoding="utf-8")
    os.utime(old, (0, 0))
    logs.setup_logging(console=False)
    assert not old.exists() and recent.exists()


# -- where the data lives: per machine (C:\ProgramData\station) with the user's choice overriding ----


def _write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_machine_folders_are_in_programdata_on_windows(monkeypatch):
    from pathlib import PureWindowsPath

    import platformdirs
    import platformdirs.windows

    from station import paths

    monkeypatch.delenv("STATION_HOME")
    monkeypatch.setenv("WIN_PD_OVERRIDE_COMMON_APPDATA", "C:\\ProgramData")
    for name in ("site_config_dir", "site_data_dir"):
        monkeypatch.setattr(platformdirs, name, lambda *a, _n=name, **k: getattr(platformdirs.windows.Windows(*a, **k), _n))
    assert PureWindowsPath(str(paths.machine_config_dir())) == PureWindowsPath(r"C:\ProgramData\station\config")
    assert PureWindowsPath(str(paths.machine_data_dir())) == PureWindowsPath(r"C:\ProgramData\station\data")


def test_machine_settings_are_every_users_defaults_and_the_users_own_win(station_home):
    from station.config import SCHEMA_VERSION, load_settings, machine_settings_path, save_settings, settings_path

    assert machine_settings_path() == station_home / "machine" / "config" / "settings.json"
    _write_json(machine_settings_path(), {"version": 1, "audit_url": "postgresql://station@lab/qa",
                                          "station_id": "bench-7", "device": "cpu", "camera": {"fps": 15.0}})
    _write_json(settings_path(), {"version": 1, "device": "cuda", "camera": {"width": 640}})
    settings = load_settings()
    assert (settings.audit_url, settings.station_id, settings.device) == ("postgresql://station@lab/qa", "bench-7", "cuda")
    assert (settings.camera.fps, settings.camera.width) == (15.0, 640)
    settings.foot_pedal_key = "F9"
    save_settings(settings)
    own = json.loads(settings_path().read_text(encoding="utf-8"))
    assert own == {"version": SCHEMA_VERSION, "device": "cuda", "camera": {"width": 640}, "foot_pedal_key": "F9"}
    # the admin moves the lab log: every user who did not choose otherwise follows
    _write_json(machine_settings_path(), {"version": 1, "audit_url": "postgresql://station@lab2/qa"})
    assert load_settings().audit_url == "postgresql://station@lab2/qa" and load_settings().foot_pedal_key == "F9"


def test_machine_recipes_are_every_users_and_the_users_own_win(station_home):
    from station import paths
    from station.inference.recipes import load_recipes

    bundled = json.loads((paths.resources_dir() / "recipes" / "ic_package_demo.json").read_text(encoding="utf-8"))
    machine = station_home / "machine" / "config" / "recipes"
    _write_json(machine / "lab.json", bundled | {"name": "Lab line 2", "description": "the admin's"})
    _write_json(machine / "demo.json", bundled | {"description": "the admin's demo", "uncertain_below": 0.8})
    recipes = load_recipes()
    assert recipes["Lab line 2"].description == "the admin's"
    assert recipes["IC package (demo)"].uncertain_below == 0.8 and recipes["IC package (demo)"].origin == machine / "demo.json"
    _write_json(paths.recipes_dir() / "mine.json", bundled | {"name": "Lab line 2", "description": "mine"})
    recipes = load_recipes()
    assert recipes["Lab line 2"].description == "mine" and recipes["IC package (demo)"].uncertain_below == 0.8
    assert not (paths.machine_config_dir() / "recipes" / "mine.json").exists()


def test_the_station_id_stays_pinned_without_a_machine_value(station_home):
    from station.config import Settings, save_settings, settings_path

    save_settings(Settings())
    assert json.loads(settings_path().read_text(encoding="utf-8"))["station_id"] == "test-station"


def test_the_data_folder_is_the_machines_when_the_installer_made_it(station_home, monkeypatch):
    from station import paths
    from station.config import settings_path

    assert paths.chosen_data_dir() == station_home / "data"  # no machine folder: the user's
    machine = station_home / "machine" / "data"
    machine.mkdir(parents=True)
    assert paths.chosen_data_dir() == machine
    _write_json(settings_path(), {"version": 1, "data_folder": "user"})
    assert paths.chosen_data_dir() == station_home / "data"
    _write_json(settings_path(), {"version": 1, "data_folder": str(station_home / "lab data")})
    assert paths.chosen_data_dir() == station_home / "lab data"
    _write_json(settings_path(), {"version": 1})
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == machine else real_access(p, mode))
    assert paths.chosen_data_dir() == station_home / "data"  # users were not given modify rights


# -- hidden and system files: a drive's recycle bin, restore points, the hidden attribute -----------


def test_batch_review_skips_a_drives_system_folders_and_hidden_files(tmp_path, monkeypatch):
    from station.review import scan

    drive = tmp_path / "E"
    for name in ("lot 7/a.png", "lot 7/b.png", "$RECYCLE.BIN/S-1-5-21/$R0AB12.png", "System Volume Information/x.png",
                 "lot 7/.DS_Store", "lot 7/Thumbs.db", "lot 7/hidden by attribute.png", "secret/c.png", "notes.txt"):
        (drive / name).parent.mkdir(parents=True, exist_ok=True)
        (drive / name).write_bytes(b"")
    assert [f.relative_path for f in scan.scan_folder(drive, recursive=True).files] == [
        "lot 7/a.png", "lot 7/b.png", "lot 7/hidden by attribute.png", "secret/c.png", "notes.txt"]
    monkeypatch.setattr(sys, "platform", "win32")
    hidden = {drive / "lot 7" / "hidden by attribute.png": 0x2, drive / "secret": 0x2 | 0x4}
    asked = []
    monkeypatch.setattr(scan, "_file_attributes", lambda path: asked.append(path) or hidden.get(path, 0x20))
    assert [f.relative_path for f in scan.scan_folder(drive, recursive=True).files] == [
        "lot 7/a.png", "lot 7/b.png", "notes.txt"]
    assert asked.count(drive / "lot 7") == 1  # a folder's attributes are read once per scan


# -- PDF reports: the offscreen platform on Windows finds no system font --------------------------

_PDF_PROBE = r"""
import sys
from station.reports import pdf
if sys.argv[2] == "without-bundled-fonts":
    pdf._font_files = lambda: []
pdf.write_pdf("<h1>Report for Zoë Müller</h1><p>void 5 µm, Ø 2 mm; operator 王小明</p>", sys.argv[1])
"""

_CJK_FONT_FILES = ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
                   "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                   "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def _pdf_text_without_system_fonts(tmp_path: Path, mode: str, windir: Path | None = None) -> str:
    """The text pdftotext reads from a report laid out where fontconfig knows no font at all."""
    config = tmp_path / "fonts.conf"
    config.write_text(f"<?xml version='1.0'?><fontconfig><cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>",
                      encoding="utf-8")
    env = os.environ | {"PYTHONPATH": str(REPO), "FONTCONFIG_FILE": str(config)}
    env.pop("WINDIR", None)
    if windir is not None:
        env["WINDIR"] = str(windir)
    out = tmp_path / f"{mode}.pdf"
    done = subprocess.run([sys.executable, "-c", _PDF_PROBE, str(out), mode], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext (poppler-utils)")
def test_a_pdf_report_has_its_text_where_no_system_font_is_found(tmp_path):
    assert "Zoë Müller" not in _pdf_text_without_system_fonts(tmp_path, "without-bundled-fonts")  # the Windows bug
    text = _pdf_text_without_system_fonts(tmp_path, "bundled")
    assert "Report for Zoë Müller" in text and "void 5 µm, Ø 2 mm" in text
    cjk = next((Path(p) for p in _CJK_FONT_FILES if Path(p).is_file()), None)
    assert cjk is not None, "no CJK font to stand in for Windows' Microsoft YaHei (scripts/install-system-deps.sh)"
    fonts = tmp_path / "Windows" / "Fonts"
    fonts.mkdir(parents=True)
    (fonts / "msyh.ttc").symlink_to(cjk)
    assert "operator 王小明" in _pdf_text_without_system_fonts(tmp_path, "bundled", windir=tmp_path / "Windows")


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs pdftotext (poppler-utils)")
def test_the_audit_pdf_export_has_the_operators_names(audit_db, tmp_path):
    from station.audit.export import export

    out = export("pdf", tmp_path / "audit.pdf", db_path=audit_db).path
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True).stdout
    assert "Audit log report" in text and "zoë" in text and "SIGN_IN" in text


# -- the installer: icon, version resource, PATH clean-up, Windows and Inno Setup versions, signing ---


def test_the_executables_have_an_icon_and_a_version_resource_from_the_package_version():
    from PIL import Image

    from station import __version__

    icon = Image.open(REPO / "resources" / "icons" / "station.ico")
    assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(icon.info["sizes"])
    sys.path.insert(0, str(REPO / "packaging"))
    try:
        from windows_version import version_file_text, version_numbers
    finally:
        sys.path.remove(str(REPO / "packaging"))
    text = version_file_text(__version__, file_description="IC Inspection Station", original_filename="station-gui.exe")
    # PyInstaller reads the file with eval() over its versioninfo classes; these stand-ins keep the arguments
    calls: dict[str, list] = {}
    names = ("VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable", "StringStruct", "VarFileInfo", "VarStruct")
    eval(text, {name: (lambda *args, _n=name, **kwargs: calls.setdefault(_n, []).append((args, kwargs)))  # noqa: S307
                for name in names})
    fixed = calls["FixedFileInfo"][0][1]
    assert fixed["filevers"] == fixed["prodvers"] == version_numbers(__version__)
    strings = dict(args for args, _ in calls["StringStruct"])
    assert strings["FileVersion"] == strings["ProductVersion"] == __version__
    assert strings["OriginalFilename"] == "station-gui.exe"
    assert version_numbers("0.2.0rc1") == (0, 2, 0, 0) and version_numbers("1.2.3.4") == (1, 2, 3, 4)
    spec = (REPO / "build.spec").read_text(encoding="utf-8")
    assert spec.count('version=version_resource("station') == 2 and "icon=str(ICON)" in spec


def test_the_installer_script_cleans_path_exactly_and_signs_only_when_asked():
    script = (REPO / "packaging" / "windows" / "station.iss").read_text(encoding="utf-8")
    assert "#if Ver < EncodeVer(6, 3, 0)" in script and "ArchitecturesAllowed=x64compatible" in script
    assert "MinVersion=10.0.17763" in script
    assert "#ifdef Sign\nSignTool=stationsign\nSignedUninstaller=yes\n#endif" in script
    assert script.count("signonce") == 2 and "SetupIconFile=..\\..\\resources\\icons\\station.ico" in script
    # entries are compared whole: removing C:\Program Files\Station leaves ...\Station2 alone
    assert "WithoutPathEntry(Path, ExpandConstant('{app}'))" in script and "Pos(Uppercase(Entry)" not in script
    assert 'Name: "{commonappdata}\\station\\data"; Permissions: users-modify' in script


def test_the_running_window_has_the_executables_icon(qapp):
    from PySide6.QtCore import QSize

    from station.ui.application import application_icon

    icon = application_icon()
    assert not icon.isNull() and {QSize(16, 16), QSize(256, 256)} <= set(icon.availableSizes())

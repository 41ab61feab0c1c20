"""station.app composes the window: settings, recipes, the audit log's place and the station ID are
read once and passed in; no part of the window reads the settings files for them itself."""

from __future__ import annotations

import argparse

import pytest

pytest.importorskip("PySide6.QtWidgets")

from station.audit import AuditError, AuditLog, AuditSetup  # noqa: E402
from station.config import Settings  # noqa: E402
from station.workflow import Operator  # noqa: E402


def test_the_audit_setup_is_the_settings_log_with_the_environment_first(monkeypatch, station_home):
    from station import paths

    local = AuditSetup.from_settings(Settings(station_id="bench-3"))
    assert (local.location, local.station_id, local.archive_dir) == (paths.audit_db_path(), "bench-3", paths.archive_dir())
    lab = AuditSetup.from_settings(Settings(audit_url="postgresql://station@lab/qa"))
    assert lab.location == "postgresql://station@lab/qa"
    monkeypatch.setenv("STATION_AUDIT_URL", "postgresql://station@other/qa")
    assert AuditSetup.from_settings(Settings(audit_url="postgresql://station@lab/qa")).location == "postgresql://station@other/qa"


def test_a_malformed_audit_url_is_a_problem_said_on_open_not_a_crash_at_start():
    setup = AuditSetup.from_settings(Settings(audit_url="lab-server/qa"))
    assert setup.location is None and "not a postgresql:// URL" in setup.problem
    with pytest.raises(AuditError, match="not a postgresql:// URL"):
        setup.open()


def test_the_window_writes_where_and_as_what_it_was_composed_with(qtbot, tmp_path):
    from station.ui.main_window import MainWindow

    setup = AuditSetup(tmp_path / "lab" / "audit.sqlite3", "bench-9", tmp_path / "lab" / "archive")
    window = MainWindow(Settings(station_id="from-the-settings"), "CPU (test)", recipes={}, audit=setup)
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.audit_committed, timeout=10_000) as committed:
            window.sign_in(Operator("op-7", "Ada Tester"))
        assert committed.args[0].station_id == "bench-9"
    finally:
        window.shutdown()
    with AuditLog(setup.location, readonly=True) as log:
        assert [(e.action, e.station_id) for e in log.query()] == [("SIGN_IN", "bench-9"), ("SIGN_OUT", "bench-9")]
    from station import paths

    assert not paths.audit_db_path().exists()  # nothing went to the settings' log


def test_app_reads_everything_once_and_passes_it_to_the_window(monkeypatch):
    from station import app
    from station.ui import application

    composed = {}
    monkeypatch.setattr(application, "run_window", lambda settings, device, **kw: composed.update(kw, settings=settings) or 0)
    parser = argparse.ArgumentParser()
    app.configure(parser)
    assert app.run(parser.parse_args(["--demo"])) == 0
    audit, settings = composed["audit"], composed["settings"]
    assert isinstance(audit, AuditSetup) and audit.station_id == settings.station_id == "test-station"
    assert "IC package (demo)" in composed["recipes"]
    with audit.open(readonly=True) as log:  # the demo accounts went to the composed log
        assert any(e.action == "USER_ADD" for e in log.query())

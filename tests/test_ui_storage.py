"""The window opens on a read-only data folder, says why it cannot record, and keeps release blocked."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402
from helpers_storage import run_station_read_only  # noqa: E402

from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return make_tiny_recipe(tmp_path_factory.mktemp("models"))


def test_a_log_that_cannot_be_written_is_named_at_start(qtbot, recipe, station_home):
    (station_home / "data").write_text("a file where the data folder should be\n")  # nothing can be created under it
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.notified, timeout=20_000) as shown:
            window.show()
        title, message = shown.args
        assert title == "Audit log not writable"
        assert "audit.sqlite3" in message and "no chip can be released" in message
        assert "LOG NOT WRITABLE" in window.audit_label.text() and "release blocked" in window.audit_label.text()
        assert not window.panel.release_button.isEnabled()
    finally:
        window.shutdown()


def test_the_station_opens_on_a_read_only_home_and_says_why(station_home, tmp_path):
    (station_home / "logs").mkdir()
    screenshot = tmp_path / "window.png"
    done = run_station_read_only(station_home, "--demo", "--operator", "op:Operator", "--screenshot", str(screenshot))
    # (not the exit status: quitting while the models still load can abort in QThread's destructor)
    assert screenshot.is_file(), done.stderr  # the window opened and was drawn
    assert "cannot write the log file" in done.stderr and "logging to the console only" in done.stderr
    assert "Audit log not writable" in done.stderr and "read-only" in done.stderr
    assert "no chip can be released" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_station_opens_on_a_full_disk_and_says_why(station_home, tmp_path):
    from helpers_storage import run_station_on_full_disk

    screenshot = tmp_path / "window.png"
    done = run_station_on_full_disk(station_home, [["selftest"]], "--demo", "--operator", "op:Operator",
                                    "--screenshot", str(screenshot), show_log=True)
    assert screenshot.is_file(), done.stderr
    # the GUI logs to its file while the file's last block has room, then to the console
    assert "Audit log not writable" in done.stderr and "the disk is full" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_sign_in_at_start_waits_until_the_unwritable_log_was_said_and_names_it(qtbot, recipe, station_home,
                                                                                   monkeypatch):
    """Seen on the real window (STATION_HOME read-only): the sign-in dialog opened over the "Audit log
    not writable" box and hid it, and then refused the sign-in with the same message."""
    from PySide6.QtWidgets import QDialog, QMessageBox

    from station.ui import users_session

    shown: list[str] = []

    class SeenSignIn(users_session.PasswordSignInDialog):
        def exec(self) -> int:
            shown.append(self.message.text())
            return QDialog.DialogCode.Rejected

    monkeypatch.setattr(users_session, "PasswordSignInDialog", SeenSignIn)
    (station_home / "data").write_text("a file where the data folder should be\n")
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.notified, timeout=20_000):
            window.show()
            window.sign_in_at_start(window.request_sign_in)
        box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
        assert box.windowTitle() == "Audit log not writable"
        # the sign-in waits for the box: not queued, and no fallback time-out will open it over the box
        assert shown == [] and window._start_ask is not None and not window._start_timer.isActive()
        box.button(QMessageBox.StandardButton.Ok).click()
        qtbot.waitUntil(lambda: bool(shown), timeout=5_000)
        assert shown[0].startswith("The audit log cannot be written, so a sign-in cannot be recorded:")
        assert "audit.sqlite3" in shown[0]
        assert window.isVisible()
    finally:
        window.shutdown()


def test_the_sign_in_at_start_opens_at_once_on_a_log_that_can_store(qtbot, recipe):
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    asked: list[bool] = []
    try:
        window.show()
        window.sign_in_at_start(lambda: asked.append(True))
        qtbot.waitUntil(lambda: asked == [True], timeout=5_000)  # well before the 10 s a silent log would take
        assert window.log_problem == ""
    finally:
        window.shutdown()

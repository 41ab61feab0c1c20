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

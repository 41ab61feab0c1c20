"""The batch review window's life as a technician lives it: Subfolders on and remembered, Enter
starts, the window stays within a 1366-px screen after a run with the Review column in view,
closing it (or the station) mid-run asks and then stops cleanly, and counts read "1 error"."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from helpers_review import copy_folder, make_review_setup  # noqa: E402
from helpers_users import expert_signs  # noqa: E402
import threading  # noqa: E402

from PySide6.QtCore import QObject, QSize, Qt, Signal, Slot  # noqa: E402

from station.config import Settings, load_settings, save_settings  # noqa: E402
from station.ui.batch_model import REVIEW_COLUMN  # noqa: E402
from station.ui.batch_window import BatchReviewWindow  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402
from station.ui.screen_fit import available_geometry, keep_on_screen  # noqa: E402
from station.ui.window_menus import KEEP_RUNNING, STOP_AND_QUIT  # noqa: E402
from station.ui.workers import FINISHING  # noqa: E402
from station.workflow import Operator  # noqa: E402

OPERATOR = Operator("op-9", "Ada Reviewer")
RUN_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def review_setup(tmp_path_factory):
    return make_review_setup(tmp_path_factory.mktemp("ui-review-life"))


def _window(qtbot, recipe, settings=None):
    settings = settings or Settings(recipe=recipe.name, device="cpu")
    window = BatchReviewWindow(settings, {recipe.name: recipe}, OPERATOR, ask_signature=expert_signs)
    qtbot.addWidget(window, before_close_func=lambda w: w.shutdown())
    window.show()
    return window


def test_subfolders_are_on_by_default_and_remembered(qtbot, review_setup, tmp_path):
    _, _, recipe = review_setup
    settings = Settings(recipe=recipe.name, device="cpu")
    first = _window(qtbot, recipe, settings)
    assert first.recursive_check.isChecked()
    first.recursive_check.setChecked(False)
    first.close()
    assert not _window(qtbot, recipe, settings).recursive_check.isChecked()  # opened again, same session
    save_settings(settings, tmp_path / "settings.json")
    assert load_settings(tmp_path / "settings.json").batch_recursive is False  # and after a restart


def test_enter_in_the_folder_field_starts_and_the_window_stays_on_a_bench_screen(qtbot, review_setup, tmp_path):
    source, names, recipe = review_setup
    deep = tmp_path.joinpath(*[f"a-rather-long-folder-name-{i}" for i in range(6)])
    folder = copy_folder(source, deep)
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.png").write_bytes((folder / names[0]).read_bytes())
    window = _window(qtbot, recipe)
    window.resize(1366, 738)  # maximized on a 1366×768 screen under a task bar
    window.folder_edit.setText(str(folder))
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        qtbot.keyClick(window.folder_edit, Qt.Key.Key_Return)
    assert finished.args[0].inspected == len(names) + 1  # the subfolder's image too
    # after the run (long paths, counts) the window still fits a 1366-px screen: the offscreen test
    # screen is smaller, and keep_on_screen shrank the window to what it can be
    assert window.minimumSizeHint().width() <= 1366 - 16
    available = available_geometry(window)
    assert window.width() <= max(available.width(), window.minimumSizeHint().width())
    window.resize(1366, 738)
    qtbot.waitUntil(lambda: window.size() == QSize(1366, 738), timeout=2_000)
    qtbot.wait(20)
    header, table = window.table.horizontalHeader(), window.table
    assert header.length() <= table.viewport().width()  # no horizontal scrolling
    right = header.sectionViewportPosition(REVIEW_COLUMN) + header.sectionSize(REVIEW_COLUMN)
    assert 0 <= header.sectionViewportPosition(REVIEW_COLUMN) and right <= table.viewport().width()
    width = table.fontMetrics().horizontalAdvance("not reviewed")
    assert header.sectionSize(REVIEW_COLUMN) >= width
    assert "3 errors" in window.progress_label.text()


def test_one_error_reads_in_the_singular(qtbot, review_setup, tmp_path):
    source, names, recipe = review_setup
    folder = copy_folder(source, tmp_path / "one", names[:2] + ["empty.jpg"])
    window = _window(qtbot, recipe)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.open_folder(folder, want_attention=False)
    assert window.progress_label.text().endswith("1 error")


def _start_and_wait_until_running(qtbot, window, folder):
    with qtbot.waitSignal(window.run_opened, timeout=RUN_TIMEOUT_MS):
        window.open_folder(folder, want_attention=False)
        window.pause()  # holds the run mid-way, so the close happens during it
    assert window.running


def test_closing_the_batch_window_mid_run_asks_then_stops_cleanly(qtbot, review_setup, tmp_path):
    source, _, recipe = review_setup
    window = _window(qtbot, recipe)
    _start_and_wait_until_running(qtbot, window, copy_folder(source, tmp_path / "folder"))
    asked = []
    window.confirm_stop_run = lambda: asked.append("no") and False
    window.close()
    assert asked == ["no"] and window.isVisible() and window.running
    window.confirm_stop_run = lambda: True
    window.close()
    assert not window.isVisible() and window.is_shut_down
    assert all(t.thread.isFinished() for t in (window.batch_thread, window.verdict_thread, window.loader_thread))


def test_closing_the_station_during_a_batch_asks_then_stops_it(qtbot, review_setup, tmp_path):
    source, _, recipe = review_setup
    main = MainWindow(Settings(recipe=recipe.name, device="cpu"), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(main)
    main.show()
    main.open_batch_review()
    batch = main._batch_window
    _start_and_wait_until_running(qtbot, batch, copy_folder(source, tmp_path / "folder"))
    questions = []
    main.ask_choice = lambda title, text, choices: questions.append(title) or KEEP_RUNNING
    main.close()
    assert questions == ["Batch review running"] and main.isVisible() and batch.running
    main.ask_choice = lambda title, text, choices: STOP_AND_QUIT
    main.close()
    assert not main.isVisible() and batch.is_shut_down and batch.batch_thread.thread.isFinished()


def test_the_stations_audit_label_names_a_decision_made_in_batch_review(qtbot, review_setup, tmp_path):
    """Seen on the real window: "Audit: #N" stayed at the main window's last entry while the batch
    review committed newer ones."""
    source, _, recipe = review_setup
    main = MainWindow(Settings(recipe=recipe.name, device="cpu"), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(main)
    main.show()
    with qtbot.waitSignal(main.audit_committed, timeout=10_000) as signed_in:
        main.sign_in(OPERATOR)
    assert main.audit_label.text() == f"Audit: #{signed_in.args[0].id} Sign in"
    main.open_batch_review()
    batch = main._batch_window
    with qtbot.waitSignal(batch.run_finished, timeout=RUN_TIMEOUT_MS):
        batch.open_folder(copy_folder(source, tmp_path / "folder"), want_attention=False)
    sure = next(r for r in batch.model.rows() if r.is_done and not r.uncertain)
    batch.select_item(sure.item_id)
    batch.table.setFocus()
    with qtbot.waitSignal(batch.verdict_committed, timeout=10_000) as accepted:
        qtbot.keyClick(batch.table, Qt.Key.Key_A)
    entry = accepted.args[0]
    assert entry.id > signed_in.args[0].id
    assert main.audit_label.text() == f"Audit: #{entry.id} Batch verdict"
    main.note_committed(signed_in.args[0])  # an older entry's late answer from the other writer thread
    assert main.audit_label.text() == f"Audit: #{entry.id} Batch verdict"
    main.close()


def test_a_batch_window_closed_and_opened_again_is_a_fresh_one(qtbot, review_setup):
    _, _, recipe = review_setup
    main = MainWindow(Settings(recipe=recipe.name, device="cpu"), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(main)
    main.open_batch_review()
    first = main._batch_window
    first.close()
    main.open_batch_review()
    assert main._batch_window is not first and not main._batch_window.is_shut_down
    main.close()


def test_keep_on_screen_pulls_a_grown_window_back_inside(qtbot):
    from PySide6.QtWidgets import QWidget

    widget = QWidget()
    qtbot.addWidget(widget)
    available = available_geometry(widget)
    widget.resize(available.width() + 300, available.height() + 200)
    widget.move(available.right() - 50, available.top() + 10)
    keep_on_screen(widget)
    assert widget.width() <= available.width() and widget.height() <= available.height()
    assert widget.frameGeometry().left() >= available.left() and widget.frameGeometry().right() <= available.right()


class Blocker(QObject):
    """Occupies a worker thread, as a network mid-call does, until ``release`` is set."""

    block = Signal()
    blocking = Signal()

    def __init__(self, thread, release: threading.Event) -> None:
        super().__init__()
        self._release = release
        self.block.connect(self._wait)
        self.moveToThread(thread)

    @Slot()
    def _wait(self) -> None:
        self.blocking.emit()
        self._release.wait(60)


def _block(qtbot, worker_thread, release):
    blocker = Blocker(worker_thread.thread, release)
    with qtbot.waitSignal(blocker.blocking, timeout=5_000):
        blocker.block.emit()
    return blocker


def test_a_batch_thread_busy_past_the_close_outlives_the_window_and_is_closed_when_it_ends(qtbot, review_setup):
    _, _, recipe = review_setup
    window = _window(qtbot, recipe)
    window.stop_timeout_ms = 200
    closed = []
    window.batch.close = lambda: closed.append("engine")  # runs on the GUI thread once the thread ended
    release = threading.Event()
    blocker = _block(qtbot, window.batch_thread, release)
    window.close()  # returns after the timeout, not when the thread ends
    assert window.is_shut_down and not window.isVisible()
    assert "batch-review" in FINISHING.names() and window.batch_thread.thread.isRunning() and closed == []
    assert window.verdict_thread.thread.isFinished()
    thread = window.batch_thread.thread
    del window
    with qtbot.waitSignal(FINISHING.released, timeout=10_000, check_params_cb=lambda name: name == "batch-review"):
        release.set()
    assert thread.isFinished() and closed == ["engine"] and "batch-review" not in FINISHING.names()
    del blocker


def test_a_main_window_thread_busy_past_the_close_outlives_it(qtbot, review_setup):
    _, _, recipe = review_setup
    main = MainWindow(Settings(recipe=recipe.name, device="cpu"), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(main)
    main.stop_timeouts_ms = {"inference": 200}
    release = threading.Event()
    blocker = _block(qtbot, main.inference_thread, release)
    main.close()
    assert not main.isVisible() and main.inference_thread.name in FINISHING.names()
    assert main.capture_thread.thread.isFinished()
    with qtbot.waitSignal(FINISHING.released, timeout=10_000):
        release.set()
    assert main.inference_thread.thread.isFinished() and FINISHING.names() == []
    del blocker

"""The main window on the simulated microscope: frames arrive, stop, close cleanly."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402


@pytest.fixture
def window(qtbot):
    window = MainWindow(Settings(), "CPU (test)", recipes={})
    qtbot.addWidget(window)
    window.show()
    yield window
    window.shutdown()


def test_demo_source_streams_frames_then_stops(qtbot, window):
    with qtbot.waitSignal(window.source_started, timeout=10_000):
        window.start_source("demo")
    qtbot.waitUntil(lambda: window.frames_shown >= 5, timeout=10_000)
    frame = window.latest_frame
    assert frame.image.ndim == 3 and frame.image.shape[2] == 3
    assert "Simulated" in window.source_label.text() or "simulated" in window.source_label.text().lower()
    assert not window.source_bar.start_button.isEnabled()
    with qtbot.waitSignal(window.source_stopped, timeout=5_000):
        window.stop_source()
    assert window.source_bar.start_button.isEnabled()


def test_missing_camera_reports_error_and_keeps_running(qtbot, window):
    shown = []
    window.notified.connect(lambda title, message: shown.append(message))
    with qtbot.waitSignal(window.source_stopped, timeout=20_000):
        window.start_source("97")
    assert any("97" in message for message in shown)
    assert window.source_bar.start_button.isEnabled()
    # the window still works: the demo starts after the failure
    with qtbot.waitSignal(window.source_started, timeout=10_000):
        window.start_source("demo")
    with qtbot.waitSignal(window.source_stopped, timeout=5_000):
        window.stop_source()


def test_closing_stops_the_capture_thread(qtbot, window):
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    window.close()
    assert window.capture_thread.thread.isFinished()


def test_worker_signals_reach_the_window_on_the_gui_thread(qtbot, window):
    from PySide6.QtCore import QThread

    threads = []
    window.notified.connect(lambda *_: threads.append(QThread.currentThread()))
    with qtbot.waitSignal(window.source_stopped, timeout=20_000):
        window.start_source("97")
    assert threads and all(thread is window.thread() for thread in threads)

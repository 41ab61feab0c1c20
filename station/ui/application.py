"""The Qt application around the main window: created, shown, run until the window closes.

``station.app`` composes what the window needs and calls ``run_window``; this is the only place
that creates the QApplication.
"""

from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from station.config import Settings
from station.ui.main_window import MainWindow
from station.workflow import Operator

log = logging.getLogger(__name__)


def run_window(
    settings: Settings,
    device_description: str,
    *,
    start_source: bool = False,
    operator: Operator | None = None,
    screenshot: str | None = None,
    auto_capture: bool = False,
) -> int:
    """Show the main window and run the event loop; returns the application's exit code.

    ``start_source`` opens ``settings.camera.source`` at once; ``operator`` is signed in
    without the dialog; ``screenshot`` grabs the window to that PNG and quits (documentation).
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("IC Inspection Station")
    app.setOrganizationName("station")
    window = MainWindow(settings, device_description)
    window.show()
    if start_source:
        window.start_source(settings.camera.source)
    if operator is not None:
        window.sign_in(operator)
    else:
        QTimer.singleShot(0, window.request_sign_in)
    if screenshot:
        _schedule_screenshot(window, screenshot, auto_capture)
    log.info("station window opened (source %s, %s)", settings.camera.source, device_description)
    return app.exec()


def _schedule_screenshot(window: MainWindow, path: str, auto_capture: bool, delay_ms: int = 6000) -> None:
    """Grab the window after ``delay_ms``; with ``auto_capture``, Capture & Classify first
    and grab once the result is shown."""

    def grab_and_quit() -> None:
        window.grab().save(path)
        window.close()
        QApplication.instance().quit()

    if not auto_capture:
        QTimer.singleShot(delay_ms, grab_and_quit)
        return

    def capture() -> None:
        if window._recipe is None or window.latest_frame is None:  # models still loading: try again shortly
            QTimer.singleShot(1000, capture)
            return
        window.inspection_updated.connect(lambda: QTimer.singleShot(500, grab_and_quit))
        window.capture_and_classify()

    QTimer.singleShot(delay_ms, capture)

"""The Qt application around the main window: created, shown, run until the window closes.

``station.app`` composes what the window needs and calls ``run_window``; this is the only place
that creates the QApplication.

The window's ``shutdown`` (workers stopped, the operator signed out, settings saved) runs once on
``aboutToQuit``, however the station ends: its window closed, Ctrl+C in the console, or the end of
the Windows session (logoff, an update's restart, the installer's Restart Manager), where Qt emits
``aboutToQuit`` on WM_ENDSESSION and the process is ended soon after, without any close event.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from station import __version__, paths
from station.config import Settings
from station.logs import close_log_file
from station.ui.main_window import MainWindow
from station.ui.workers import FINISHING

log = logging.getLogger(__name__)


def run_window(
    settings: Settings,
    device_description: str,
    *,
    recipes: dict | None = None,
    audit=None,
    start_source: bool = False,
    user=None,
    sign_in_id: str = "",
    sign_in_hint: str = "",
    first_admin: bool = False,
    screenshot: str | None = None,
    auto_capture: bool = False,
) -> int:
    """Show the main window and run the event loop; returns the application's exit code.

    ``recipes`` and ``audit`` (a ``station.audit.AuditSetup``) are what ``station.app`` read once.

    ``start_source`` opens ``settings.camera.source`` at once; ``user`` (a ``station.users.User``
    whose password was checked) is signed in without the dialog; otherwise the sign-in dialog
    opens with ``sign_in_id`` and ``sign_in_hint``, after the first-admin dialog when
    ``first_admin``; ``screenshot`` grabs the window to that PNG and quits (documentation).
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("IC Inspection Station")
    app.setOrganizationName("station")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(application_icon())  # every window's title bar and the taskbar
    window = MainWindow(settings, device_description, recipes=recipes, audit=audit)
    shut_down_on_quit(app, window)
    window.show_fitted()
    if start_source:
        window.start_source(settings.camera.source)
    window.sign_in_hint = sign_in_hint
    if user is not None:
        window.sign_in_user(user)
    else:
        def ask() -> None:
            if not first_admin or window.request_first_admin():
                window.request_sign_in(sign_in_id or None)

        window.sign_in_at_start(ask)  # after the audit log's status: a problem with it is said first
    if screenshot:
        _schedule_screenshot(window, screenshot, auto_capture)
    log.info("station window opened (source %s, %s)", settings.camera.source, device_description)
    code = app.exec()
    finish_outliving_threads(code)
    return code


def finish_outliving_threads(code: int, timeout_ms: int = 60_000) -> None:
    """After the event loop: wait for worker threads that outlived their windows (a network
    mid-call). One still running at the deadline would abort the process as Python frees it
    ("QThread: Destroyed while thread is still running"), so the process ends here instead."""
    if FINISHING.wait_all(timeout_ms):
        return
    log.error("threads still running %d s after the window closed (%s): ending the process",
              timeout_ms // 1000, ", ".join(FINISHING.names()))
    close_log_file()
    logging.shutdown()
    os._exit(code)


def application_icon() -> QIcon:
    """The executables' icon (resources/icons/station.ico, drawn by packaging/make_icon.py)."""
    return QIcon(str(paths.resources_dir() / "icons" / "station.ico"))


def shut_down_on_quit(app: QApplication, window: MainWindow) -> None:
    """``window.shutdown`` then the log file's close on ``aboutToQuit``; Ctrl+C (and Ctrl+Break, a
    closed console on Windows, SIGTERM elsewhere) quits the application like closing its window."""
    app.aboutToQuit.connect(window.shutdown)
    app.aboutToQuit.connect(close_log_file)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _quit_on_signal)
    # Python runs a signal handler only when it next runs bytecode, never inside Qt's event loop:
    # a timer gives it that chance five times a second.
    wake = QTimer(app)
    wake.timeout.connect(_stay_responsive_to_signals)
    wake.start(200)


def _quit_on_signal(signum, frame) -> None:
    log.info("station ending on signal %s", signal.Signals(signum).name)
    QApplication.quit()


def _stay_responsive_to_signals() -> None:
    pass


def _schedule_screenshot(window: MainWindow, path: str, auto_capture: bool, delay_ms: int = 6000) -> None:
    """Grab the window after ``delay_ms``; with ``auto_capture``, Capture & Classify first
    and grab once the result is shown."""

    def grab_and_quit() -> None:
        window.grab().save(path)
        window.close()
        QApplication.instance().quit()

    if not auto_capture:
        # a loaded machine (or a frozen app's first start) can take longer than delay_ms: grab once
        # the models are loaded and a frame is on screen, or after a minute whatever there is
        waited = {"ms": 0}

        def grab_when_ready() -> None:
            # a recipe that failed to load never becomes ready: after 15 s the frame alone will do
            ready = window.frames_shown > 0 and (window._recipe is not None or waited["ms"] >= 15_000)
            if ready or waited["ms"] >= 60_000:
                QTimer.singleShot(300, grab_and_quit)  # one more paint of what is shown
                return
            waited["ms"] += 500
            QTimer.singleShot(500, grab_when_ready)

        QTimer.singleShot(delay_ms, grab_when_ready)
        return

    def capture() -> None:
        if window._recipe is None or window.latest_frame is None:  # models still loading: try again shortly
            QTimer.singleShot(1000, capture)
            return
        window.inspection_updated.connect(lambda: QTimer.singleShot(500, grab_and_quit))
        window.capture_and_classify()

    QTimer.singleShot(delay_ms, capture)

"""The station's main window: live view, source controls and status bar."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QSplitter, QToolBar

from station import __version__
from station.config import Settings, save_settings
from station.ui.image_view import ImageView
from station.ui.source_bar import DEMO_LABEL, SourceBar
from station.ui.workers import CaptureWorker, WorkerThread

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    _run_source = Signal(str)  # queued into the capture thread

    def __init__(self, settings: Settings, device_description: str = "CPU") -> None:
        super().__init__()
        self.settings = settings
        self.setWindowTitle(f"IC Inspection Station {__version__}")
        self.resize(1400, 860)

        self.capture = CaptureWorker()
        self.capture_thread = WorkerThread(self.capture, "capture")
        self._run_source.connect(self.capture.run_source)
        self.capture.frame_available.connect(self._show_latest_frame)
        self.capture.source_opened.connect(self._on_source_opened)
        self.capture.source_problem.connect(self._on_source_problem)
        self.capture.source_error.connect(self._on_source_error)
        self.capture.source_finished.connect(self._on_source_finished)
        self.capture.fps_measured.connect(self._on_fps)
        self.latest_frame = None
        self.frames_shown = 0

        self.source_bar = SourceBar()
        self.source_bar.start_requested.connect(self.start_source)
        self.source_bar.pause_toggled.connect(self.capture.set_paused)
        self.source_bar.stop_requested.connect(self.stop_source)
        toolbar = QToolBar("Source")
        toolbar.setObjectName("sourceToolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.source_bar)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)

        self.live_view = ImageView("No source running.\nChoose a source and press Start.")
        self.live_view.setObjectName("liveView")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.live_view)
        self.setCentralWidget(self.splitter)

        self.source_label = QLabel("Source: none")
        self.fps_label = QLabel("— fps")
        self.device_label = QLabel(f"Compute: {device_description}")
        for widget in (self.source_label, self.fps_label, self.device_label):
            self.statusBar().addPermanentWidget(widget)
        self.source_bar.select_spec(settings.camera.source, DEMO_LABEL if settings.camera.source == "demo" else None)

    # -- sources ------------------------------------------------------------------
    @Slot(str)
    def start_source(self, spec: str) -> None:
        self.source_bar.set_running(True)
        self.source_label.setText(f"Source: opening {spec}…")
        self.settings.camera.source = spec
        self._run_source.emit(spec)

    @Slot()
    def stop_source(self) -> None:
        self.capture.request_stop()

    @Slot()
    def _show_latest_frame(self) -> None:
        frame = self.capture.mailbox.take()
        if frame is None:
            return
        self.latest_frame = frame
        self.frames_shown += 1
        self.live_view.set_image(frame.image)

    @Slot(str)
    def _on_source_opened(self, description: str) -> None:
        self.source_label.setText(f"Source: {description}")
        log.info("source opened: %s", description)

    @Slot(str)
    def _on_source_problem(self, message: str) -> None:
        log.warning("source problem: %s", message)
        self.statusBar().showMessage(message, 8000)

    @Slot(str)
    def _on_source_error(self, message: str) -> None:
        self.source_label.setText("Source: none")
        self.live_view.set_placeholder(message)
        QMessageBox.warning(self, "Source error", message)

    @Slot()
    def _on_source_finished(self) -> None:
        self.source_bar.set_running(False)
        self.fps_label.setText("— fps")
        if not self.source_label.text().endswith("none"):
            self.source_label.setText(self.source_label.text() + " (stopped)")

    @Slot(float)
    def _on_fps(self, fps: float) -> None:
        self.fps_label.setText(f"{fps:.1f} fps")

    # -- lifetime -----------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every worker thread; called once when the window closes."""
        if not self.capture_thread.stop():
            log.warning("capture thread did not stop in time")
        try:
            save_settings(self.settings)
        except OSError as exc:
            log.warning("could not save settings: %s", exc)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

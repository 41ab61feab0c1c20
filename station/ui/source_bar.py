"""Toolbar widgets to choose a frame source and start / pause / stop it."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QWidget,
)

DEMO_LABEL = "Simulated microscope (demo)"
_CHOOSE_VIDEO = "Video file…"
_CHOOSE_FOLDER = "Image folder…"
_CHOOSE_URL = "Camera URL / other index…"


class SourceBar(QWidget):
    """Emits ``start_requested(spec)``; ``pause_toggled``; ``stop_requested``."""

    start_requested = Signal(str)
    pause_toggled = Signal(bool)
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picker = QComboBox()
        self.picker.setObjectName("sourcePicker")
        self.picker.setMinimumContentsLength(28)
        self.picker.addItem(DEMO_LABEL, "demo")
        for index in range(3):
            self.picker.addItem(f"Camera {index}", str(index))
        for label in (_CHOOSE_VIDEO, _CHOOSE_FOLDER, _CHOOSE_URL):
            self.picker.addItem(label, None)
        self.picker.activated.connect(self._on_activated)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.stop_button = QPushButton("Stop")
        self.start_button.clicked.connect(lambda: self.start_requested.emit(self.current_spec()))
        self.pause_button.toggled.connect(self.pause_toggled)
        self.stop_button.clicked.connect(self.stop_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Source:"))
        layout.addWidget(self.picker)
        layout.addWidget(self.start_button)
        layout.addWidget(self.pause_button)
        layout.addWidget(self.stop_button)
        self.set_running(False)

    def current_spec(self) -> str:
        return self.picker.currentData() or "demo"

    def select_spec(self, spec: str, label: str | None = None) -> None:
        index = self.picker.findData(spec)
        if index < 0:
            self.picker.insertItem(self.picker.count() - 3, label or spec, spec)
            index = self.picker.findData(spec)
        self.picker.setCurrentIndex(index)

    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.picker.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.setChecked(False)

    def _on_activated(self, index: int) -> None:
        if self.picker.itemData(index) is not None:
            return
        label = self.picker.itemText(index)
        spec = ""
        if label == _CHOOSE_VIDEO:
            spec, _ = QFileDialog.getOpenFileName(
                self, "Open video", "", "Videos (*.mp4 *.avi *.mkv *.mov *.m4v);;All files (*)"
            )
        elif label == _CHOOSE_FOLDER:
            spec = QFileDialog.getExistingDirectory(self, "Open image folder")
        elif label == _CHOOSE_URL:
            spec, ok = QInputDialog.getText(self, "Camera", "Camera index or stream URL (rtsp://, http://):")
            spec = spec.strip() if ok else ""
        if spec:
            self.select_spec(spec)
        else:
            self.picker.setCurrentIndex(0)

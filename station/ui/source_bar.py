"""Toolbar widgets to choose a frame source and start / pause / stop it.

The picker lists the simulated microscope, the cameras attached now (what ``station cameras``
lists, found on a worker thread: :meth:`SourceBar.set_cameras`), each with its stable spec, and
lets the operator open a video, a folder or type any spec. The source in use is marked."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
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
IN_USE = "  ◀ in use"
LOOKING = "Looking for cameras…"
_CHOOSE_VIDEO = "Video file…"
_CHOOSE_FOLDER = "Image folder…"
_CHOOSE_SPEC = "Type a source (camera spec, index, URL)…"
_REFRESH = "Refresh the camera list"
_ACTIONS = (_CHOOSE_VIDEO, _CHOOSE_FOLDER, _CHOOSE_SPEC, _REFRESH)
_CAMERA_ROLE = Qt.ItemDataRole.UserRole + 1  # True on the rows that came from discovery
_POPUP_MAX_PX = 900
_PICKER_MIN_PX, _PICKER_MAX_PX = 290, 620


class _Picker(QComboBox):
    popup_opening = Signal()

    def showPopup(self) -> None:  # noqa: N802
        self.popup_opening.emit()
        super().showPopup()


class SourceBar(QWidget):
    """Emits ``start_requested(spec)``, ``source_chosen(spec)`` (a pick, running or not),
    ``refresh_requested``, ``pause_toggled`` and ``stop_requested``."""

    start_requested = Signal(str)
    source_chosen = Signal(str)
    refresh_requested = Signal()
    pause_toggled = Signal(bool)
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.in_use = ""
        self._selected = "demo"
        self.listed = False  # cameras are looked for when the list is first opened, then on Refresh
        self.picker = _Picker()
        self.picker.popup_opening.connect(self._on_popup)
        self.picker.setObjectName("sourcePicker")
        self.picker.setMinimumContentsLength(28)
        self.picker.addItem(DEMO_LABEL, "demo")
        self.picker.addItem(LOOKING, None)
        for label in _ACTIONS:
            self.picker.addItem(label, None)
        self.picker.activated.connect(self._on_activated)
        self.refresh_button = QPushButton("⟳")  # a QToolButton would make the toolbar 2 px taller
        self.refresh_button.setObjectName("refreshCameras")
        self.refresh_button.setFixedWidth(self.refresh_button.fontMetrics().horizontalAdvance("⟳") + 18)
        self.refresh_button.setToolTip("Look for attached cameras again (USB, GigE Vision)")
        self.refresh_button.clicked.connect(self.refresh)
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
        for widget in (QLabel("Source:"), self.picker, self.refresh_button, self.start_button, self.pause_button,
                       self.stop_button):
            layout.addWidget(widget)
        self.set_running(False)

    def current_spec(self) -> str:
        return self.picker.currentData() or "demo"

    def select_spec(self, spec: str, label: str | None = None) -> None:
        self._selected = spec
        index = self.picker.findData(spec)
        if index < 0:
            self.picker.insertItem(self._first_action_row(), label or spec, spec)
            index = self.picker.findData(spec)
        self.picker.setCurrentIndex(index)
        self._fit_width()

    def refresh(self) -> None:
        """Ask for the camera list again; the rows say so until it comes (:meth:`set_cameras`)."""
        self.listed = True
        self.set_cameras([], LOOKING)
        self.refresh_requested.emit()

    def set_cameras(self, choices, note: str = "") -> None:
        """The attached cameras (``station.capture.discovery.CameraChoice``), replacing the last
        list; ``note`` (no camera found, GenICam unavailable) is a row that cannot be picked."""
        self.listed = True
        current = self.current_spec()
        listed = {choice.spec for choice in choices}
        for row in reversed(range(self.picker.count())):
            spec = self.picker.itemData(row)
            if self.picker.itemData(row, _CAMERA_ROLE) or spec in listed or (spec is None and
                                                                            self.picker.itemText(row) not in _ACTIONS):
                self.picker.removeItem(row)  # a typed or saved spec that is listed now gets its camera's row
        row = 1
        for choice in choices:
            where = f", {choice.detail}" if choice.detail else ""
            self.picker.insertItem(row, f"{choice.label} — {choice.spec}", choice.spec)
            self.picker.setItemData(row, f"{choice.label}\nspec: {choice.spec}{where}", Qt.ItemDataRole.ToolTipRole)
            self.picker.setItemData(row, True, _CAMERA_ROLE)
            row += 1
        if note or not choices:
            self.picker.insertItem(row, note or "No camera found", None)
            self.picker.model().item(row).setEnabled(False)
        self.select_spec(current)
        self.mark_in_use(self.in_use)

    def mark_in_use(self, spec: str) -> None:
        """The row of the source now running (or last run) says so, in bold."""
        self.in_use = spec
        for row in range(self.picker.count()):
            text = self.picker.itemText(row).removesuffix(IN_USE)
            used = bool(spec) and self.picker.itemData(row) == spec
            self.picker.setItemText(row, text + IN_USE if used else text)
            font = QFont(self.picker.font())
            font.setBold(used)
            self.picker.setItemData(row, font, Qt.ItemDataRole.FontRole)
        widest = max(self.picker.fontMetrics().horizontalAdvance(self.picker.itemText(r)) for r in range(self.picker.count()))
        self.picker.view().setMinimumWidth(min(widest + 40, _POPUP_MAX_PX))
        self._fit_width()

    def _fit_width(self) -> None:
        """Wide enough for the chosen source's name and spec, up to what a 1366-px toolbar has room for."""
        chosen = self.picker.fontMetrics().horizontalAdvance(self.picker.currentText()) + 40
        self.picker.setFixedWidth(max(_PICKER_MIN_PX, min(chosen, _PICKER_MAX_PX)))

    def set_running(self, running: bool) -> None:
        """The picker stays enabled: a pick while running switches to that source."""
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.setChecked(False)

    def _on_popup(self) -> None:
        if not self.listed:
            self.refresh()

    def _first_action_row(self) -> int:
        return self.picker.findText(_ACTIONS[0])

    def _on_activated(self, index: int) -> None:
        spec = self.picker.itemData(index)
        if spec is None:
            spec = self._ask_spec(self.picker.itemText(index))
            if not spec:
                self.select_spec(self._selected)
                return
            self.select_spec(spec)
        self.source_chosen.emit(spec)

    def _ask_spec(self, label: str) -> str:
        if label == _REFRESH:
            self.refresh()
            return ""
        if label == _CHOOSE_VIDEO:
            return QFileDialog.getOpenFileName(
                self, "Open video", "", "Videos (*.mp4 *.avi *.mkv *.mov *.m4v);;All files (*)")[0]
        if label == _CHOOSE_FOLDER:
            return QFileDialog.getExistingDirectory(self, "Open image folder")
        if label == _CHOOSE_SPEC:
            spec, ok = QInputDialog.getText(self, "Source", "A camera spec (`station cameras` lists them: "
                                            "genicam:ID, /dev/v4l/by-id/…), a camera index, or a stream URL:")
            return spec.strip() if ok else ""
        return ""

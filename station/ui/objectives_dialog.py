"""The microscope's objectives and their image scale, as a small editable table (Station menu).

A change is a station setting: the window has it signed and recorded before it applies
(``change_setting``). The scale is measured with ``station objectives calibrate`` from an image of
a stage micrometer, or typed here."""

from __future__ import annotations

import math

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from station.ui.screen_fit import fit_to_screen


class ObjectivesDialog(QDialog):
    """``measure_finished(ok, text)`` once a micrometer image was measured (for tests)."""

    _measure = Signal(int, str)
    measure_finished = Signal(bool, str)

    def __init__(self, objectives: dict[str, float | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Objectives and image scale")
        self.table = QTableWidget(0, 2)
        self.table.setObjectName("objectivesTable")
        self.table.setHorizontalHeaderLabels(["Objective", "µm per pixel"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        for name, scale in objectives.items():
            self.add_row(name, scale)
        add = QPushButton("Add")
        add.clicked.connect(lambda: self.add_row("", None))
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        self.measure_button = QPushButton("Measure from a micrometer image…")
        self.measure_button.setToolTip("An image of a stage micrometer's ruling, taken through the selected objective")
        self.measure_button.clicked.connect(self.ask_measurement)
        row = QHBoxLayout()
        for button in (add, remove, self.measure_button):
            row.addWidget(button)
        row.addStretch(1)
        self.status = QLabel("Select an objective, then measure a stage micrometer's image taken through it "
                             "(or: station objectives calibrate 20x micrometer.png --pitch-um 10).")
        self.status.setObjectName("objectivesStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setWordWrap(True)
        self._scale_thread = None
        self._pending: tuple[int, int, float] | None = None  # ticket, row, pitch in µm
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Each objective's scale gives the defects' sizes in µm; empty: not calibrated."))
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        fit_to_screen(self, QSize(460, 360))

    def add_row(self, name: str, scale: float | None) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(name))
        self.table.setItem(row, 1, QTableWidgetItem(f"{scale:.6g}" if scale else ""))
        if not name:
            self.table.setCurrentCell(row, 0)
            self.table.editItem(self.table.item(row, 0))

    def ask_measurement(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            self.status.setText("Select the objective the micrometer image was taken through first.")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Stage micrometer image", "",
                                              "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff);;All files (*)")
        if not path:
            return
        pitch, ok = QInputDialog.getDouble(self, "Ruling pitch", "The micrometer's line pitch in µm:", 10.0, 0.01, 10000.0, 3)
        if ok:
            self.measure(path, row, pitch)

    def measure(self, path: str, row: int, pitch_um: float) -> None:
        """Measure ``path`` on a worker thread; its scale goes into ``row`` when it comes."""
        if self._scale_thread is None:
            from station.ui.workers import ScaleWorker, WorkerThread

            worker = ScaleWorker()
            self._scale_thread = WorkerThread(worker, "scale")
            self._measure.connect(worker.measure)
            worker.measured.connect(self._on_measured)
        ticket = (self._pending[0] + 1) if self._pending else 1
        self._pending = (ticket, row, pitch_um)
        self.measure_button.setEnabled(False)
        self.status.setText(f"Measuring {path}…")
        self._measure.emit(ticket, path)

    def _on_measured(self, ticket: int, ok: bool, value) -> None:
        if self._pending is None or ticket != self._pending[0]:
            return
        _, row, pitch_um = self._pending
        self.measure_button.setEnabled(True)
        if not ok:
            self.status.setText(f"Not measured: {value}")
            self.measure_finished.emit(False, str(value))
            return
        scale = value.um_per_px(pitch_um)
        self.table.setItem(row, 1, QTableWidgetItem(f"{scale:.6g}"))
        text = (f"{value.lines} lines, pitch {value.pitch_px:.3f} px (centres within {value.residual_px:.2f} px): "
                f"{scale:.5g} µm/px")
        self.status.setText(text)
        self.measure_finished.emit(True, text)

    def done(self, result: int) -> None:
        if self._scale_thread is not None:
            self._scale_thread.stop()
            self._scale_thread = None
        super().done(result)

    def accept(self) -> None:
        """OK closes only a table that says what it means: a typo in a scale is not "not calibrated"."""
        problem = self.problem()
        if problem:
            self.status.setText(problem)
            self.status.setStyleSheet("color:#b3261e;")
            return
        super().accept()

    def problem(self) -> str:
        """Why the table cannot be saved as it is ("" when it can)."""
        seen: set[str] = set()
        for row in range(self.table.rowCount()):
            name, text = self._cells(row)
            if not name:
                if text:
                    return f"Row {row + 1} has a scale ({text}) but no objective name."
                continue
            if name in seen:
                return f"Objective {name!r} is in the table twice."
            seen.add(name)
            if text and _scale(text) is None:
                return (f"The scale of {name!r} is {text!r}: type µm per pixel as a number above 0 "
                        "(0.5127), or leave it empty for not calibrated.")
        return ""

    def values(self) -> dict[str, float | None]:
        """Name -> µm per pixel (None where empty or unusable); rows without a name left out."""
        values: dict[str, float | None] = {}
        for row in range(self.table.rowCount()):
            name, text = self._cells(row)
            if name:
                values[name] = _scale(text) if text else None
        return values

    def _cells(self, row: int) -> tuple[str, str]:
        name, scale = self.table.item(row, 0), self.table.item(row, 1)
        return (name.text() if name else "").strip(), (scale.text() if scale else "").strip()


def _scale(text: str) -> float | None:
    """µm per pixel typed in a cell (a decimal comma too), None unless a finite number above 0."""
    try:
        scale = float(text.replace(",", "."))
    except ValueError:
        return None
    return scale if math.isfinite(scale) and scale > 0 else None

"""The microscope's objectives and their image scale, as a small editable table (Station menu).

A change is a station setting: the window has it signed and recorded before it applies
(``change_setting``). The scale is measured with ``station objectives calibrate`` from an image of
a stage micrometer, or typed here."""

from __future__ import annotations

import math

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from station.ui.screen_fit import fit_to_screen


class ObjectivesDialog(QDialog):
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
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        hint = QLabel("Measure the scale from an image of a stage micrometer taken through the objective:\n"
                      "station objectives calibrate 20x micrometer.png --pitch-um 10")
        hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        hint.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Each objective's scale gives the defects' sizes in µm; empty: not calibrated."))
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(hint)
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

    def values(self) -> dict[str, float | None]:
        """Name -> µm per pixel (None where empty); rows without a name, or with no usable scale, left out."""
        values: dict[str, float | None] = {}
        for row in range(self.table.rowCount()):
            name = (self.table.item(row, 0).text() if self.table.item(row, 0) else "").strip()
            text = (self.table.item(row, 1).text() if self.table.item(row, 1) else "").strip().replace(",", ".")
            if not name:
                continue
            try:
                scale = float(text) if text else None
            except ValueError:
                scale = None
            values[name] = scale if scale is not None and math.isfinite(scale) and scale > 0 else None
        return values

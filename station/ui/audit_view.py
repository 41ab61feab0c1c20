"""The audit log in the GUI: filter entries, verify the chain, open one with its archived
image and the defect boxes that were recorded. Reads go through the AuditWorker thread."""

from __future__ import annotations

import itertools
import json

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QDate, QModelIndex, QSize, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from station.audit.entry import Action, AuditEntry, Verdict
from station.ui.image_view import ImageView
from station.ui.screen_fit import fit_to_screen
from station.ui.workers import AuditWorker, WorkerThread

_COLUMNS = ("#", "Local time", "Operator", "Action", "Chip", "Material", "Verdict", "Decap", "Reason")


class AuditTableModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.entries: list[AuditEntry] = []

    def set_entries(self, entries: list[AuditEntry]) -> None:
        self.beginResetModel()
        self.entries = entries
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return len(_COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return _COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        entry = self.entries[index.row()]
        values = (
            entry.id,
            entry.local_time.strftime("%Y-%m-%d %H:%M:%S"),
            entry.operator_id,
            entry.action,
            entry.chip_id or "",
            entry.material or "",
            entry.verdict or "",
            entry.decap_method or "",
            entry.reason or "",
        )
        return str(values[index.column()])


class AuditEntryDialog(QDialog):
    """One entry: its archived image with the recorded defect boxes, and every field."""

    def __init__(self, entry: AuditEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.setWindowTitle(f"Audit entry #{entry.id} — {entry.action}")
        fit_to_screen(self, QSize(1100, 700))
        self.image_view = ImageView("no image recorded" if not entry.image_path else "loading image…", interactive=True)
        details = QPlainTextEdit(json.dumps(entry.to_dict(), indent=2, ensure_ascii=False))
        details.setReadOnly(True)
        splitter = QSplitter()
        splitter.addWidget(self.image_view)
        splitter.addWidget(details)
        splitter.setSizes([650, 450])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

    def show_image(self, image: np.ndarray | None) -> None:
        if image is None:
            self.image_view.set_placeholder(f"archived image missing or unreadable:\n{self.entry.image_path}")
            return
        from station.inference import Defect
        from station.render import draw_defects

        defects = [Defect(tuple(d["box"]), d.get("class", "?"), float(d.get("score", 0.0))) for d in self.entry.defects if "box" in d]
        self.image_view.set_image(draw_defects(image, defects) if defects else image)


class AuditView(QWidget):
    """A window over the audit log with filters; double-click an entry to open it."""

    _query = Signal(int, object)
    _verify = Signal(int)
    _load_image = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Audit log")
        fit_to_screen(self, QSize(1200, 650))
        self._tickets = itertools.count(1)
        self._latest_query = 0
        self._dialogs: dict[int, AuditEntryDialog] = {}
        self.worker = AuditWorker()
        self.worker_thread = WorkerThread(self.worker, "audit-view")
        self._query.connect(self.worker.query)
        self._verify.connect(self.worker.verify)
        self._load_image.connect(self.worker.load_image)
        self.worker.queried.connect(self._on_queried)
        self.worker.verified.connect(self._on_verified)
        self.worker.image_loaded.connect(self._on_image_loaded)
        self.worker.failed.connect(self._on_failed)  # a method, not a lambda: a lambda runs in the worker thread

        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addDays(-30))
        self.date_to = QDateEdit(today)
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        self.operator = QLineEdit()
        self.operator.setPlaceholderText("operator id")
        self.chip = QLineEdit()
        self.chip.setPlaceholderText("chip id")
        self.material = _choice(["plastic", "ceramic", "metallic"])
        self.verdict = _choice([v.value for v in Verdict])
        self.action = _choice([a.value for a in Action])
        search = QPushButton("Search")
        search.clicked.connect(self.refresh)
        verify = QPushButton("Verify chain")
        verify.clicked.connect(lambda: self._verify.emit(next(self._tickets)))
        for edit in (self.operator, self.chip):
            edit.returnPressed.connect(self.refresh)

        filters = QHBoxLayout()
        for label, widget in (
            ("From", self.date_from),
            ("To", self.date_to),
            ("Operator", self.operator),
            ("Chip", self.chip),
            ("Material", self.material),
            ("Verdict", self.verdict),
            ("Action", self.action),
        ):
            filters.addWidget(QLabel(label))
            filters.addWidget(widget)
        filters.addWidget(search)
        filters.addWidget(verify)

        self.model = AuditTableModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(self.open_entry)
        self.status = QLabel("")
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        self.refresh()

    def filters(self) -> dict:
        return {
            "from_": self.date_from.date().toPython(),
            "to": self.date_to.date().toPython(),
            "operator": self.operator.text().strip() or None,
            "chip": self.chip.text().strip() or None,
            "material": self.material.currentData(),
            "verdict": self.verdict.currentData(),
            "action": self.action.currentData(),
            "limit": 5000,
            "newest_first": True,
        }

    @Slot()
    def refresh(self) -> None:
        self._latest_query = next(self._tickets)
        self.status.setText("Searching…")
        self._query.emit(self._latest_query, self.filters())

    @Slot(int, object)
    def _on_failed(self, _ticket: int, message: str) -> None:
        self.status.setText(f"Error: {message}")

    def _on_queried(self, ticket: int, entries: list) -> None:
        if ticket != self._latest_query:
            return
        self.model.set_entries(entries)
        self.status.setText(f"{len(entries)} entries" + (" (first 5000)" if len(entries) == 5000 else ""))

    @Slot(int, object)
    def _on_verified(self, ticket: int, result) -> None:
        self.status.setText(result.describe())

    def open_entry(self, index: QModelIndex) -> AuditEntryDialog:
        entry = self.model.entries[index.row()]
        dialog = AuditEntryDialog(entry, self)
        if entry.image_path:
            ticket = next(self._tickets)
            self._dialogs[ticket] = dialog
            self._load_image.emit(ticket, entry.image_path)
        dialog.show()
        return dialog

    @Slot(int, object)
    def _on_image_loaded(self, ticket: int, image) -> None:
        dialog = self._dialogs.pop(ticket, None)
        if dialog is not None:
            dialog.show_image(image)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.worker_thread.stop()
        super().closeEvent(event)


def _choice(values: list[str]) -> QComboBox:
    combo = QComboBox()
    combo.addItem("any", None)
    for value in values:
        combo.addItem(value, value)
    return combo

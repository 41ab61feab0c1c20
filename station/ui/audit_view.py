"""The audit log in the GUI: filter entries, verify the chain, open one (station/ui/audit_entry.py:
its fields as a form beside its archived image and the defect boxes that were recorded). Reads go
through the AuditWorker thread."""

from __future__ import annotations

import itertools

import shiboken6
from PySide6.QtCore import QAbstractTableModel, QDate, QModelIndex, QSize, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from station.audit.entry import Action, AuditEntry, Verdict
from station.labels import ACTION_TITLES, VERDICT_TITLES, action_title, display_name, verdict_title
from station.ui.audit_entry import AuditEntryDialog
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
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole:  # the stored names behind the readable ones
            raw = {3: entry.action, 5: entry.material, 6: entry.verdict, 8: entry.reason}.get(index.column())
            return raw or None
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        values = (
            entry.id,
            entry.local_time.strftime("%Y-%m-%d %H:%M:%S"),
            entry.operator_id,
            action_title(entry.action),
            entry.chip_id or "",
            display_name(entry.material) if entry.material else "",
            verdict_title(entry.verdict) if entry.verdict else "",
            entry.decap_method or "",
            entry.reason or "",
        )
        return str(values[index.column()])


class AuditView(QWidget):
    """A window over the audit log with filters; double-click an entry to open it."""

    _query = Signal(int, object)
    _verify = Signal(int)
    _load_image = Signal(int, str)

    def __init__(self, audit=None, parent: QWidget | None = None) -> None:
        """``audit``: the station's ``AuditSetup`` (None: the settings' log)."""
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Audit log")
        fit_to_screen(self, QSize(1200, 650))
        self._tickets = itertools.count(1)
        self._latest_query = 0
        self._dialogs: dict[int, AuditEntryDialog] = {}
        self.worker = AuditWorker(audit)
        self.worker_thread = WorkerThread(self.worker, "audit-view")
        self._query.connect(self.worker.query)
        self._verify.connect(self.worker.verify)
        self._load_image.connect(self.worker.load_image)
        self.worker.queried.connect(self._on_queried)
        self.worker.verified.connect(self._on_verified)
        self.worker.image_loaded.connect(self._on_image_loaded)
        self.worker.failed.connect(self._on_failed)  # a method, not a lambda: a lambda runs in the worker thread

        filters = self._build_filters()
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

    def _build_filters(self) -> QHBoxLayout:
        """Dates, operator, chip, material, verdict and action filters, Search and Verify."""
        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addDays(-30))
        self.date_to = QDateEdit(today)
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        self.operator = QLineEdit()
        self.operator.setPlaceholderText("operator id")
        self.chip = QLineEdit()
        self.chip.setObjectName("auditChipFilter")
        self.chip.setPlaceholderText("part of a chip ID")
        self.material = _choice({m: display_name(m) for m in ("plastic", "ceramic", "metallic")})
        self.verdict = _choice({v.value: VERDICT_TITLES.get(v.value, v.value) for v in Verdict})
        self.action = _choice({a.value: ACTION_TITLES.get(a.value, a.value) for a in Action})
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
        return filters

    def filters(self) -> dict:
        return {
            "from_": self.date_from.date().toPython(),
            "to": self.date_to.date().toPython(),
            "operator": self.operator.text().strip() or None,
            "chip_contains": self.chip.text().strip() or None,
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
        if dialog is not None and shiboken6.isValid(dialog):  # closed (and deleted) before its image came
            dialog.show_image(image)

    def shutdown(self) -> None:
        """At the station's exit. Closing the window only hides it: opened again, it reads through
        the same thread (its SQLite connection belongs to that thread)."""
        self.worker_thread.stop()
        self.close()


def _choice(titles: dict[str, str]) -> QComboBox:
    """Human-readable titles; the stored value (what the query filters on) as each item's data."""
    combo = QComboBox()
    combo.addItem("any", None)
    for value, title in titles.items():
        combo.addItem(title, value)
        combo.setItemData(combo.count() - 1, value, Qt.ItemDataRole.ToolTipRole)
    return combo

"""Batch review: inspect a folder of images, then review the results as fast as a person reads.

The window is a thin skin over ``station.review``: a worker runs the pipelined runner
(``BatchWorker``), another writes each decision to the audit log (``BatchVerdictWorker``), a
third reads the full image of the item on screen (``BatchDetailLoader``), a fourth writes the
exports (``BatchExportWorker``). The GUI thread only reads single rows from the folder's store.

Keys in the table: arrows move, **A** accepts, **O** overrides (material and a mandatory reason).
An uncertain call cannot be accepted, and nothing can be decided without a signed-in operator.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from station.audit import Verdict
from station.capture.scale import objective_in_use
from station.config import Settings
from station.inference.onnx_backend import onnx_unavailable_reason, onnxruntime_available
from station.labels import display_name, plural
from station.review.runner import BatchJob, BatchOpened, BatchProgress, RunControl, RunOptions, RunSummary
from station.review.scan import absolute_path
from station.review.store import BatchStore, ItemRow, StoreError
from station.review.thumbnails import ThumbnailCache
from station.review.verdicts import BatchContext, BulkRule, VerdictRequest, refusal
from station.users import Permission
from station.ui.batch_detail import BatchDetailView
from station.ui.batch_model import (
    FILE_COLUMN,
    ROW_ROLE,
    THUMBNAIL_COLUMN,
    THUMBNAIL_SIZE,
    COLUMN_SAMPLES,
    COLUMNS,
    BatchFilterProxy,
    BatchTableModel,
)
from station.ui.compact import ElidedLabel
from station.ui.dialogs import ModelCardsDialog, OverrideDialog
from station.ui.screen_fit import fit_to_screen, keep_on_screen
from station.ui.workers import BatchDetailLoader, BatchExportWorker, BatchVerdictWorker, BatchWorker, WorkerThread
from station.workflow import Operator

log = logging.getLogger(__name__)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class BatchReviewWindow(QMainWindow):
    """Open a folder, run a recipe over it, review and export. See the module docstring."""

    run_opened = Signal(object)  # BatchOpened
    run_finished = Signal(object)  # RunSummary
    run_failed = Signal(str)
    verdict_committed = Signal(object)  # station.audit.AuditEntry
    verdict_failed = Signal(str)
    export_finished = Signal(str, str)  # kind, path
    export_failed = Signal(str, str)  # kind, message
    detail_loaded = Signal(int)  # item id whose image is on screen
    stop_timeout_ms = 10_000  # how long a close waits for the worker threads, in all

    def __init__(self, settings: Settings, recipes: dict, operator: Operator | None, parent: QWidget | None = None,
                 ask_signature=None, audit=None) -> None:
        """``audit``: the station's ``AuditSetup`` (None: the settings' log)."""
        super().__init__(parent)
        # (permission, what) -> Signature | None: the main window's e-signature dialog
        self.ask_signature = ask_signature or (lambda permission, what: None)
        self.setWindowTitle("Batch review")
        self.setObjectName("batchReviewWindow")
        fit_to_screen(self, QSize(1400, 860))
        self.settings = settings
        self.audit_setup = audit
        self.recipes = dict(recipes)
        self.operator = operator
        self.control: RunControl | None = None
        self.running = False
        self.last_summary: RunSummary | None = None
        self.context: BatchContext | None = None
        self._store: BatchStore | None = None
        self._recipe = None
        self._cards: dict = {}  # the model cards of the review's recipe, once its models have loaded
        self.reference_image = None  # RGB template for recipes that compare against one
        self._shut_down = False

        self.thumbnails = ThumbnailCache()
        self.model = BatchTableModel(self.thumbnails, self)
        self.proxy = BatchFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        # row updates arrive after every batch: the counts and the bulk button follow at most 5 times a second
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(200)
        self._counts_timer.timeout.connect(self._update_counts)
        self._build_widgets()
        self._start_workers()
        self._update_controls()

    # -- construction ---------------------------------------------------------------------
    def _build_widgets(self) -> None:
        folder_row, run_row = self._build_run_bar()
        progress_row = self._build_progress_row()
        filter_row = self._build_filter_row()
        self._build_table()
        action_row = self._build_action_row()
        table_column = QWidget()
        table_layout = QVBoxLayout(table_column)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addLayout(filter_row)
        table_layout.addWidget(self.table, 1)
        self.detail = BatchDetailView()  # the scale: the objective of the folder's context (_on_opened)
        self.detail.accept_clicked.connect(self.accept_current)
        self.detail.override_clicked.connect(self.request_override)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(table_column)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([760, 640])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(folder_row)
        layout.addLayout(run_row)
        layout.addLayout(progress_row)
        layout.addWidget(splitter, 1)
        layout.addLayout(action_row)
        self.setCentralWidget(central)

    def _build_run_bar(self) -> tuple[QHBoxLayout, QHBoxLayout]:
        """The folder, recipe and run controls, in two rows."""
        self.folder_edit = QLineEdit(self.settings.last_batch_folder)
        self.folder_edit.setObjectName("batchFolder")
        self.folder_edit.setPlaceholderText("folder of images (Enter inspects it)")
        self.folder_edit.returnPressed.connect(self.start_run)
        choose = QPushButton("Choose folder…")
        choose.clicked.connect(self.choose_folder)
        self.recursive_check = QCheckBox("Subfolders")
        self.recursive_check.setChecked(self.settings.batch_recursive)
        self.recursive_check.toggled.connect(self._remember_recursive)
        self.recipe_combo = QComboBox()
        self.recipe_combo.setObjectName("batchRecipe")
        self.recipe_combo.addItems(list(self.recipes))
        if self.settings.recipe in self.recipes:
            self.recipe_combo.setCurrentText(self.settings.recipe)
        self.attention_check = QCheckBox("Attention maps")
        self.attention_check.setToolTip("Grad-CAM / CAM maps for the detail view; off is about twice as fast")
        self.attention_check.setChecked(self.settings.show_attention)
        self.onnx_check = QCheckBox("ONNX Runtime")
        self.onnx_check.setObjectName("batchOnnx")
        self.onnx_check.setChecked(self.settings.batch_onnxruntime and onnxruntime_available())
        self.onnx_check.toggled.connect(self._remember_onnx)
        self.attention_check.toggled.connect(lambda _on: self._update_controls())
        self.reference_button = QPushButton("Reference image…")
        self.reference_button.setToolTip("The defect-free template this recipe compares every image against")
        self.reference_button.clicked.connect(self.choose_reference)
        self.recipe_combo.currentTextChanged.connect(lambda _name: self._update_controls())
        self.start_button = QPushButton("Inspect folder")
        self.start_button.setObjectName("batchStart")
        self.start_button.clicked.connect(self.start_run)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("batchPause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("batchCancel")
        self.cancel_button.clicked.connect(self.cancel)
        # two rows, so the window's minimum width stays well under a 1366-px screen
        folder_row, run_row = QHBoxLayout(), QHBoxLayout()
        for row, widgets in (
            (folder_row, ((QLabel("Folder"), 0), (self.folder_edit, 1), (choose, 0), (self.recursive_check, 0))),
            (run_row, ((QLabel("Recipe"), 0), (self.recipe_combo, 1), (self.reference_button, 0),
                       (self.attention_check, 0), (self.onnx_check, 0), (self.start_button, 0), (self.pause_button, 0),
                       (self.cancel_button, 0))),
        ):
            for widget, stretch in widgets:
                row.addWidget(widget, stretch)
        self.folder_edit.setMinimumWidth(200)
        return folder_row, run_row

    def _build_progress_row(self) -> QHBoxLayout:
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("batchProgress")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_label = ElidedLabel("Choose a folder and a recipe, then Inspect folder.")
        self.progress_label.setObjectName("batchProgressLabel")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.progress_label, 2)
        return progress_row

    def _build_filter_row(self) -> QHBoxLayout:
        self.uncertain_filter = QCheckBox("Uncertain only")
        self.defects_filter = QCheckBox("Has defects")
        self.unreviewed_filter = QCheckBox("Not yet reviewed")
        self.name_filter = QLineEdit()
        self.name_filter.setPlaceholderText("file name contains…")
        self.name_filter.setClearButtonEnabled(True)
        self.name_filter.setMinimumWidth(160)
        for check in (self.uncertain_filter, self.defects_filter, self.unreviewed_filter):
            check.toggled.connect(self._apply_filters)
        self.name_filter.textChanged.connect(self._apply_filters)
        self.count_label = ElidedLabel("")
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        filter_row = QHBoxLayout()
        for widget in (self.uncertain_filter, self.defects_filter, self.unreviewed_filter, self.name_filter):
            filter_row.addWidget(widget)
        filter_row.addWidget(self.count_label, 1)
        return filter_row

    def _build_table(self) -> None:
        self.table = QTableView()
        self.table.setObjectName("batchTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(FILE_COLUMN, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(THUMBNAIL_SIZE)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIZE.height() + 4)
        header = self.table.horizontalHeader()
        # every column but the file's as wide as its longest usual text, the file's takes the rest
        # (elided in the middle): maximized at 1366 px the Review column is in view, no scrolling
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(FILE_COLUMN, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        header.resizeSection(THUMBNAIL_COLUMN, THUMBNAIL_SIZE.width() + 8)
        metrics = self.table.fontMetrics()
        for column, widest in COLUMN_SAMPLES.items():
            text_width = max(metrics.horizontalAdvance(widest), header.fontMetrics().horizontalAdvance(COLUMNS[column]))
            header.resizeSection(column, text_width + 18)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)
        for key, slot in (("A", self.accept_current), ("O", self.request_override)):
            shortcut = QShortcut(QKeySequence(key), self.table)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(slot)

    def _build_action_row(self) -> QHBoxLayout:
        self.bulk_button = QPushButton("Accept confident, defect-free in view")
        self.bulk_button.setObjectName("batchBulkAccept")
        self.bulk_button.clicked.connect(lambda: self.bulk_accept_visible())
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.clicked.connect(lambda: self.export_csv())
        self.export_pdf_button = QPushButton("Export PDF summary…")
        self.export_pdf_button.clicked.connect(lambda: self.export_pdf())
        self.models_button = QPushButton("Models…")
        self.models_button.setObjectName("batchModels")
        self.models_button.setToolTip("The model cards of this review's recipe: validation metrics and known limitations")
        self.models_button.clicked.connect(lambda: self.show_model_cards())
        self.cards_dialog: ModelCardsDialog | None = None
        self.operator_label = QLabel("")
        self.operator_label.setObjectName("batchOperator")
        action_row = QHBoxLayout()
        action_row.addWidget(self.bulk_button)
        action_row.addStretch(1)
        action_row.addWidget(self.operator_label)
        action_row.addWidget(self.models_button)
        action_row.addWidget(self.export_csv_button)
        action_row.addWidget(self.export_pdf_button)
        return action_row

    def _start_workers(self) -> None:
        self.batch = BatchWorker()
        self.batch_thread = WorkerThread(self.batch, "batch-review")
        self.batch.status.connect(self.progress_label.setText)
        self.batch.opened.connect(self._on_opened)
        self.batch.progress.connect(self._on_progress)
        self.batch.rows_updated.connect(self._on_rows_updated)
        self.batch.finished.connect(self._on_finished)
        self.batch.failed.connect(self._on_failed)

        self.verdicts = BatchVerdictWorker(self.audit_setup)
        self.verdict_thread = WorkerThread(self.verdicts, "batch-verdicts")
        self.verdicts.committed.connect(self._on_verdict_committed)
        self.verdicts.failed.connect(self._on_verdict_failed)

        self.loader = BatchDetailLoader()
        self.loader_thread = WorkerThread(self.loader, "batch-detail")
        self.loader.loaded.connect(self._on_detail_loaded)
        self.loader.failed.connect(self.detail.show_load_error)

        self.exporter = BatchExportWorker()
        self.export_thread = WorkerThread(self.exporter, "batch-export")
        self.exporter.finished.connect(self._on_export_finished)
        self.exporter.failed.connect(self._on_export_failed)

    # -- operator -------------------------------------------------------------------------
    def set_operator(self, operator: Operator | None) -> None:
        """The main window's operator changed (sign-in, switch, sign-out)."""
        self.operator = operator
        self._update_controls()

    # -- running --------------------------------------------------------------------------
    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to review", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    @Slot()
    def choose_reference(self) -> None:
        from station.capture.images import ImageReadError, read_image

        path, _ = QFileDialog.getOpenFileName(self, "Defect-free reference image", self.folder_edit.text())
        if not path:
            return
        try:
            self.set_reference(read_image(path), Path(path).name)
        except ImageReadError as exc:
            self._message(str(exc))

    def set_reference(self, image, name: str = "set") -> None:
        self.reference_image = image
        self.reference_button.setText(f"Reference: {name}")

    def open_folder(self, folder: Path | str, *, recursive: bool | None = None, recipe_name: str | None = None,
                    want_attention: bool | None = None, start: bool = True) -> None:
        """Set the folder (and optionally recipe and options) and, with ``start``, inspect it."""
        self.folder_edit.setText(str(folder))
        if recursive is not None:
            self.recursive_check.setChecked(recursive)
        if recipe_name is not None:
            self.recipe_combo.setCurrentText(recipe_name)
        if want_attention is not None:
            self.attention_check.setChecked(want_attention)
        if start:
            self.start_run()

    @Slot()
    def start_run(self) -> None:
        if self.running:
            return
        folder = Path(self.folder_edit.text().strip()).expanduser()
        recipe = self.recipes.get(self.recipe_combo.currentText())
        if not self.folder_edit.text().strip() or not folder.is_dir():
            self._message(f"Not a folder: {folder}" if self.folder_edit.text().strip() else "Choose a folder first.")
            return
        if recipe is None:
            self._message("Choose a recipe first.")
            return
        if recipe.use_reference and self.reference_image is None:
            self._message(f"Recipe {recipe.name!r} compares against a defect-free template: choose the reference image.")
            return
        self._recipe = recipe
        self.settings.last_batch_folder = str(folder)
        self.control = RunControl()
        job = BatchJob(
            folder=folder, recipe=recipe, recursive=self.recursive_check.isChecked(),
            device=self.settings.device,
            backend="onnxruntime" if self._onnx_applies() else "torch",
            options=RunOptions(
                want_attention=self.attention_check.isChecked(),
                reference=self.reference_image if recipe.use_reference else None,
            ),
        )
        self.running = True
        self.last_summary = None
        self.pause_button.setChecked(False)
        self.progress_label.setText(f"Opening {folder}…")
        self._update_controls()
        self.batch.submit(job, self.control)

    def _remember_recursive(self, checked: bool) -> None:
        self.settings.batch_recursive = checked  # saved with the station's settings at exit

    def _remember_onnx(self, checked: bool) -> None:
        self.settings.batch_onnxruntime = checked

    def _onnx_applies(self) -> bool:
        """ONNX Runtime does the arithmetic only on the CPU."""
        return self.onnx_check.isChecked() and self.onnx_check.isEnabled()

    @Slot(bool)
    def _on_pause_toggled(self, paused: bool) -> None:
        if paused:
            self.pause()
        else:
            self.resume()

    def pause(self) -> None:
        if self.control is not None and self.running:
            self.control.pause()
            self.pause_button.setChecked(True)
            self.pause_button.setText("Resume")

    def resume(self) -> None:
        if self.control is not None:
            self.control.resume()
        self.pause_button.setChecked(False)
        self.pause_button.setText("Pause")

    @Slot()
    def cancel(self) -> None:
        if self.control is not None and self.running:
            self.control.cancel()
            self.progress_label.setText("Cancelling after the current batch…")

    def show_model_cards(self) -> None:
        if not self._cards or self._recipe is None:
            return
        self.cards_dialog = ModelCardsDialog.show_fresh(self.cards_dialog, self._recipe.name, self._cards, self)

    @Slot(object)
    def _on_opened(self, opened: BatchOpened) -> None:
        if self._store is not None:
            self._store.close()
        try:
            self._store = BatchStore(opened.store_dir).open()
        except StoreError as exc:
            self._message(str(exc))
            return
        assert self._recipe is not None
        self.context = BatchContext(opened.folder, opened.store_dir, dict(self._recipe.decap_methods),
                                    BulkRule.from_recipe(self._recipe), objective=objective_in_use(self.settings))
        self.detail.um_per_px = self.context.objective.um_per_px if self.context.objective is not None else None
        self._cards = dict(opened.cards)
        self.setWindowTitle(f"Batch review — {opened.folder} — {self._recipe.name}")
        self.model.set_rows(opened.rows)
        self.progress_bar.setRange(0, max(1, opened.n_to_read))
        self.progress_bar.setValue(0 if opened.n_to_read else 1)
        already = len(opened.rows) - opened.n_to_read
        self.progress_label.setText(
            f"{opened.n_to_read} to read, {already} already done · {opened.device}"
        )
        self._update_counts()
        if self.proxy.rowCount() and not self.table.currentIndex().isValid():
            self.table.setCurrentIndex(self.proxy.index(0, FILE_COLUMN))
        self.table.setFocus()
        self.run_opened.emit(opened)

    @Slot(object)
    def _on_progress(self, progress: BatchProgress) -> None:
        self.progress_bar.setRange(0, max(1, progress.total))
        self.progress_bar.setValue(progress.done)
        if progress.paused:
            self.progress_label.setText(f"Paused at {progress.done} / {progress.total}")
            return
        self.progress_label.setText(
            f"{progress.done} / {progress.total} · {progress.images_per_s:.1f} img/s · "
            f"ETA {format_duration(progress.eta_s)} · {plural(progress.errors, 'error')}"
        )

    @Slot(object)
    def _on_rows_updated(self, rows: list[ItemRow]) -> None:
        self.model.update_rows(rows)
        current = self.detail.item_id
        if current is not None and any(r.item_id == current for r in rows):
            self._show_current()
        elif current is None and self.proxy.rowCount() and not self.table.currentIndex().isValid():
            self.table.setCurrentIndex(self.proxy.index(0, FILE_COLUMN))
        if not self._counts_timer.isActive():
            self._counts_timer.start()

    @Slot(object)
    def _on_finished(self, summary: RunSummary) -> None:
        self.running = False
        self.last_summary = summary
        self.resume()
        what = "Cancelled" if summary.cancelled else "Done"
        self.progress_bar.setValue(self.progress_bar.maximum() if not summary.cancelled else self.progress_bar.value())
        # the table also shows files this run never opened (not images by name, or failed in an earlier
        # run): counted apart, so the line agrees with the red rows
        others = sum(1 for row in self.model.iter_rows() if row.is_error) - summary.errors
        self.progress_label.setText(
            f"{what}: {summary.inspected} inspected in {format_duration(summary.seconds)} "
            f"({summary.images_per_s:.1f} img/s), {plural(summary.errors, 'error')}"
            + (f"; {plural(others, 'other file')} in error (not an image, or from an earlier run)" if others > 0 else "")
            + (" — open the folder again to resume" if summary.cancelled else "")
        )
        self._update_controls()
        self._update_counts()
        keep_on_screen(self)
        self.run_finished.emit(summary)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.running = False
        self.resume()
        self.progress_label.setText(f"Stopped: {message}")
        self.statusBar().showMessage(message, 15000)
        self._update_controls()
        self.run_failed.emit(message)

    # -- table and detail -----------------------------------------------------------------
    @Slot()
    def _apply_filters(self) -> None:
        self.proxy.set_filters(
            uncertain_only=self.uncertain_filter.isChecked(),
            has_defects=self.defects_filter.isChecked(),
            not_reviewed=self.unreviewed_filter.isChecked(),
            name_filter=self.name_filter.text(),
        )
        self._update_counts()
        if self.proxy.rowCount() and not self.table.currentIndex().isValid():
            self.table.setCurrentIndex(self.proxy.index(0, FILE_COLUMN))

    def _update_counts(self) -> None:
        rows = self.model.rowCount()
        visible = self.proxy.rowCount()
        candidates = len(self._bulk_candidates())
        self.count_label.setText(f"{visible} of {rows} shown")
        rule = self._bulk_rule()
        self.bulk_button.setText(f"Accept {rule.describe()} in view ({candidates})")
        self.bulk_button.setToolTip(f"Bulk accept takes only items the recipe calls {rule.describe()}; "
                                    "never uncertain or NO PART / UNFAMILIAR ones.")
        self._update_controls()

    def current_row(self) -> ItemRow | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.proxy.data(index, ROW_ROLE)

    def select_item(self, item_id: int) -> bool:
        source_row = self.model.source_row_of(item_id)
        if source_row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(source_row, FILE_COLUMN))
        if not index.isValid():
            return False
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        return True

    def _select_next(self) -> None:
        index = self.table.currentIndex()
        if index.isValid() and index.row() + 1 < self.proxy.rowCount():
            self.table.selectionModel().setCurrentIndex(
                self.proxy.index(index.row() + 1, FILE_COLUMN),
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )

    @Slot(QModelIndex, QModelIndex)
    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_current()

    def _show_current(self) -> None:
        row = self.current_row()
        if row is None or self._store is None or self.context is None:
            self.detail.show_record(None)
            self._update_controls()
            return
        try:
            record = self._store.record(row.item_id)
        except (KeyError, StoreError) as exc:
            self._message(str(exc))
            return
        loading_new = self.detail.needs_image(record)
        self.detail.show_record(record)
        if loading_new and record.row.sha256 is not None and not record.row.is_error:
            map_path = self._store.map_path(record.row.sha256) if record.has_maps else None
            self.loader.request(row.item_id, absolute_path(self.context.folder, row.relative_path), row.sha256, map_path)
        self._update_controls()

    @Slot(int, object, object, bool)
    def _on_detail_loaded(self, item_id: int, image, maps, changed: bool) -> None:
        self.detail.set_image(item_id, image, maps, changed)
        if item_id == self.detail.item_id:
            self.detail_loaded.emit(item_id)

    # -- decisions ------------------------------------------------------------------------
    def _decision_block(self) -> str:
        if self.operator is None:
            return "Sign in (in the main window) to accept or override: every decision is recorded under an operator."
        if self.context is None:
            return "Nothing to review yet."
        return ""

    def _bulk_rule(self) -> BulkRule:
        if self.context is not None:
            return self.context.bulk_rule
        return BulkRule.from_recipe(self._recipe) if self._recipe is not None else BulkRule()

    def _bulk_candidates(self) -> list[ItemRow]:
        rule = self._bulk_rule()
        return [
            row for row in self.proxy.visible_rows()
            if rule.refusal(row) is None and not self.model.is_pending(row.item_id)
        ]

    def _submit(self, rows: list[ItemRow], verdict: Verdict, material: str | None = None, reason: str = "",
                bulk: bool = False, signature=None) -> bool:
        block = self._decision_block()
        if block:
            self._message(block)
            return False
        assert self.operator is not None and self.context is not None
        request = VerdictRequest(tuple(r.item_id for r in rows), verdict, self.operator, material, reason, bulk,
                                 signature)
        for row in rows:
            self.model.set_pending(row.item_id, True)
        self.verdicts.submit(self.context, request)
        self._update_controls()
        return True

    @Slot()
    def accept_current(self) -> bool:
        """Accept the selected item's call (A); moves on to the next row."""
        row = self.current_row()
        if row is None or self.model.is_pending(row.item_id):
            return False
        problem = refusal(row, Verdict.ACCEPT)
        if problem:
            self._message(problem)
            return False
        if self._submit([row], Verdict.ACCEPT):
            self._select_next()
            return True
        return False

    @Slot()
    def request_override(self) -> bool:
        """Ask for the material and the reason (O), then override."""
        row = self.current_row()
        if row is None or self._store is None:
            return False
        problem = self._decision_block() or refusal(row, Verdict.OVERRIDE)
        if problem:
            self._message(problem)
            return False
        record = self._store.record(row.item_id)
        call = record.result.material if record.result is not None else None
        materials = list(call.classes) if call is not None else []  # none: the recipe only inspects, override the findings
        dialog = OverrideDialog(materials, row.material or "", self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        material, reason = dialog.values()
        return self.override_current(material, reason)

    def override_current(self, material: str, reason: str) -> bool:
        row = self.current_row()
        if row is None or self.model.is_pending(row.item_id):
            return False
        problem = refusal(row, Verdict.OVERRIDE)
        if problem or not material or not reason.strip():
            self._message(problem or "An override needs a material and a reason.")
            return False
        said = display_name(row.material) if row.material else "the findings"
        signature = self.ask_signature(Permission.OVERRIDE, f"Override {row.relative_path}: {said} → "
                                       f"{display_name(material)}. Reason: {reason.strip()}")
        if signature is None:
            self._message("Not overridden: an override needs an expert's (or admin's) signature.")
            return False
        if self._submit([row], Verdict.OVERRIDE, material, reason.strip(), signature=signature):
            self._select_next()
            return True
        return False

    def bulk_accept_visible(self, confirm: bool = True) -> int:
        """Accept every confident, defect-free, unreviewed item the filters show; one audit entry each."""
        candidates = self._bulk_candidates()
        if not candidates:
            self._message("No confident, defect-free, unreviewed item in view.")
            return 0
        block = self._decision_block()
        if block:
            self._message(block)
            return 0
        if confirm:
            answer = QMessageBox.question(
                self, "Accept in bulk",
                f"Accept {len(candidates)} confident, defect-free items as classified?\n"
                "Each gets its own audit entry under your operator ID.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return 0
        return len(candidates) if self._submit(candidates, Verdict.ACCEPT, bulk=True) else 0

    @Slot(object, object)
    def _on_verdict_committed(self, entry, row: ItemRow) -> None:
        self.model.set_pending(row.item_id, False)
        self.model.update_rows([row])
        if self.detail.item_id == row.item_id:
            self._show_current()
        self._update_counts()
        self.statusBar().showMessage(f"{row.relative_path}: {row.status_text} — record #{entry.id}", 5000)
        self.verdict_committed.emit(entry)

    @Slot(int, str)
    def _on_verdict_failed(self, item_id: int, message: str) -> None:
        self.model.set_pending(item_id, False)
        self._message(f"Not recorded: {message}")
        self._update_controls()
        self.verdict_failed.emit(message)

    # -- export ---------------------------------------------------------------------------
    def export_csv(self, path: Path | str | None = None) -> bool:
        return self._export("csv", path, "CSV report (*.csv)")

    def export_pdf(self, path: Path | str | None = None) -> bool:
        return self._export("pdf", path, "PDF summary (*.pdf)")

    def _export(self, kind: str, path: Path | str | None, file_filter: str) -> bool:
        if self.context is None:
            self._message("Inspect a folder first.")
            return False
        if path is None:
            from station.review.export import export_path

            suggested = str(export_path(self.context.folder, kind))
            path, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", suggested, file_filter)
            if not path:
                return False
        self.statusBar().showMessage(f"Writing {path}…")
        self.exporter.export(kind, self.context.store_dir, Path(path))
        return True

    @Slot(str, str)
    def _on_export_finished(self, kind: str, path: str) -> None:
        self.statusBar().showMessage(f"{kind.upper()} written: {path}", 10000)
        self.export_finished.emit(kind, path)

    @Slot(str, str)
    def _on_export_failed(self, kind: str, message: str) -> None:
        self._message(f"{kind.upper()} export failed: {message}")
        self.export_failed.emit(kind, message)

    # -- state ----------------------------------------------------------------------------
    def _message(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)

    def _update_controls(self) -> None:
        running = self.running
        for widget in (self.folder_edit, self.recursive_check, self.recipe_combo, self.attention_check, self.start_button):
            widget.setEnabled(not running)
        onnx_refusal = onnx_unavailable_reason(self.settings.device)
        self.onnx_check.setEnabled(not running and onnx_refusal is None)
        self.onnx_check.setToolTip(onnx_refusal or "The networks' arithmetic on ONNX Runtime: 1.5-3.9x faster on this "
                                   "CPU, the same calls (logits within 1e-5); the material map still comes from "
                                   "torch (Grad-CAM needs its gradients)")
        recipe = self.recipes.get(self.recipe_combo.currentText())
        self.reference_button.setVisible(bool(recipe is not None and recipe.use_reference))
        self.reference_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        has_results = self.context is not None
        self.models_button.setEnabled(bool(self._cards))
        self.export_csv_button.setEnabled(has_results)
        self.export_pdf_button.setEnabled(has_results)
        block = self._decision_block()
        self.bulk_button.setEnabled(not block)
        row = self.current_row()
        if block or row is None:
            self.detail.set_decisions_enabled(False, False, block or "Select an inspected image")
        else:
            pending = self.model.is_pending(row.item_id)
            accept_refusal = refusal(row, Verdict.ACCEPT)
            override_refusal = refusal(row, Verdict.OVERRIDE)
            self.detail.set_decisions_enabled(
                not pending and accept_refusal is None, not pending and override_refusal is None,
                "saving the decision…" if pending else (accept_refusal or override_refusal or ""),
            )
        self.operator_label.setText(
            f"Operator: {self.operator.name} ({self.operator.operator_id})" if self.operator else "Not signed in"
        )

    # -- shutdown -------------------------------------------------------------------------
    def confirm_stop_run(self) -> bool:
        """Asked before a close stops a running review; tests replace it."""
        answer = QMessageBox.question(
            self, "Stop the batch review?",
            "A folder is being inspected. Stop it and close?\n\nFinished images are kept: opening the "
            "folder again resumes where it stopped.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def shutdown(self) -> None:
        """Stop the run (finished files are kept) and every worker thread; called once at close."""
        if self._shut_down:
            return
        self._shut_down = True
        if self.control is not None:
            self.control.cancel()
        closes = {self.batch_thread: self.batch.close, self.verdict_thread: self.verdicts.close}
        worker_threads = (self.batch_thread, self.verdict_thread, self.loader_thread, self.export_thread)
        for worker_thread in worker_threads:
            worker_thread.request_finish()
        # a network mid-call cannot be interrupted: a thread still busy at the deadline outlives
        # the window (workers.FINISHING) and its resources are closed when it ends
        deadline = time.monotonic() + self.stop_timeout_ms / 1000
        for worker_thread in worker_threads:
            left_ms = int((deadline - time.monotonic()) * 1000)
            worker_thread.wait(left_ms, then=closes.get(worker_thread))
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.running and not self._shut_down and not self.confirm_stop_run():
            event.ignore()
            return
        self.shutdown()
        super().closeEvent(event)

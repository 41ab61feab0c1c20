"""The station's main window: live view, captured image with overlays, and the operator's
Capture & Classify workflow (sign-in, chip ids, verdict, release to decapping).

All slow work happens in workers (station/ui/workers.py): frames in the capture thread,
models in the inference thread, audit writes (fsync) in the audit thread. The window only
keeps state and reacts to their signals.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from station import __version__
from station.audit.entry import AuditEntry, Verdict
from station.config import Settings, save_settings
from station.ui.dialogs import ModelCardsDialog, OverrideDialog, SignInDialog
from station.ui.image_view import ImageView
from station.ui.inspection_panel import InspectionPanel
from station.ui.result_panel import OverlayControls
from station.ui.source_bar import DEMO_LABEL, SourceBar
from station.ui.workers import AuditWorker, CaptureWorker, InferenceWorker, WorkerThread
from station.workflow import (
    AuditDraft,
    Inspection,
    Operator,
    recipe_change_draft,
    sign_in_draft,
    sign_out_draft,
    threshold_change_draft,
)

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    # queued into the worker threads
    _run_source = Signal(str)
    _load_recipe = Signal(object, str)
    _audit_append = Signal(int, object)
    _load_image = Signal(int, str)

    # for tests and the status bar
    audit_committed = Signal(object)  # AuditEntry
    audit_failed = Signal(str)
    inspection_updated = Signal()
    notified = Signal(str, str)  # title, message: every warning shown to the operator
    frame_shown = Signal()
    source_started = Signal(str)  # description
    source_stopped = Signal()
    recipe_ready = Signal(str)

    def __init__(self, settings: Settings, device_description: str = "CPU", recipes: dict | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.setWindowTitle(f"IC Inspection Station {__version__}")
        self.resize(1500, 900)
        self.operator: Operator | None = None
        self.inspection: Inspection | None = None
        self.latest_frame = None
        self.frames_shown = 0
        self.reference_image = None
        self._recipes = recipes if recipes is not None else _load_recipes()
        self._recipe = None  # the recipe the inference worker has loaded
        self._model_cards: dict = {}  # its models' cards by role
        self.cards_dialog: ModelCardsDialog | None = None
        self._request_ids = itertools.count(1)
        self._tickets = itertools.count(1)
        self._pending_audit: dict[int, tuple[AuditDraft, Callable[[AuditEntry], None] | None, bool]] = {}
        self._inference_busy = False

        self._start_workers()
        self._build_ui(device_description)
        self._build_shortcuts()
        self._build_menus()
        self.source_bar.select_spec(settings.camera.source, DEMO_LABEL if settings.camera.source == "demo" else None)
        if self._recipes:
            names = sorted(self._recipes)
            current = settings.recipe if settings.recipe in self._recipes else names[0]
            self.panel.set_recipes(names, current)
            self.choose_recipe(current)
        else:
            self.panel.recipe_status.setText("No recipes found: check the installation (resources/recipes).")
        self._update_controls()

    def notify(self, title: str, message: str, *, critical: bool = False) -> None:
        """Tell the operator without blocking: a window-modal box that does not stop the event loop."""
        log.log(logging.ERROR if critical else logging.WARNING, "%s: %s", title, message)
        box = QMessageBox(QMessageBox.Icon.Critical if critical else QMessageBox.Icon.Warning, title, message, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.notified.emit(title, message)

    # -- construction -------------------------------------------------------------
    def _start_workers(self) -> None:
        self.capture = CaptureWorker()
        self.capture_thread = WorkerThread(self.capture, "capture")
        self._run_source.connect(self.capture.run_source)
        self.capture.frame_available.connect(self._show_latest_frame)
        self.capture.source_opened.connect(self._on_source_opened)
        self.capture.source_problem.connect(self._on_source_problem)
        self.capture.source_error.connect(self._on_source_error)
        self.capture.source_finished.connect(self._on_source_finished)
        self.capture.fps_measured.connect(self._on_fps)

        self.inference = InferenceWorker()
        self.inference_thread = WorkerThread(self.inference, "inference")
        self._load_recipe.connect(self.inference.load_recipe)
        self.inference.recipe_loaded.connect(self._on_recipe_loaded)
        self.inference.recipe_failed.connect(self._on_recipe_failed)
        self.inference.result_ready.connect(self._on_result)
        self.inference.request_failed.connect(self._on_request_failed)
        self.inference.busy_changed.connect(self._on_inference_busy)

        self.audit = AuditWorker()
        self.audit_thread = WorkerThread(self.audit, "audit")
        self._audit_append.connect(self.audit.append)
        self.audit.committed.connect(self._on_audit_committed)
        self.audit.failed.connect(self._on_audit_failed)
        self._load_image.connect(self.audit.load_image)
        self.audit.image_loaded.connect(self._on_image_loaded)
        self._reference_requests: dict[int, str] = {}

    def _build_ui(self, device_description: str) -> None:
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
        self.captured_view = ImageView("Press Capture & Classify (Space)\nto freeze and inspect the current frame.", interactive=True)
        self.captured_view.setObjectName("capturedView")
        self.captured_view.setToolTip("Wheel: zoom · drag: pan · double-click: fit")
        self.overlay_controls = OverlayControls()
        self.overlay_controls.min_score.setValue(0.0)
        self.overlay_controls.attention.setChecked(self.settings.show_attention)
        self.overlay_controls.opacity.setValue(round(self.settings.attention_opacity * 100))
        self.overlay_controls.boxes.setChecked(self.settings.show_boxes)
        self.overlay_controls.changed.connect(self._render_captured)
        # owned by the window, so it dies with it (a free single-shot could fire after close)
        self._busy_message_timer = QTimer(self)
        self._busy_message_timer.setSingleShot(True)
        self._busy_message_timer.setInterval(4000)
        self._busy_message_timer.timeout.connect(self._restore_busy_label)
        self._threshold_timer = QTimer(self)
        self._threshold_timer.setSingleShot(True)
        self._threshold_timer.setInterval(1500)
        self._threshold_timer.timeout.connect(self._log_threshold_change)
        self._logged_min_score = 0.0
        self.overlay_controls.min_score.valueChanged.connect(lambda _: self._threshold_timer.start())

        live_box = _titled("Live", self.live_view)
        captured_box = QWidget()
        captured_layout = QVBoxLayout(captured_box)
        captured_layout.setContentsMargins(0, 0, 0, 0)
        captured_layout.addWidget(_heading("Captured"))
        captured_layout.addWidget(self.captured_view, 1)
        captured_layout.addWidget(self.overlay_controls)

        self.panel = InspectionPanel()
        self.panel.capture_clicked.connect(self.capture_and_classify)
        self.panel.accept_clicked.connect(self.accept_result)
        self.panel.override_clicked.connect(self.override_result)
        self.panel.hold_clicked.connect(self.hold_result)
        self.panel.release_clicked.connect(self.release_to_decapping)
        self.panel.sign_in_clicked.connect(self.request_sign_in)
        self.panel.recipe_chosen.connect(self.choose_recipe)
        self.panel.reference_from_frame.connect(self.use_frame_as_reference)
        self.panel.reference_from_file.connect(self.load_reference_file)
        self.panel.results.defect_selected.connect(lambda _: self._render_captured())

        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(live_box)
        views.addWidget(captured_box)
        views.setStretchFactor(0, 1)
        views.setStretchFactor(1, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(views)
        self.splitter.addWidget(self.panel)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)

        self.source_label = QLabel("Source: none")
        self.fps_label = QLabel("— fps")
        self.device_label = QLabel(f"Compute: {device_description}")
        self.audit_label = QLabel("Audit: ready")
        for widget in (self.source_label, self.fps_label, self.device_label, self.audit_label):
            self.statusBar().addPermanentWidget(widget)

    def _build_shortcuts(self) -> None:
        for shortcut in getattr(self, "_capture_shortcuts", []):
            shortcut.setEnabled(False)
            shortcut.deleteLater()
        keys = {"Space"}
        pedal = (self.settings.foot_pedal_key or "").strip()
        if pedal:
            keys.add(pedal)
        self._capture_shortcuts = []
        for key in sorted(keys):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(self.capture_and_classify)
            self._capture_shortcuts.append(shortcut)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.batch_action = file_menu.addAction("&Batch review of a folder…", self.open_batch_review)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", self.close)
        station_menu = menu.addMenu("&Station")
        station_menu.addAction("Sign in / &switch operator…", self.request_sign_in)
        station_menu.addAction("Sign &out", self.sign_out)
        station_menu.addAction("Image &scale (µm per pixel)…", self.ask_scale)
        station_menu.addAction("&Foot-pedal key…", self.ask_foot_pedal_key)
        view_menu = menu.addMenu("&View")
        view_menu.addAction("&Audit log…", self.open_audit_view)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction("&Models in use…", self.show_model_cards)
        help_menu.addAction("&About", self._about)

    @Slot()
    def open_audit_view(self) -> None:
        from station.ui.audit_view import AuditView

        if getattr(self, "_audit_view", None) is None:
            self._audit_view = AuditView(self)
        self._audit_view.show()
        self._audit_view.raise_()
        self._audit_view.refresh()

    @Slot()
    def open_batch_review(self) -> None:
        from station.ui.batch_window import BatchReviewWindow

        window = getattr(self, "_batch_window", None)
        if window is None:
            window = self._batch_window = BatchReviewWindow(self.settings, self._recipes, self.operator, self)
            window.destroyed.connect(lambda: setattr(self, "_batch_window", None))
        window.show()
        window.raise_()

    @Slot()
    def ask_scale(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        value, ok = QInputDialog.getDouble(
            self, "Image scale", "Micrometres per pixel at the current magnification (0 = unknown):",
            self.settings.um_per_px or 0.0, 0.0, 10000.0, 3,
        )
        if ok:
            self.settings.um_per_px = value or None
            if self.inspection is not None and self.inspection.result is not None:
                self._on_result(self.inspection.result)

    @Slot()
    def ask_foot_pedal_key(self) -> None:
        """Most foot pedals send a key press; press the pedal in the field to record its key."""
        from PySide6.QtWidgets import QDialogButtonBox, QKeySequenceEdit

        dialog = QDialog(self)
        dialog.setWindowTitle("Foot-pedal key")
        editor = QKeySequenceEdit(QKeySequence(self.settings.foot_pedal_key or ""))
        editor.setMaximumSequenceLength(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(QLabel("Press the foot pedal (or the key it sends) to capture with it:"))
        layout.addWidget(editor)
        layout.addWidget(buttons)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.set_foot_pedal_key(editor.keySequence().toString())

    def set_foot_pedal_key(self, key: str) -> None:
        self.settings.foot_pedal_key = key
        self._build_shortcuts()
        self.statusBar().showMessage(f"Capture & Classify: Space or {key or 'no pedal'}", 5000)

    @Slot()
    def show_model_cards(self) -> None:
        if self._recipe is None or not self._model_cards:
            self.statusBar().showMessage("The recipe's models are not loaded yet.", 5000)
            return
        self.cards_dialog = ModelCardsDialog.show_fresh(self.cards_dialog, self._recipe.name, self._model_cards, self)

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About the IC Inspection Station",
            f"IC Inspection Station {__version__}\n\nPackaging material: CTI (CNN–transformer interaction).\n"
            "Micro defects: WBAM-FFEM.\nEvery verdict is written to a hash-chained audit log before release.",
        )

    # -- operator -----------------------------------------------------------------
    @Slot()
    def request_sign_in(self) -> None:
        dialog = SignInDialog(self.settings.last_operator_id, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.sign_in(Operator(*dialog.values()))

    def sign_in(self, operator: Operator) -> None:
        previous = self.operator
        if previous is not None and previous.operator_id != operator.operator_id:
            self._append_audit(sign_out_draft(previous))
        self.operator = operator
        self.settings.last_operator_id = operator.operator_id
        self._append_audit(sign_in_draft(operator, previous, self._recipe.name if self._recipe is not None else None))
        self._tell_batch_window(operator)
        self.panel.operator_label.setText(f"{operator.name} ({operator.operator_id})")
        self.panel.sign_in_button.setText("Switch operator…")
        self.panel.chip_fields.chip.setFocus()
        self._update_controls()

    @Slot()
    def sign_out(self) -> None:
        if self.operator is None:
            return
        self._append_audit(sign_out_draft(self.operator))
        self.operator = None
        self._tell_batch_window(None)
        self.panel.operator_label.setText("Not signed in")
        self.panel.sign_in_button.setText("Sign in…")
        self._update_controls()

    def _tell_batch_window(self, operator: Operator | None) -> None:
        window = getattr(self, "_batch_window", None)
        if window is not None:
            window.set_operator(operator)

    # -- recipes ------------------------------------------------------------------
    @Slot(str)
    def choose_recipe(self, name: str) -> None:
        recipe = self._recipes.get(name)
        if recipe is None:
            return
        self.panel.recipe_status.setText(f"Loading models for “{name}”…")
        self.panel.set_reference_visible(recipe.use_reference)
        self._load_recipe.emit(recipe, self.settings.device)

    @Slot(str, str, object)
    def _on_recipe_loaded(self, name: str, device: str, cards: dict) -> None:
        previous = self._recipe.name if self._recipe is not None else None
        self._recipe = self._recipes[name]
        self._model_cards = dict(cards)
        models = {card.name: card.weights_sha256 for card in cards.values()}  # as the engine's ModelRefs
        self.settings.recipe = name
        self.device_label.setText(f"Compute: {device}")
        self.panel.recipe_status.setText(self._recipe.description)
        self.overlay_controls.set_maps_available(self._recipe.classifier is not None, self._recipe.detector is not None)
        # an inspection-only recipe (no classifier) ends at the verdict: nothing goes to decapping
        self.panel.release_button.setVisible(self._recipe.classifier is not None)
        self.panel.results.set_classifier_shown(self._recipe.classifier is not None)
        if self.operator is not None and previous != name:
            self._append_audit(recipe_change_draft(self.operator, name, models, previous))
        self._update_controls()
        self.recipe_ready.emit(name)

    @Slot(str, str)
    def _on_recipe_failed(self, name: str, message: str) -> None:
        self.panel.recipe_status.setText(f"“{name}” could not be loaded: {message}")
        self.notify("Recipe not loaded", f"The models of “{name}” could not be loaded.\n\n{message}")
        if self._recipe is not None:
            self.panel.recipe.setCurrentText(self._recipe.name)
        self._update_controls()

    @Slot()
    def use_frame_as_reference(self) -> None:
        if self.latest_frame is None:
            self.statusBar().showMessage("No live frame to use as the reference yet.", 5000)
            return
        self.reference_image = self.latest_frame.image.copy()
        self.panel.set_reference_text(f"reference: live frame #{self.latest_frame.frame_id}")

    @Slot(str)
    def load_reference_file(self, path: str) -> None:
        """Decoded in the audit thread (it already reads images), never on the GUI thread."""
        ticket = next(self._tickets)
        self._reference_requests[ticket] = path
        self.panel.set_reference_text(f"loading {path}…")
        self._load_image.emit(ticket, path)

    @Slot(int, object)
    def _on_image_loaded(self, ticket: int, image) -> None:
        path = self._reference_requests.pop(ticket, None)
        if path is None:
            return
        if image is None:
            self.panel.set_reference_text("no reference set")
            self.notify("Reference image", f"{path} could not be read as an image (missing, truncated or not an image).")
            return
        self.reference_image = image
        self.panel.set_reference_text(f"reference: {path}")

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
        if self.frames_shown == 1:
            self._update_controls()
        self.frame_shown.emit()

    @Slot(str)
    def _on_source_opened(self, description: str) -> None:
        self.source_label.setText(f"Source: {description}")
        log.info("source opened: %s", description)
        self.source_started.emit(description)

    @Slot(str)
    def _on_source_problem(self, message: str) -> None:
        log.warning("source problem: %s", message)
        self.statusBar().showMessage(message, 8000)

    @Slot(str)
    def _on_source_error(self, message: str) -> None:
        self.source_label.setText("Source: none")
        self.live_view.set_placeholder(message)
        self.notify("Source error", message)

    @Slot()
    def _on_source_finished(self) -> None:
        self.source_bar.set_running(False)
        self.fps_label.setText("— fps")
        if not self.source_label.text().endswith(("none", "(stopped)")):
            self.source_label.setText(self.source_label.text() + " (stopped)")
        self.source_stopped.emit()

    @Slot(float)
    def _on_fps(self, fps: float) -> None:
        self.fps_label.setText(f"{fps:.1f} fps")

    # -- capture & classify -------------------------------------------------------
    @property
    def is_classifying(self) -> bool:
        return self.inspection is not None and self.inspection.result is None and self.inspection.error is None

    @Slot()
    def capture_and_classify(self) -> None:
        refusal = self._capture_refusal()
        if refusal:
            self._flash_busy(refusal)
            return
        from station.inference import InspectionRequest

        frame = self.latest_frame
        recipe = self._recipe
        self.inspection = Inspection(next(self._request_ids), frame, recipe, self.panel.chip_fields.values())
        self.captured_view.reset_view()
        self.captured_view.set_image(frame.image)
        self.panel.results.clear("classifying…")
        self.panel.record_label.setText("")
        self.panel.busy_label.setText("Classifying…")
        reference = self.reference_image if recipe.use_reference else None
        self.inference.submit(InspectionRequest(self.inspection.request_id, frame.image, reference, want_attention=True))
        self._update_controls()

    def _capture_refusal(self) -> str:
        if self.operator is None:
            return "Sign in first: every inspection is recorded under an operator."
        if self._recipe is None:
            return "The recipe's models are not loaded yet."
        if self.latest_frame is None:
            return "No frame yet: start a source."
        if self.is_classifying:
            return "Busy: still classifying the previous capture — this press was ignored."
        if self._recipe.use_reference and self.reference_image is None:
            return "This recipe compares against a reference: set the reference image first."
        if self._pending_audit_for_inspection():
            return "Busy: the audit record is still being written — this press was ignored."
        return ""

    def _flash_busy(self, message: str) -> None:
        self.panel.busy_label.setText(message)
        self.statusBar().showMessage(message, 5000)
        self._busy_message_timer.start()

    def _restore_busy_label(self) -> None:
        self.panel.busy_label.setText("Classifying…" if self.is_classifying else "")

    @Slot(object)
    def _on_result(self, result) -> None:
        if self.inspection is None or result.request_id != self.inspection.request_id:
            return  # a stale result
        self.inspection.result = result
        self.panel.busy_label.setText("")
        threshold = result.thresholds.get("uncertain_below", 0.0)
        self.panel.results.show_result(result, threshold, self.settings.um_per_px)
        self._render_captured()
        self._update_controls()
        self.inspection_updated.emit()

    @Slot(int, str)
    def _on_request_failed(self, request_id: int, message: str) -> None:
        if self.inspection is None or request_id != self.inspection.request_id:
            return
        self.inspection.error = message
        self.panel.busy_label.setText("")
        self.panel.results.clear("not classified")
        self.notify("Classification failed", message)
        self._update_controls()
        self.inspection_updated.emit()

    @Slot(bool)
    def _on_inference_busy(self, busy: bool) -> None:
        self._inference_busy = busy

    @Slot()
    def _render_captured(self) -> None:
        inspection = self.inspection
        if inspection is None or inspection.result is None:
            return
        from station.render import SCREEN_LONG_SIDE, compose_overlay

        selected = self.panel.results.selected_defect()
        image = compose_overlay(
            inspection.frame.image,
            inspection.result,
            highlight_index=selected if selected >= 0 else None,
            upscale_to=SCREEN_LONG_SIDE,
            **self.overlay_controls.options(),
        )
        self.captured_view.set_image(image)

    def _log_threshold_change(self) -> None:
        value = self.overlay_controls.min_score.value()
        if self.operator is None or value == self._logged_min_score or self._recipe is None:
            return
        draft = threshold_change_draft(
            self.operator, self._recipe.name, {"display_min_score": value}, {"display_min_score": self._logged_min_score}
        )
        self._logged_min_score = value
        self._append_audit(draft)

    # -- verdict and release ------------------------------------------------------
    @Slot()
    def accept_result(self) -> None:
        if self.inspection is None or not self.inspection.can_accept:
            return
        self._write_verdict(self.inspection.verdict_draft(self.operator, Verdict.ACCEPT))

    @Slot()
    def override_result(self) -> None:
        inspection = self.inspection
        if inspection is None or not inspection.can_give_verdict:
            return
        call = inspection.result.material
        if not inspection.goes_to_decapping:
            materials = []  # an inspection-only recipe: the operator overrides the findings
        else:
            materials = list(call.classes) if call is not None else sorted(inspection.recipe.decap_methods)
        dialog = OverrideDialog(materials, call.material if call is not None else "", self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        material, reason = dialog.values()
        self.override_with(material, reason)

    def override_with(self, material: str, reason: str) -> None:
        inspection = self.inspection
        if inspection is None or not inspection.can_give_verdict:
            return
        self._write_verdict(inspection.verdict_draft(self.operator, Verdict.OVERRIDE, material, reason))

    @Slot()
    def hold_result(self) -> None:
        if self.inspection is None or not self.inspection.can_give_verdict:
            return
        self._write_verdict(self.inspection.verdict_draft(self.operator, Verdict.REJECT_HOLD))

    def _write_verdict(self, draft: AuditDraft) -> None:
        inspection = self.inspection
        self.panel.record_label.setText("Writing the audit record…")

        def committed(entry: AuditEntry) -> None:
            inspection.commit_verdict(draft, entry.id)
            if inspection.can_release:
                text = f"Record #{entry.id} committed: {draft.fields['verdict']} — {inspection.material} → {inspection.decap_method}."
            elif inspection.verdict is Verdict.REJECT_HOLD:
                text = f"Record #{entry.id} committed: chip held" + (
                    "; it does not go to decapping." if inspection.goes_to_decapping else " for an expert.")
            else:
                text = f"Record #{entry.id} committed: {draft.fields['verdict']} — inspection only (this recipe sends nothing to decapping)."
            self.panel.record_label.setText(text)

        self._append_audit(draft, committed, inspection=True)

    @Slot()
    def release_to_decapping(self) -> None:
        inspection = self.inspection
        if inspection is None or not inspection.can_release:
            return
        draft = inspection.release_draft(self.operator)

        def committed(entry: AuditEntry) -> None:
            inspection.release_entry_id = entry.id
            self.panel.record_label.setText(
                f"Released to decapping ({inspection.decap_method}). Record #{entry.id} (verdict #{inspection.verdict_entry_id})."
            )
            self.panel.chip_fields.clear()

        self._append_audit(draft, committed, inspection=True)

    # -- audit --------------------------------------------------------------------
    def _append_audit(self, draft: AuditDraft, on_committed: Callable[[AuditEntry], None] | None = None, *, inspection: bool = False) -> int:
        ticket = next(self._tickets)
        self._pending_audit[ticket] = (draft, on_committed, inspection)
        self._audit_append.emit(ticket, draft)
        self.audit_label.setText("Audit: writing…")
        self._update_controls()
        return ticket

    def _pending_audit_for_inspection(self) -> bool:
        return any(flag for _, _, flag in self._pending_audit.values())

    @Slot(int, object)
    def _on_audit_committed(self, ticket: int, entry: AuditEntry) -> None:
        draft, on_committed, _ = self._pending_audit.pop(ticket, (None, None, False))
        if on_committed is not None:
            on_committed(entry)
        self.audit_label.setText(f"Audit: #{entry.id} {entry.action}")
        self._update_controls()
        self.audit_committed.emit(entry)
        self.inspection_updated.emit()

    @Slot(int, str)
    def _on_audit_failed(self, ticket: int, message: str) -> None:
        draft, _, for_inspection = self._pending_audit.pop(ticket, (None, None, False))
        action = draft.action.value if draft is not None else "entry"
        self.audit_label.setText("Audit: WRITE FAILED")
        if for_inspection:
            self.panel.record_label.setText(f"NOT recorded — release stays blocked.\n{message}")
        self.notify(
            "Audit record not written",
            f"The {action} record could not be written, so nothing was recorded and the chip "
            f"cannot be released to decapping.\n\n{message}\n\nFree disk space or fix the data folder's "
            "permissions, then give the verdict again.",
            critical=True,
        )
        self._update_controls()
        self.audit_failed.emit(message)
        self.inspection_updated.emit()

    # -- state --------------------------------------------------------------------
    def _update_controls(self) -> None:
        inspection = self.inspection
        writing = self._pending_audit_for_inspection()
        self.panel.capture_button.setEnabled(self.operator is not None and self._recipe is not None)
        can_verdict = inspection is not None and inspection.can_give_verdict and not writing and self.operator is not None
        self.panel.set_verdict_enabled(can_verdict)
        self.panel.accept_button.setEnabled(can_verdict and inspection.can_accept)
        self.panel.accept_button.setToolTip(
            "Uncertain result or failed image check: override with a reason, or hold for an expert." if inspection is not None and inspection.uncertain else ""
        )
        self.panel.release_button.setEnabled(inspection is not None and inspection.can_release and not writing)
        if inspection is not None and inspection.release_entry_id is None and inspection.verdict_entry_id is not None and inspection.can_release:
            self.panel.release_button.setText(f"Release to decapping (record #{inspection.verdict_entry_id})")
        else:
            self.panel.release_button.setText("Release to decapping")

    # -- lifetime -----------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every worker thread and sign the operator out; called once at close."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        for name, worker_thread in (("capture", self.capture_thread), ("inference", self.inference_thread), ("audit", self.audit_thread)):
            if not worker_thread.stop():
                log.warning("%s thread did not stop in time", name)
        for view in (getattr(self, "_audit_view", None), getattr(self, "_batch_window", None)):
            if view is not None:
                view.close()
        if self.operator is not None:
            # the audit thread has stopped: the last entry is written here, at exit
            from station.audit import AuditError, AuditLog

            draft = sign_out_draft(self.operator)
            try:
                with AuditLog() as audit_log:
                    audit_log.append(draft.action, **draft.fields)
            except (AuditError, OSError) as exc:
                log.error("sign-out not recorded: %s", exc)
        try:
            save_settings(self.settings)
        except OSError as exc:
            log.warning("could not save settings: %s", exc)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)


def _load_recipes() -> dict:
    from station.inference import load_recipes

    try:
        return load_recipes()
    except Exception as exc:  # noqa: BLE001 — a broken recipe folder must not stop the window
        log.error("recipes could not be loaded: %s", exc)
        return {}


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight:bold;color:#555;")
    return label


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(_heading(title))
    layout.addWidget(widget, 1)
    return box

"""The station's main window: live view, captured image with overlays, and the operator's
Capture & Classify workflow. It composes the workers and the widgets; the steps live in
mixins beside it (operator_session, inspection_flow, live_source, window_menus) and every
change of state ends in ``_refresh()``, which redraws the panel from the workflow model.

All slow work happens in workers (station/ui/workers.py): frames in the capture thread,
models in the inference thread, audit writes (fsync) in the audit thread. The window only
keeps state and reacts to their signals.
"""

from __future__ import annotations

import itertools
import logging
import math

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from station import __version__
from station.audit.draft import EntryDraft
from station.audit.setup import AuditSetup
from station.config import Settings, save_settings
from station.ui.compact import MessageRoom, StatusLabel
from station.ui.dialogs import ModelCardsDialog
from station.ui.image_view import ImageView
from station.ui.inspection_flow import InspectionFlowMixin
from station.ui.inspection_panel import InspectionPanel, PanelState
from station.ui.live_source import LiveSourceMixin
from station.ui.operator_session import OperatorSessionMixin
from station.ui.result_panel import OverlayControls
from station.ui.screen_fit import fit_to_screen
from station.ui.source_bar import DEMO_LABEL, SourceBar
from station.ui.users_dialogs import IdleLock, UsersClient
from station.ui.users_session import UsersSessionMixin
from station.ui.window_menus import StationMenusMixin
from station.ui.workers import AuditWorker, CaptureWorker, InferenceWorker, WorkerThread
from station.users import Permission
from station.workflow import Inspection, Operator, recipe_change_draft, sign_out_draft, threshold_change_draft

log = logging.getLogger(__name__)


class MainWindow(UsersSessionMixin, OperatorSessionMixin, InspectionFlowMixin, LiveSourceMixin, StationMenusMixin, QMainWindow):
    # queued into the worker threads
    _run_source = Signal(str)
    _load_recipe = Signal(object, str)
    _audit_append = Signal(int, object)
    _load_image = Signal(int, str)
    _check_audit_status = Signal()
    _discover_cameras = Signal()

    # for tests and the status bar
    audit_committed = Signal(object)  # AuditEntry
    audit_failed = Signal(str)
    inspection_updated = Signal()
    capture_painted = Signal(float)  # ms from the capture key to the painted result
    stop_timeouts_ms = {"inference": 30_000, "cameras": 1500}  # how long a close waits for each worker thread (else 3 s)
    notified = Signal(str, str)  # title, message: every warning shown to the operator
    frame_shown = Signal()
    source_started = Signal(str)  # description
    source_stopped = Signal()
    recipe_ready = Signal(str)
    cameras_listed = Signal(object)  # the picker's list: station.capture.discovery.CameraListing

    def __init__(self, settings: Settings, device_description: str = "CPU", recipes: dict | None = None,
                 audit: AuditSetup | None = None) -> None:
        """``recipes`` and ``audit`` (where records go, under which station ID) come from
        ``station.app``, read once; left out, they are the settings' (tests, tools)."""
        super().__init__()
        self.settings = settings
        self.audit_setup = audit or AuditSetup.from_settings(settings)
        self.setWindowTitle(f"IC Inspection Station {__version__}")
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
        self._pending_audit: dict[int, tuple[EntryDraft, object, bool]] = {}  # ticket -> draft, on_committed, of the inspection
        self._frame_fresh = False  # a frame arrived since the source (re)started and it has not stalled
        self._last_frame_at = 0.0
        self._busy_note = ""
        self._record_note = ""
        self._capture_started = 0.0
        self._awaiting_paint = False
        self._latency_ms: float | None = None
        self._recipe_signature = None  # the expert's signature for the recipe change being loaded
        self._approvals: dict[int, str] = {}  # users-worker ticket -> recipe to load once its models are approved
        self.idle_lock = IdleLock(settings.idle_lock_minutes, self)
        self.idle_lock.idle.connect(self.lock_session)

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
            self.panel.set_recipe_status("No recipes found: check the installation (resources/recipes).")
        self._show_objectives()
        self._check_audit_status.emit()  # a lab server that cannot be reached is named at once
        self._refresh()
        # a bench monitor smaller than this (1366×768) gets the window maximized: see show_fitted
        self.fills_screen = fit_to_screen(self, QSize(1500, 900))

    def show_fitted(self) -> None:
        """Show inside the screen: maximized where the preferred size does not fit."""
        if self.fills_screen:
            self.showMaximized()
        else:
            self.show()

    @Slot(object)
    def _on_audit_status(self, status) -> None:
        """``station.audit.LogStatus`` from the audit worker: where records go, and whether they can be stored."""
        self._audit_location = status.message
        self.audit_status_known = True
        told = None  # the box that says why the log cannot store, when one opened now
        if status.writable:
            self._audit_status_timer.stop()
            if self._audit_unreachable:
                self._audit_note = "lab server reachable again"
            self._audit_problem = self.log_problem = ""
            self._audit_unreachable = False
        else:
            self._audit_problem = ("LAB LOG SERVER UNREACHABLE (release blocked)" if status.unreachable
                                   else "LOG NOT WRITABLE (release blocked)")
            self.log_problem = (f"The lab's audit log server cannot be reached, so a sign-in cannot be recorded until "
                                f"it is back: {status.message}" if status.unreachable else
                                f"The audit log cannot be written, so a sign-in cannot be recorded: {status.message}")
        self._show_audit_state()
        if status.unreachable:
            self._audit_status_timer.start()
            if not self._audit_unreachable:
                told = self.notify("Lab audit log unreachable", f"{status.message}\n\nNothing can be recorded and "
                                   "no chip can be released until the server is back; the station tries it again "
                                   "every 15 s. Then give the verdict again.", critical=True)
            self._audit_unreachable = True
        elif not status.writable:
            told = self._tell_log_not_writable(status.message)
        self._start_sign_in_after(told)

    def _tell_log_not_writable(self, message: str) -> QMessageBox | None:
        """Once: why nothing can be recorded (a read-only or full data disk), so the operator knows
        before the first verdict is refused."""
        if self._audit_unwritable_told:
            return None
        self._audit_unwritable_told = True
        from station.logs import log_file_problem

        also = f"\n\nThe station's log file cannot be written either: {log_file_problem()}." if log_file_problem() else ""
        return self.notify("Audit log not writable", f"{message}\n\nThe station cannot record anything, so no chip "
                           "can be released to decapping. Free disk space or fix the data folder's permissions, then "
                           f"restart the station.{also}", critical=True)

    def notify(self, title: str, message: str, *, critical: bool = False) -> QMessageBox:
        """Tell the operator without blocking: a window-modal box that does not stop the event loop."""
        log.log(logging.ERROR if critical else logging.WARNING, "%s: %s", title, message)
        box = QMessageBox(QMessageBox.Icon.Critical if critical else QMessageBox.Icon.Warning, title, message, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.notified.emit(title, message)
        return box

    # -- construction -------------------------------------------------------------
    def _start_workers(self) -> None:
        self.capture = CaptureWorker(self.settings.camera)
        self.capture_thread = WorkerThread(self.capture, "capture")
        self._run_source.connect(self.capture.run_source)
        self.capture.frame_available.connect(self._show_latest_frame)
        self.capture.source_opened.connect(self._on_source_opened)
        self.capture.source_problem.connect(self._on_source_problem)
        self.capture.source_error.connect(self._on_source_error)
        self.capture.source_finished.connect(self._on_source_finished)
        self.capture.fps_measured.connect(self._on_fps)
        self._start_discovery()

        self.inference = InferenceWorker()
        self.inference_thread = WorkerThread(self.inference, "inference")
        self._load_recipe.connect(self.inference.load_recipe)
        self.inference.recipe_loaded.connect(self._on_recipe_loaded)
        self.inference.recipe_failed.connect(self._on_recipe_failed)
        self.inference.recipe_unapproved.connect(self._on_recipe_unapproved)
        self.inference.result_ready.connect(self._on_result)
        self.inference.request_failed.connect(self._on_request_failed)

        self.audit = AuditWorker(self.audit_setup)
        self.audit_thread = WorkerThread(self.audit, "audit")
        self._audit_append.connect(self.audit.append)
        self.audit.committed.connect(self._on_audit_committed)
        self.audit.failed.connect(self._on_audit_failed)
        self._load_image.connect(self.audit.load_image)
        self.audit.image_loaded.connect(self._on_image_loaded)
        self._check_audit_status.connect(self.audit.check_status)
        self.audit.status_changed.connect(self._on_audit_status)
        self._audit_unreachable = False
        self._audit_unwritable_told = False
        # what the status bar's audit label shows (InspectionFlowMixin._show_audit_state)
        self._latest_entry = None  # the newest entry this station's windows and users worker committed
        self._audit_problem = ""  # why the log cannot store now ("" when it can)
        self._audit_note = ""
        self._audit_location = ""
        self.log_problem = ""  # the same for a person about to sign in ("" while the log can store)
        self._reference_requests: dict[int, str] = {}

        self.users_client = UsersClient(self.audit_setup, lockout_s=self.settings.lockout_minutes * 60, parent=self)
        self.users_client.answered.connect(self._on_users_answer)
        self.users_client.committed.connect(self.note_committed)  # failed tries, locks: the status bar follows

    def _build_ui(self, device_description: str) -> None:
        self.source_bar = SourceBar()
        self.source_bar.start_requested.connect(self.start_source)
        self.source_bar.pause_toggled.connect(self._on_pause_toggled)
        self.source_bar.stop_requested.connect(self.stop_source)
        self.source_bar.source_chosen.connect(self.choose_source)
        self.source_bar.refresh_requested.connect(self.refresh_cameras)
        toolbar = QToolBar("Source")
        toolbar.setObjectName("sourceToolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.source_bar)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self._build_timers()
        views = self._build_views()
        self.panel = self._build_panel()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(views)
        self.splitter.addWidget(self.panel)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)
        # a short bar, or a temporary message, narrows the source and the device; the audit label
        # stays whole up to its longest text (in bold: "Audit: LAB LOG SERVER UNREACHABLE (release blocked)")
        self.source_label = StatusLabel("Source: none", narrowest=14, widest=80)
        self.fps_label = QLabel("— fps")
        self.device_label = StatusLabel(f"Compute: {device_description}", narrowest=12, widest=60)
        self.audit_label = StatusLabel("Audit: ready", narrowest=60, widest=60)
        bar = self.statusBar()
        for widget in (self.source_label, self.fps_label, self.device_label, self.audit_label):
            bar.addPermanentWidget(widget)
        self._message_room = MessageRoom(bar, yielding=[self.source_label, self.device_label],
                                         others=[self.fps_label, self.audit_label])

    def _build_timers(self) -> None:
        # owned by the window, so they die with it (a free single-shot could fire after close)
        self._busy_message_timer = QTimer(self)
        self._busy_message_timer.setSingleShot(True)
        self._busy_message_timer.setInterval(4000)
        self._busy_message_timer.timeout.connect(self._restore_busy_label)
        self._threshold_timer = QTimer(self)
        self._threshold_timer.setSingleShot(True)
        self._threshold_timer.setInterval(1500)
        self._threshold_timer.timeout.connect(self._log_threshold_change)
        self._stall_timer = QTimer(self)
        self._stall_timer.setInterval(500)
        self._stall_timer.timeout.connect(self._check_stalled)
        self._stall_timer.start()
        self._audit_status_timer = QTimer(self)  # while the lab's log server is unreachable: try it again
        self._audit_status_timer.setInterval(15_000)
        self._audit_status_timer.timeout.connect(self._check_audit_status.emit)

    def _build_views(self) -> QSplitter:
        self.live_view = ImageView("No source running.\nChoose a source and press Start.")
        self.live_view.setObjectName("liveView")
        self.captured_view = ImageView("Scan the chip ID, then Capture & Classify (F12 / pedal)\n"
                                       "to freeze and inspect the current frame.", interactive=True)
        self.captured_view.setObjectName("capturedView")
        self.captured_view.setToolTip("Wheel: zoom · drag: pan · double-click: fit")
        self.captured_view.painted.connect(self._on_captured_painted)
        self.overlay_controls = OverlayControls()
        self.overlay_controls.min_score.setValue(0.0)
        self.overlay_controls.attention.setChecked(self.settings.show_attention)
        self.overlay_controls.opacity.setValue(round(self.settings.attention_opacity * 100))
        self.overlay_controls.boxes.setChecked(self.settings.show_boxes)
        self.overlay_controls.changed.connect(self._render_captured)
        self._logged_min_score = 0.0
        self.overlay_controls.min_score.valueChanged.connect(lambda _: self._threshold_timer.start())
        captured_box = QWidget()
        captured_layout = QVBoxLayout(captured_box)
        captured_layout.setContentsMargins(0, 0, 0, 0)
        captured_layout.addWidget(_heading("Captured"))
        captured_layout.addWidget(self.captured_view, 1)
        captured_layout.addWidget(self.overlay_controls)
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(_titled("Live", self.live_view))
        views.addWidget(captured_box)
        views.setStretchFactor(0, 1)
        views.setStretchFactor(1, 1)
        return views

    def _build_panel(self) -> InspectionPanel:
        panel = InspectionPanel()
        panel.capture_clicked.connect(self.capture_and_classify)
        panel.accept_clicked.connect(self.accept_result)
        panel.override_clicked.connect(self.override_result)
        panel.hold_clicked.connect(self.hold_result)
        panel.release_clicked.connect(self.release_to_decapping)
        panel.sign_in_clicked.connect(self.request_sign_in)
        panel.recipe_chosen.connect(self.choose_recipe)
        panel.objective_chosen.connect(self.choose_objective)
        panel.reference_from_frame.connect(self.use_frame_as_reference)
        panel.reference_from_file.connect(self.load_reference_file)
        panel.results.defect_selected.connect(lambda _: self._render_captured())
        panel.chip_fields.edited.connect(self._on_chip_edited)
        panel.chip_fields.completed.connect(self.capture_and_classify)  # a scanner ends with Enter
        return panel

    def _build_shortcuts(self) -> None:
        for shortcut in getattr(self, "_capture_shortcuts", []):
            shortcut.setEnabled(False)
            shortcut.deleteLater()
        # Space in a text field types a space (QLineEdit takes it first); F12 / the pedal capture everywhere
        keys = {"Space"}
        pedal = (self.settings.foot_pedal_key or "").strip()
        if pedal:
            keys.add(pedal)
        self._capture_shortcuts = []
        for key in sorted(keys):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(self.capture_and_classify)
            self._capture_shortcuts.append(shortcut)

    # -- recipes ------------------------------------------------------------------
    @Slot(str)
    def choose_recipe(self, name: str, signature_checked: bool = False) -> None:
        """Load recipe ``name``. A change of the loaded recipe needs a signed-in operator and an
        expert's (or admin's) signature, asked for here and recorded with the change."""
        recipe = self._recipes.get(name)
        if recipe is None:
            return
        if self._recipe is not None and name != self._recipe.name and not signature_checked:
            signature = None
            if self.operator is None:
                self._flash_busy("Sign in to change the recipe: the change is recorded under your ID.")
            else:
                signature = self.ask_signature(Permission.CHANGE_RECIPE,
                                               f"Change the recipe from “{self._recipe.name}” to “{name}”.")
            if signature is None:
                self.panel.recipe.setCurrentText(self._recipe.name)
                return
            self._recipe_signature = signature
        self.panel.set_recipe_status(f"Loading models for “{name}”…")
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
        self.panel.set_recipe_description(self._recipe.description)
        self.overlay_controls.set_maps_available(self._recipe.classifier is not None, self._recipe.detector is not None)
        # an inspection-only recipe (no classifier) ends at the verdict: nothing goes to decapping
        self.panel.release_button.setVisible(self._recipe.classifier is not None)
        self.panel.results.set_classifier_shown(self._recipe.classifier is not None)
        if self.operator is not None and previous != name:
            self._append_audit(recipe_change_draft(self.operator, name, models, previous, self._recipe_signature))
        self._recipe_signature = None
        self._refresh()
        self.recipe_ready.emit(name)

    @Slot(str, str, object)
    def _on_recipe_unapproved(self, name: str, message: str, model_dirs) -> None:
        self.panel.set_recipe_status(f"“{name}” could not be loaded: its models are not approved for use.")
        if self._recipe is not None:
            self.panel.recipe.setCurrentText(self._recipe.name)
        self._refresh()
        self.offer_model_approval(name, list(model_dirs), message)

    @Slot(str, str)
    def _on_recipe_failed(self, name: str, message: str) -> None:
        self._recipe_signature = None
        self.panel.set_recipe_status(f"“{name}” could not be loaded: {message}")
        self.notify("Recipe not loaded", f"The models of “{name}” could not be loaded.\n\n{message}")
        if self._recipe is not None:
            self.panel.recipe.setCurrentText(self._recipe.name)
        self._refresh()

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

    @Slot()
    def _render_captured(self) -> None:
        inspection = self.inspection
        self.overlay_controls.show_map_note(inspection.result if inspection is not None else None)
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

    # -- state --------------------------------------------------------------------
    def _refresh(self) -> None:
        """Redraw the operator's column from the inspection and the window's state."""
        inspection = self.inspection
        view = inspection.view() if inspection is not None else None
        writing = self._pending_audit_for_inspection()
        refusal = self._capture_refusal() if not (inspection and inspection.awaiting_release) else ""
        busy = self._busy_note or ("Classifying…" if self.is_classifying else "")
        if inspection is not None and not inspection.owned_by(self.operator) and inspection.pending:
            busy = busy or f"This result belongs to {inspection.owner.operator_id}."
        self.panel.show_state(PanelState(
            operator_text=self.operator_text(),
            signed_in=self.operator is not None,
            capture_enabled=self.operator is not None and self._recipe is not None and self._frame_fresh,
            capture_tooltip=refusal,
            busy_text=busy,
            view=view,
            result=inspection.result if inspection is not None else None,
            writing=writing,
            record_note=self._record_note,
            chip_locked=inspection is not None and (inspection.awaiting_release or writing),
            timing_text=self._timing_text(),
            um_per_px=inspection.um_per_px if inspection is not None else None,  # the scale on record
        ))

    def _timing_text(self) -> str:
        result = self.inspection.result if self.inspection is not None else None
        if result is None:
            return ""
        models = result.timings_ms.get("total")
        engine = f"models {models:.0f} ms on {result.device}" if models is not None and math.isfinite(models) else ""
        if self._latency_ms is None:
            return engine
        return f"capture → result {self._latency_ms:.0f} ms" + (f" ({engine})" if engine else "")

    # -- lifetime -----------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every worker thread and sign the operator out; called once at close."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self.idle_lock.arm(False)
        worker_threads = (("capture", self.capture_thread), ("inference", self.inference_thread),
                          ("audit", self.audit_thread), ("users", self.users_client.thread),
                          ("cameras", self.discovery_thread))
        for name, worker_thread in worker_threads:
            # a model still loading cannot be interrupted, and a QThread destroyed while it runs
            # aborts the process: the inference thread gets the time a load takes, and a thread still
            # busy then outlives the window (workers.FINISHING) instead of the GUI waiting on it
            worker_thread.stop(timeout_ms=self.stop_timeouts_ms.get(name, 3000))
        if getattr(self, "_audit_view", None) is not None:
            self._audit_view.shutdown()
        if getattr(self, "_batch_window", None) is not None:
            self._batch_window.shutdown()  # batch_may_close asked already
            self._batch_window.close()
        if self.operator is not None:
            # the audit thread has stopped: the last entry is written here, at exit
            from station.audit import AuditError

            drafts = [sign_out_draft(self.operator)]
            if self.inspection is not None and self.inspection.pending:
                drafts.insert(0, self.inspection.discard_draft(self.operator, "station closed"))
            try:
                with self.audit_setup.open() as audit_log:
                    for draft in drafts:
                        audit_log.append(draft)
            except (AuditError, OSError) as exc:
                log.error("sign-out not recorded: %s", exc)
        try:
            save_settings(self.settings)
        except OSError as exc:
            log.warning("could not save settings: %s", exc)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not getattr(self, "_shut_down", False) and not self.batch_may_close():
            event.ignore()
            return
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

"""The main window's menus: batch review, the audit log, the objectives and their image scale,
the foot-pedal key, the model cards and About (a mixin of :class:`station.ui.main_window.MainWindow`)."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QLabel, QMessageBox, QVBoxLayout

from station import __version__
from station.ui.dialogs import ModelCardsDialog

STOP_AND_QUIT = "Stop it and quit"
KEEP_RUNNING = "Keep running"


class StationMenusMixin:
    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.batch_action = file_menu.addAction("&Batch review of a folder…", self.open_batch_review)
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("&Quit", self.close)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))  # not StandardKey.Quit: empty on Windows; the close still asks mid-batch
        station_menu = menu.addMenu("&Station")
        station_menu.addAction("Sign in / &switch operator…", self.request_sign_in)
        station_menu.addAction("Sign &out", self.sign_out)
        station_menu.addAction("&Objectives and image scale (µm per pixel)…", self.ask_objectives)
        station_menu.addAction("&Foot-pedal key…", self.ask_foot_pedal_key)
        view_menu = menu.addMenu("&View")
        view_menu.addAction("&Audit log…", self.open_audit_view)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction("&Models in use…", self.show_model_cards)
        help_menu.addAction("&About", self._about)

    def open_audit_view(self) -> None:
        from station.ui.audit_view import AuditView

        if getattr(self, "_audit_view", None) is None:
            self._audit_view = AuditView(self.audit_setup, self)
        self._audit_view.show()
        self._audit_view.raise_()
        self._audit_view.refresh()

    def open_batch_review(self) -> None:
        from station.ui.batch_window import BatchReviewWindow

        window = getattr(self, "_batch_window", None)
        if window is not None and window.is_shut_down:
            # closed before: its threads have ended, so it can go (no signal to a freed receiver: the
            # window is dropped here, not from a `destroyed` callback during teardown)
            window.deleteLater()
            window = None
        if window is None:
            window = self._batch_window = BatchReviewWindow(self.settings, self._recipes, self.operator, self,
                                                            ask_signature=self.ask_signature, audit=self.audit_setup)
            window.verdict_committed.connect(self.note_committed)  # the status bar names the latest entry
        window.show()
        window.raise_()

    def batch_may_close(self) -> bool:
        """Closing the station while a batch review runs asks first; the run then stops cleanly."""
        window = getattr(self, "_batch_window", None)
        if window is None or window.is_shut_down or not window.running:
            return True
        choice = self.ask_choice("Batch review running",
                                 "A folder is being inspected in the batch review. Stop it and quit the station?\n\n"
                                 "Finished images are kept: opening the folder again resumes.",
                                 [STOP_AND_QUIT, KEEP_RUNNING])
        return choice == STOP_AND_QUIT

    def ask_objectives(self) -> None:
        from station.ui.objectives_dialog import ObjectivesDialog

        dialog = ObjectivesDialog(self.settings.objectives, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.change_setting("objectives", dialog.values(), self.set_objectives)

    def set_objectives(self, objectives: dict[str, float | None]) -> None:
        self.settings.objectives = dict(objectives)
        if self.settings.objective not in objectives:
            self.settings.objective = next(iter(objectives), "")
        self._show_objectives()

    def current_objective(self):
        """The objective in use (``station.capture.scale.Objective``), None when none is chosen."""
        from station.capture.scale import objective_in_use

        return objective_in_use(self.settings)

    def choose_objective(self, name: str) -> None:
        """The operator turned the turret: the next captures are recorded with this objective."""
        if name in self.settings.objectives:
            self.settings.objective = name
        self._show_objectives()
        objective = self.current_objective()
        if objective is None:
            return
        shown = self.inspection if self.inspection is not None and self.inspection.has_result else None
        if shown is not None and shown.objective != objective:
            # the result on screen keeps the scale it was captured at: say so where the eye is
            taken = shown.objective.text() if shown.objective is not None else "no objective"
            self.statusBar().showMessage(f"Objective {objective.text()} from the next capture; the result on screen "
                                         f"was taken at {taken} and keeps its sizes", 8000)
        else:
            self.statusBar().showMessage(f"Objective {objective.text()}: recorded with each capture", 5000)

    def _show_objectives(self) -> None:
        from station.capture.scale import Objective

        objectives = [Objective(name, scale) for name, scale in self.settings.objectives.items()]
        self.panel.set_objectives(objectives, self.settings.objective)

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
            self.change_setting("foot_pedal_key", editor.keySequence().toString(), self.set_foot_pedal_key)

    def set_foot_pedal_key(self, key: str) -> None:
        self.settings.foot_pedal_key = key
        self._build_shortcuts()
        self.statusBar().showMessage(f"Capture & Classify: Space or {key or 'no pedal'}", 5000)

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

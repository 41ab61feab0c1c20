"""Who is at the station: the sign-in dialog and everything the main window does when an
operator signs in, switches or signs out — in one place, so the rules about who may decide a
pending result live next to the dialog that changes the operator."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from station.workflow import Operator, sign_in_draft, sign_out_draft

HAND_OVER = "Hand over"
SET_ASIDE = "Set aside (not released)"
CANCEL = "Cancel"


class SignInDialog(QDialog):
    """Operator ID (a badge scanner types it and presses Enter) and name; both required.

    The ID field opens with the last ID fully selected, so a scan replaces it instead of
    being appended to it."""

    def __init__(self, operator_id: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Operator sign-in")
        self.setObjectName("signInDialog")
        self.operator_id = QLineEdit(operator_id)
        self.operator_id.setObjectName("operatorId")
        self.operator_id.setPlaceholderText("scan badge or type ID")
        self.operator_name = QLineEdit()
        self.operator_name.setObjectName("operatorName")
        self.operator_name.setPlaceholderText("full name")
        self.operator_id.returnPressed.connect(self.operator_name.setFocus)
        form = QFormLayout()
        form.addRow("Operator ID", self.operator_id)
        form.addRow("Name", self.operator_name)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Sign in")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        for field in (self.operator_id, self.operator_name):
            field.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Every action at this station is recorded under your operator ID."))
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self._update_ok()
        self.operator_id.setFocus()
        self.operator_id.selectAll()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        self.operator_id.setFocus()
        self.operator_id.selectAll()

    def _update_ok(self) -> None:
        ok = bool(self.operator_id.text().strip() and self.operator_name.text().strip())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def values(self) -> tuple[str, str]:
        return self.operator_id.text().strip(), self.operator_name.text().strip()


class OperatorSessionMixin:
    """Sign-in, switch and sign-out for :class:`station.ui.main_window.MainWindow`.

    A pending result (no verdict yet, or accepted but not released) belongs to the operator
    who captured it: a switch hands it over or sets it aside, and either is recorded."""

    operator: Operator | None

    def request_sign_in(self) -> None:
        dialog = SignInDialog(self.settings.last_operator_id, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.sign_in(Operator(*dialog.values()))

    def sign_in(self, operator: Operator) -> bool:
        """Returns False when the operator cancelled the switch (nothing changed)."""
        previous = self.operator
        switching = previous is not None and previous.operator_id != operator.operator_id
        pending = self.inspection if (self.inspection is not None and self.inspection.pending) else None
        choice = None
        if switching and pending is not None:
            choice = self.ask_choice(
                "Pending result",
                f"{previous.name} ({previous.operator_id}) has a result pending for {pending.chip_label} "
                f"({pending.stage.value}). Hand it over to {operator.name} ({operator.operator_id}), "
                "or set it aside? Either is recorded.",
                [HAND_OVER, SET_ASIDE, CANCEL],
            )
            if choice in (None, CANCEL):
                return False
            if choice == SET_ASIDE:
                self.set_aside(f"operator switched to {operator.operator_id}", previous)
        if switching:
            self._append_audit(sign_out_draft(previous))
        self.operator = operator
        self.settings.last_operator_id = operator.operator_id
        self._append_audit(sign_in_draft(operator, previous, self._recipe.name if self._recipe is not None else None))
        if choice == HAND_OVER:
            self._append_audit(pending.handover_draft(previous, operator))
            pending.owner = operator
        self._tell_batch_window(operator)
        self.panel.chip_fields.chip.setFocus()  # the next thing to do is scan the chip
        self._refresh()
        return True

    def sign_out(self) -> None:
        if self.operator is None:
            return
        if self.inspection is not None and self.inspection.pending:
            choice = self.ask_choice("Pending result",
                                     f"The result for {self.inspection.chip_label} is still pending. "
                                     "Set it aside (recorded) and sign out?", [SET_ASIDE, CANCEL])
            if choice != SET_ASIDE:
                return
            self.set_aside("operator signed out", self.operator)
        self._append_audit(sign_out_draft(self.operator))
        self.operator = None
        self._tell_batch_window(None)
        self._refresh()

    def _tell_batch_window(self, operator: Operator | None) -> None:
        window = getattr(self, "_batch_window", None)
        if window is not None:
            window.set_operator(operator)

    def operator_text(self) -> str:
        return f"{self.operator.name} ({self.operator.operator_id})" if self.operator is not None else "Not signed in"

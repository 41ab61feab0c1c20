"""Who is at the station: everything the main window does when an operator signs in, switches
or signs out — in one place, so the rules about who may decide a pending result live together.
(The password sign-in dialog and the idle lock are in ``users_session``.)"""

from __future__ import annotations

from station.workflow import Operator, sign_in_draft, sign_out_draft

HAND_OVER = "Hand over"
SET_ASIDE = "Set aside (not released)"
CANCEL = "Cancel"


class OperatorSessionMixin:
    """Sign-in, switch and sign-out for :class:`station.ui.main_window.MainWindow`.

    A pending result (no verdict yet, or accepted but not released) belongs to the operator
    who captured it: a switch hands it over or sets it aside, and either is recorded."""

    operator: Operator | None

    def sign_in(self, operator: Operator) -> bool:
        """``operator`` takes the station (their password was checked: ``UsersSessionMixin``).
        Returns False when the operator cancelled the switch (nothing changed)."""
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
        if self.operator is not None:
            return f"{self.operator.name} ({self.operator.operator_id}, {self.operator.role.value})"
        return "Locked — sign in" if getattr(self, "session_locked", False) else "Not signed in"

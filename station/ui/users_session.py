"""Passwords and signatures in the main window: sign-in, the first admin, e-signatures at the
moment of an act, the idle lock, and approving models a recipe refused (an admin's signature).

The checks themselves are in the Qt-free core (``station.users``, ``station.workflow``); this
mixin only asks the person for their ID and password and passes the answer on."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialog, QMessageBox

from station.labels import setting_change_text
from station.ui.users_dialogs import FirstAdminDialog, PasswordSignInDialog, SignatureDialog
from station.users import Permission, PermissionDenied, Signature, allows
from station.workflow import Operator, session_lock_draft, settings_change_draft

START_WAIT_MS = 10_000  # how long the start-up sign-in waits for the audit log's status
APPROVE = "Approve (admin signs)…"
NOT_NOW = "Not now"


class UsersSessionMixin:
    """For :class:`station.ui.main_window.MainWindow` (needs ``users_client`` and ``idle_lock``)."""

    sign_in_hint = ""  # e.g. the demo accounts, shown in the sign-in dialog
    log_problem = ""  # why the audit log cannot store now, shown in the sign-in dialog
    _locked_operator: Operator | None = None
    _start_ask: Callable[[], None] | None = None
    audit_status_known = False  # the audit worker has said once whether the log can store

    # -- sign-in ----------------------------------------------------------------------
    def sign_in_at_start(self, ask: Callable[[], None], wait_ms: int = START_WAIT_MS) -> None:
        """``ask`` (the start-up sign-in, or the first admin) once the audit log's first status is in:
        a log that cannot store is said first, in its own box, and ``ask`` runs when that box is
        closed, so the sign-in never covers it. A status that does not come in ``wait_ms`` (a lab
        server slow to answer) does not hold the sign-in back."""
        self._start_ask = ask
        self._start_timer = QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.timeout.connect(self._run_start_ask)
        self._start_timer.start(wait_ms)
        if self.audit_status_known:  # it came before this was asked: go by the box it opened, if any
            told = [box for box in self.findChildren(QMessageBox) if box.isVisible()]
            self._start_sign_in_after(told[0] if told else None)

    def _start_sign_in_after(self, box: QMessageBox | None) -> None:
        """The audit log's status is in (``box``: the message about it, when one opened)."""
        if self._start_ask is None:
            return
        if box is None:
            QTimer.singleShot(0, self._run_start_ask)
        else:
            self._start_timer.stop()
            box.finished.connect(self._run_start_ask)

    def _run_start_ask(self) -> None:
        ask, self._start_ask = self._start_ask, None
        if getattr(self, "_start_timer", None) is not None:
            self._start_timer.stop()
        # a box closed as the station closes (a screenshot run, the window shut) asks nobody
        if ask is not None and self.isVisible() and not getattr(self, "_shut_down", False):
            ask()

    def request_sign_in(self, user_id: str | None = None) -> None:
        """The sign-in dialog (ID + password); the worker checks and records each try."""
        if user_id is None:
            user_id = self._locked_operator.operator_id if self._locked_operator else self.settings.last_operator_id
        dialog = PasswordSignInDialog(self.users_client, user_id, self.sign_in_hint, self, problem=self.log_problem)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.value is not None:
            self.sign_in_user(dialog.value)

    def sign_in_user(self, user) -> bool:
        """``user`` (a ``station.users.User`` whose password was just checked) takes the station.
        After an idle lock the switch rules apply to the person who left it."""
        locked = self._locked_operator
        if self.operator is None and locked is not None:
            self.operator = locked
        if not self.sign_in(Operator.from_user(user)):
            if locked is not None:
                self.operator = None  # the switch was cancelled: still locked
            return False
        self._locked_operator = None
        self.idle_lock.arm(True)
        if locked is not None:  # the "Locked … sign in to go on" line is no longer true
            self.statusBar().showMessage(f"Signed in: {user.name} ({user.user_id})", 5000)
        return True

    def request_first_admin(self) -> bool:
        """A station without users: its first admin, then the sign-in."""
        dialog = FirstAdminDialog(self.users_client, self, problem=self.log_problem)
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.value is None:
            return False
        self.statusBar().showMessage(f"Admin {dialog.value.user_id} created: sign in.", 8000)
        return True

    # -- idle lock --------------------------------------------------------------------
    def lock_session(self) -> None:
        """Nobody touched the station for ``idle_lock_minutes``: record it and ask for a sign-in."""
        if self.operator is None:
            return
        self._append_audit(session_lock_draft(self.operator, self.idle_lock.minutes))
        self._locked_operator, self.operator = self.operator, None
        self.idle_lock.arm(False)
        self._tell_batch_window(None)
        self._refresh()
        self.statusBar().showMessage(f"Locked after {self.idle_lock.minutes:g} idle minutes: sign in to go on.")
        self.request_sign_in(self._locked_operator.operator_id)

    @property
    def session_locked(self) -> bool:
        return self.operator is None and self._locked_operator is not None

    # -- signatures -------------------------------------------------------------------
    def ask_signature(self, permission: Permission, what: str) -> Signature | None:
        """The e-signature for ``permission`` (None when cancelled). The signer ID is filled in
        when the signed-in user may sign it themself. Tests replace this."""
        signer = self.operator.operator_id if self.operator and allows(self.operator.role, permission) else ""
        dialog = SignatureDialog(self.users_client, permission, what, signer, self)
        return dialog.value if dialog.exec() == QDialog.DialogCode.Accepted else None

    # -- settings ---------------------------------------------------------------------
    def change_setting(self, name: str, value, apply) -> bool:
        """A station setting changes once an admin signed it and the change is on the record."""
        previous = getattr(self.settings, name)
        if value == previous:
            return False
        if self.operator is None:
            self._flash_busy("Sign in to change a setting: the change is recorded under your ID.")
            return False
        signature = self.ask_signature(Permission.CHANGE_SETTINGS, setting_change_text(name, previous, value))
        if signature is None:
            return False
        try:
            draft = settings_change_draft(self.operator, name, value, previous, signature)
        except PermissionDenied as exc:
            self.notify("Not allowed", str(exc))
            return False
        self._append_audit(draft, lambda entry: apply(value))
        return True

    # -- models no admin approved -----------------------------------------------------
    def offer_model_approval(self, recipe_name: str, model_dirs: list, message: str) -> None:
        """A recipe was refused for unapproved models: an admin may approve them here."""
        choice = self.ask_choice("Models not approved", f"{message}\n\nAn admin may approve them now (their "
                                 "password, recorded on the audit log), then the recipe loads.", [APPROVE, NOT_NOW])
        if choice != APPROVE:
            return
        names = ", ".join(str(d) for d in model_dirs)
        signature = self.ask_signature(Permission.APPROVE_MODEL, f"Approve for use: {names}")
        if signature is None:
            return
        ticket = self.users_client.approve_models(model_dirs, signature)
        self._approvals[ticket] = recipe_name

    def _on_users_answer(self, ticket: int, ok: bool, value) -> None:
        recipe_name = self._approvals.pop(ticket, None)
        if recipe_name is None:
            return
        if not ok:
            self.notify("Models not approved", str(value))
            return
        self.statusBar().showMessage(f"{len(value)} model approval(s) recorded; loading “{recipe_name}”.", 8000)
        self.choose_recipe(recipe_name, signature_checked=True)

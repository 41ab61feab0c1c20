"""Sign-in with a password, electronic signatures, the first admin, and the idle lock.

The dialogs never check a password themselves: :class:`UsersClient` hands each try to
``workers.UsersWorker`` and the dialog waits for its answer without blocking the window
(argon2 takes about a second by design). A refused try shows why, clears the password and
keeps the dialog open; every try is on the audit log.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from station.ui.screen_fit import keep_on_screen
from station.ui.workers import UsersWorker, WorkerThread
from station.users.roles import MINIMUM_ROLE, SIGNATURE_MEANING, Permission

SIGNATURE_STATEMENT = (
    "Entering your password signs this act electronically. The record keeps your ID, name, role, "
    "the meaning of the signature and the time; it is the equivalent of your handwritten signature."
)


class UsersClient(QObject):
    """The GUI thread's handle on the users worker: each call returns a ticket, and
    ``answered(ticket, ok, value)`` comes back on the GUI thread; ``committed(entry)`` for each
    audit entry the worker wrote, before that answer."""

    answered = Signal(int, bool, object)
    committed = Signal(object)  # station.audit.AuditEntry
    _sign_in = Signal(int, str, str)
    _sign = Signal(int, str, str, str)
    _add_first_admin = Signal(int, str, str, str)
    _has_users = Signal(int)
    _approve = Signal(int, object, object)

    def __init__(self, audit=None, lockout_s: float | None = None, parent: QObject | None = None) -> None:
        """``audit``: the station's ``AuditSetup`` (the users live in its log)."""
        super().__init__(parent)
        self.worker = UsersWorker(audit, lockout_s)
        self.thread = WorkerThread(self.worker, "users")
        self._next_ticket = 0
        self.worker.answered.connect(self.answered)
        self.worker.committed.connect(self.committed)
        self._sign_in.connect(self.worker.sign_in)
        self._sign.connect(self.worker.sign)
        self._add_first_admin.connect(self.worker.add_first_admin)
        self._has_users.connect(self.worker.has_users)
        self._approve.connect(self.worker.approve_models)

    def _ticket(self) -> int:
        self._next_ticket += 1
        return self._next_ticket

    def sign_in(self, user_id: str, password: str) -> int:
        ticket = self._ticket()
        self._sign_in.emit(ticket, user_id, password)
        return ticket

    def sign(self, user_id: str, password: str, permission: Permission) -> int:
        ticket = self._ticket()
        self._sign.emit(ticket, user_id, password, permission.value)
        return ticket

    def add_first_admin(self, user_id: str, name: str, password: str) -> int:
        ticket = self._ticket()
        self._add_first_admin.emit(ticket, user_id, name, password)
        return ticket

    def has_users(self) -> int:
        ticket = self._ticket()
        self._has_users.emit(ticket)
        return ticket

    def approve_models(self, model_dirs: list, signature) -> int:
        ticket = self._ticket()
        self._approve.emit(ticket, list(model_dirs), signature)
        return ticket

    def stop(self) -> bool:
        return self.thread.stop()


class _CredentialsDialog(QDialog):
    """ID and password, an answer from the users worker, and a line saying why a try failed."""

    def __init__(self, client: UsersClient, title: str, parent: QWidget | None = None, problem: str = "") -> None:
        """``problem``: why the try cannot be recorded now (the audit log read-only, its server gone),
        said before the first try."""
        super().__init__(parent)
        self.setWindowTitle(title)
        self.client = client
        self.value = None  # what the worker answered when the dialog is accepted
        self._ticket: int | None = None
        self.user_id = QLineEdit()
        self.user_id.setObjectName("userId")
        self.user_id.setPlaceholderText("scan badge or type ID")
        self.password = QLineEdit()
        self.password.setObjectName("password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel()
        self.message.setObjectName("signInMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00020;")
        self.message.setText(problem)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        self.user_id.returnPressed.connect(self.password.setFocus)  # a badge scanner ends with Enter
        self.password.returnPressed.connect(self.submit)
        for field in (self.user_id, self.password):
            field.textChanged.connect(self._update_ok)
        client.answered.connect(self._on_answer)

    @property
    def ok_button(self):
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        # the ID field, all selected: a badge scan replaces it (and its Enter moves on to the password)
        super().showEvent(event)
        self.user_id.setFocus()
        self.user_id.selectAll()

    def _update_ok(self) -> None:
        self.ok_button.setEnabled(self._ticket is None and self._complete())

    def _complete(self) -> bool:
        return bool(self.user_id.text().strip() and self.password.text())

    def submit(self) -> None:
        if self._ticket is not None or not self._complete():
            return
        self.message.setText("Checking…")
        self.message.setStyleSheet("")
        self._set_busy(True)
        self._ticket = self._ask()

    def _ask(self) -> int:
        raise NotImplementedError

    def _set_busy(self, busy: bool) -> None:
        for field in (self.user_id, self.password):
            field.setEnabled(not busy)
        self._update_ok()

    def _on_answer(self, ticket: int, ok: bool, value) -> None:
        if ticket != self._ticket:
            return
        self._ticket = None
        if ok:
            self.value = value
            self.accept()
            return
        self.message.setStyleSheet("color: #b00020;")
        self.message.setText(str(value))
        self._grow_to_fit()
        self.password.clear()
        self._set_busy(False)
        self.password.setFocus()

    def _grow_to_fit(self) -> None:
        """A long refusal (the audit log read-only, a lock) wraps onto lines the dialog must make room
        for: left as it was sized, Qt squeezes the labels above it and cuts the message."""
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        needed = layout.totalHeightForWidth(self.width()) if layout.hasHeightForWidth() else -1
        needed = max(needed, layout.totalMinimumSize().height())
        if needed > self.height():
            self.resize(self.width(), needed)
            keep_on_screen(self)

    def done(self, result: int) -> None:  # noqa: N802 (Qt naming)
        try:
            self.client.answered.disconnect(self._on_answer)
        except (RuntimeError, TypeError):
            pass
        super().done(result)


class PasswordSignInDialog(_CredentialsDialog):
    """Sign-in: ID (a badge scan replaces whatever is selected) and password. ``value`` is the
    signed-in ``station.users.User``."""

    def __init__(self, client: UsersClient, user_id: str = "", hint: str = "", parent: QWidget | None = None,
                 problem: str = "") -> None:
        super().__init__(client, "Sign in", parent, problem)
        self.setObjectName("signInDialog")
        self.ok_button.setText("Sign in")
        self.user_id.setText(user_id)
        form = QFormLayout()
        form.addRow("ID", self.user_id)
        form.addRow("Password", self.password)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Every action at this station is recorded under your ID."))
        if hint:
            hint_label = QLabel(hint)
            hint_label.setObjectName("demoHint")
            hint_label.setWordWrap(True)
            layout.addWidget(hint_label)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self._update_ok()


    def _ask(self) -> int:
        return self.client.sign_in(self.user_id.text().strip(), self.password.text())


class SignatureDialog(_CredentialsDialog):
    """An electronic signature for ``permission`` at this moment: the signer's ID and password.
    ``value`` is the ``station.users.Signature``; a signer whose role lacks the permission is
    refused here (the workflow checks it again)."""

    def __init__(self, client: UsersClient, permission: Permission, what: str, signer_id: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(client, "Electronic signature", parent)
        self.setObjectName("signatureDialog")
        self.permission = permission
        meaning = SIGNATURE_MEANING[permission]
        needed = MINIMUM_ROLE[permission].value
        self.ok_button.setText("Sign")
        self.user_id.setText(signer_id)
        heading = QLabel(f"<b>{meaning.capitalize()}</b> — needs the signature of {'an' if needed[0] in 'aeiou' else 'a'} "
                         f"{needed}{' or an admin' if needed == 'expert' else ''}")
        heading.setObjectName("signatureMeaning")
        subject = QLabel(what)
        subject.setObjectName("signatureSubject")
        subject.setWordWrap(True)
        statement = QLabel(SIGNATURE_STATEMENT)
        statement.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Signer ID", self.user_id)
        form.addRow("Password", self.password)
        layout = QVBoxLayout(self)
        for widget in (heading, subject, statement):
            layout.addWidget(widget)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self._update_ok()


    def _ask(self) -> int:
        return self.client.sign(self.user_id.text().strip(), self.password.text(), self.permission)


class FirstAdminDialog(_CredentialsDialog):
    """A station without users: create its first admin (ID, name, password twice)."""

    def __init__(self, client: UsersClient, parent: QWidget | None = None, problem: str = "") -> None:
        super().__init__(client, "First admin of this station", parent, problem)
        self.setObjectName("firstAdminDialog")
        self.ok_button.setText("Create admin")
        self.name = QLineEdit()
        self.name.setObjectName("adminName")
        self.confirm = QLineEdit()
        self.confirm.setObjectName("passwordAgain")
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        for field in (self.name, self.confirm):
            field.textChanged.connect(self._update_ok)
        self.password.returnPressed.disconnect(self.submit)
        self.password.returnPressed.connect(self.confirm.setFocus)
        self.confirm.returnPressed.connect(self.submit)
        form = QFormLayout()
        form.addRow("Admin ID", self.user_id)
        form.addRow("Name", self.name)
        form.addRow("Password", self.password)
        form.addRow("Password again", self.confirm)
        intro = QLabel("This station has no users yet. Its first admin adds the technicians and experts "
                       "(station users add) and approves the models (station models approve).")
        intro.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self._update_ok()

    def _complete(self) -> bool:
        return bool(super()._complete() and self.name.text().strip() and self.confirm.text())

    def submit(self) -> None:
        if self._complete() and self.password.text() != self.confirm.text():
            self.message.setText("The two passwords differ.")
            self.confirm.clear()
            return
        super().submit()

    def _ask(self) -> int:
        return self.client.add_first_admin(self.user_id.text().strip(), self.name.text().strip(), self.password.text())


class IdleLock(QObject):
    """Emits ``idle`` once no key, click or wheel reached the application for ``minutes``
    (0: never). Armed only while someone is signed in."""

    idle = Signal()
    _INPUT = (QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.Wheel, QEvent.Type.TouchBegin)

    def __init__(self, minutes: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.minutes = float(minutes)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.idle)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def arm(self, active: bool) -> None:
        if active and self.minutes > 0:
            self.timer.start(int(self.minutes * 60_000))
        else:
            self.timer.stop()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        if self.timer.isActive() and event.type() in self._INPUT:
            self.timer.start()
        return False

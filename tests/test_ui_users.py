"""The sign-in, e-signature and first-admin dialogs, and the idle lock (pytest-qt, offscreen)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from helpers_users import ADMIN, EXPERT, TECH, make_directory, make_users  # noqa: E402

from station.audit import Action, AuditLog  # noqa: E402
from station.ui.users_dialogs import (  # noqa: E402
    FirstAdminDialog,
    IdleLock,
    PasswordSignInDialog,
    SignatureDialog,
    UsersClient,
)
from station.users import Permission, Role  # noqa: E402


@pytest.fixture
def client(qtbot):
    client = UsersClient()
    yield client
    client.stop()


@pytest.fixture
def users():
    directory = make_directory()
    make_users(directory)
    return directory


def _try(qtbot, client, dialog, user_id: str, password: str) -> None:
    dialog.user_id.setText(user_id)
    dialog.password.setText(password)
    with qtbot.waitSignal(client.answered, timeout=20_000):
        dialog.submit()


def test_sign_in_refuses_a_wrong_password_counts_it_and_stays_open(qtbot, client, users):
    dialog = PasswordSignInDialog(client)
    qtbot.addWidget(dialog)
    dialog.show()
    _try(qtbot, client, dialog, TECH.user_id, "not-the-password")
    assert dialog.isVisible() and dialog.value is None
    assert "ID or password is wrong" in dialog.message.text() and dialog.password.text() == ""
    assert users.failures(TECH.user_id) == 1
    with qtbot.waitSignal(dialog.accepted, timeout=20_000):
        _try(qtbot, client, dialog, *TECH.login)
    assert dialog.value.user_id == TECH.user_id and dialog.value.role is Role.TECHNICIAN


def test_a_locked_account_cannot_sign_in(qtbot, client, users):
    dialog = PasswordSignInDialog(client)
    qtbot.addWidget(dialog)
    dialog.show()
    for _ in range(5):
        _try(qtbot, client, dialog, EXPERT.user_id, "guess-guess")
    assert "locked" in dialog.message.text()
    _try(qtbot, client, dialog, *EXPERT.login)
    assert dialog.isVisible() and dialog.value is None and "locked" in dialog.message.text()
    assert len(AuditLog().query(action=Action.ACCOUNT_LOCKED)) == 1


def test_a_technician_cannot_sign_an_override(qtbot, client, users):
    dialog = SignatureDialog(client, Permission.OVERRIDE, "Chip C-1: plastic → ceramic", signer_id=TECH.user_id)
    qtbot.addWidget(dialog)
    dialog.show()
    assert "Override approved" in dialog.findChild(type(dialog.message), "signatureMeaning").text()
    _try(qtbot, client, dialog, *TECH.login)
    assert dialog.value is None and "technician" in dialog.message.text()
    with qtbot.waitSignal(dialog.accepted, timeout=20_000):
        _try(qtbot, client, dialog, *EXPERT.login)
    assert dialog.value.signer_id == EXPERT.user_id and dialog.value.meaning == "override approved"


def test_a_technician_cannot_sign_a_release_of_a_held_chip_or_a_model_approval(qtbot, client, users):
    for permission in (Permission.RELEASE_HELD, Permission.APPROVE_MODEL):
        dialog = SignatureDialog(client, permission, "chip C-1")
        qtbot.addWidget(dialog)
        dialog.show()
        _try(qtbot, client, dialog, *TECH.login)
        assert dialog.value is None and "technician" in dialog.message.text()


def test_the_first_admin_dialog_creates_the_stations_admin(qtbot, client):
    dialog = FirstAdminDialog(client)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.user_id.setText("A9")
    dialog.name.setText("Ann Nine")
    dialog.password.setText("first-admin-pw")
    dialog.confirm.setText("something-else")
    dialog.submit()
    assert "differ" in dialog.message.text()
    dialog.confirm.setText("first-admin-pw")
    with qtbot.waitSignal(dialog.accepted, timeout=20_000):
        dialog.submit()
    assert dialog.value.role is Role.ADMIN
    assert make_directory().get("A9").name == "Ann Nine"


def test_the_idle_lock_fires_after_the_set_time_and_only_when_armed(qtbot):
    lock = IdleLock(minutes=0.001)  # 60 ms
    with qtbot.assertNotEmitted(lock.idle, wait=200):
        pass
    lock.arm(True)
    with qtbot.waitSignal(lock.idle, timeout=5_000):
        pass
    never = IdleLock(minutes=0)
    never.arm(True)
    assert not never.timer.isActive()


def test_a_signed_settings_change_reads_as_words_in_the_dialog_and_in_the_record(qtbot, users):
    """Seen on the real window: "Set objectives from {} to {'20x': 0.5, '5x': None}." was what the
    admin signed, and the entry form said "5x: None" with an empty "Previous"."""
    from PySide6.QtWidgets import QLabel

    from station.config import Settings
    from station.ui.audit_entry import entry_sections
    from station.ui.main_window import MainWindow

    window = MainWindow(Settings(), "CPU (test)", recipes={})
    qtbot.addWidget(window)
    subjects: list[str] = []

    def sign_in_the_dialog(permission, what):
        dialog = SignatureDialog(window.users_client, permission, what, ADMIN.user_id, window)
        qtbot.addWidget(dialog)
        dialog.show()
        subjects.append(dialog.findChild(QLabel, "signatureSubject").text())
        dialog.password.setText(ADMIN.password)
        with qtbot.waitSignal(dialog.accepted, timeout=20_000):
            dialog.submit()
        return dialog.value

    window.ask_signature = sign_in_the_dialog
    try:
        with qtbot.waitSignal(window.audit_committed, timeout=10_000):
            window.sign_in(ADMIN.operator())
        with qtbot.waitSignal(window.audit_committed, timeout=20_000) as committed:
            window.change_setting("objectives", {"20x": 0.5, "5x": None}, window.set_objectives)
        assert subjects == ["Set the objectives and their image scales from none to 20x (0.5 µm/px), "
                            "5x (not calibrated)."]
        entry = committed.args[0]
        assert entry.action == Action.SETTINGS_CHANGE.value
        rows = {label: text for _, section in entry_sections(entry) for label, text, _ in section}
        assert rows["Value"] == "20x (0.5 µm/px), 5x (not calibrated)" and rows["Previous"] == "none"
        local = entry.local_time.strftime("%Y-%m-%d %H:%M:%S")
        assert rows["Signed by"] == f"{ADMIN.name} ({ADMIN.user_id}, admin) — settings change approved, {local}"
        assert not any(mark in text for text in rows.values() for mark in ("{", "'", "None"))
    finally:
        window.shutdown()


def test_the_status_bar_names_the_record_a_failed_sign_in_wrote(qtbot, users):
    """The users worker writes SIGN_IN_FAILED and ACCOUNT_LOCKED on its own: the window's "Audit: #N"
    follows those records too, not only the ones its inspection flow writes."""
    from station.config import Settings
    from station.ui.main_window import MainWindow

    window = MainWindow(Settings(), "CPU (test)", recipes={})
    qtbot.addWidget(window)
    try:
        dialog = PasswordSignInDialog(window.users_client, parent=window)
        qtbot.addWidget(dialog)
        dialog.show()
        with qtbot.waitSignal(window.users_client.committed, timeout=20_000) as committed:
            _try(qtbot, window.users_client, dialog, TECH.user_id, "not-the-password")
        failed = AuditLog().query(action=Action.SIGN_IN_FAILED, newest_first=True, limit=1)[0]
        assert committed.args[0].id == failed.id
        assert window.audit_label.text() == f"Audit: #{failed.id} Sign-in failed"
        assert f"#{failed.id}" in window.audit_label.toolTip()
        for _ in range(4):
            _try(qtbot, window.users_client, dialog, TECH.user_id, "not-the-password")
        locked = AuditLog().query(action=Action.ACCOUNT_LOCKED, newest_first=True, limit=1)[0]
        assert window.audit_label.text() == f"Audit: #{locked.id} Account locked"
    finally:
        window.shutdown()

"""The window names an unreachable lab log server at once, and a record that cannot be stored
keeps the chip from release."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402
from helpers_window import capture_demo_chip  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402

from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return make_tiny_recipe(tmp_path_factory.mktemp("models"))


def test_unreachable_lab_server_is_named_at_once(qtbot, recipe, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once it closes
    monkeypatch.setenv("STATION_AUDIT_URL", f"postgresql://bench:secret@127.0.0.1:{port}/lab")
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.notified, timeout=20_000) as shown:
            window.show()
        title, message = shown.args
        assert title == "Lab audit log unreachable" and "cannot be reached" in message and "secret" not in message
        assert "UNREACHABLE" in window.audit_label.text() and "release blocked" in window.audit_label.text()
        assert window._audit_status_timer.isActive()  # tried again until it is back
        window.resize(1366, 716)  # on the bench monitor the warning is read whole, in bold, not elided
        label = window.audit_label
        qtbot.waitUntil(lambda: window.width() == 1366 and label.width() >= QLabel.sizeHint(label).width(), timeout=2_000)
    finally:
        window.shutdown()


def test_a_release_the_lab_server_cannot_store_stays_blocked_and_goes_through_once_it_is_back(qtbot, recipe,
                                                                                             monkeypatch):
    from helpers_users import expert_signs

    from station.audit import AuditLog, AuditUnavailableError
    from station.workflow import Operator

    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window._recipe is not None, timeout=30_000)
    window.ask_signature = expert_signs
    try:
        capture_demo_chip(qtbot, window, Operator("op-7", "Ada Tester"))
        with qtbot.waitSignal(window.audit_committed, timeout=10_000):
            window.override_with(window.inspection.result.material.classes[0], "checked under the stereo microscope")
        qtbot.waitUntil(window.panel.release_button.isEnabled, timeout=5_000)

        append = AuditLog.append

        def server_gone(self, draft):
            raise AuditUnavailableError("the lab's log server dbhost cannot be reached (connection refused)")

        monkeypatch.setattr(AuditLog, "append", server_gone)
        with qtbot.waitSignal(window.audit_failed, timeout=10_000):
            window.panel.release_button.click()
        assert "UNREACHABLE" in window.audit_label.text() and "release blocked" in window.audit_label.text()
        assert window._audit_status_timer.isActive()
        assert window.inspection.release_entry_id is None and window.inspection.awaiting_release
        assert "NOT recorded" in window.panel.record_label.text()

        monkeypatch.setattr(AuditLog, "append", append)  # the server is back: the same release, given again
        with qtbot.waitSignal(window.audit_committed, timeout=10_000) as release:
            window.panel.release_button.click()
        assert release.args[0].action == "RELEASE" and window.inspection.release_entry_id == release.args[0].id
        qtbot.waitUntil(lambda: not window._audit_status_timer.isActive(), timeout=10_000)
    finally:
        window.shutdown()
    with AuditLog(readonly=True) as audit_log:
        actions = [e.action for e in audit_log.query()]
        assert audit_log.verify().ok and actions == ["SIGN_IN", "OVERRIDE", "RELEASE", "SIGN_OUT"]  # one release

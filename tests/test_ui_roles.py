"""Role tests in the real window: a technician cannot override, release a held chip or approve
a model; an expert's (or admin's) signature, given in the real signature dialog, can. The
signature dialog, the users worker and the policy in the workflow are all the real ones."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402
from helpers_users import ADMIN, EXPERT, TECH, make_directory, make_users, require_approvals  # noqa: E402
from helpers_window import awaiting_result  # noqa: E402

from station.audit import Action, AuditLog  # noqa: E402
from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402
from station.ui.users_dialogs import SignatureDialog  # noqa: E402
from station.ui.users_session import APPROVE  # noqa: E402


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    # never uncertain: a confident call that only an expert may override
    return dataclasses.replace(make_tiny_recipe(tmp_path_factory.mktemp("models")), uncertain_below=0.0)


@pytest.fixture
def users():
    directory = make_directory()
    make_users(directory)
    return directory


def _signer(qtbot, window, account, refusals: list):
    """``ask_signature`` as a person at the bench: the real dialog, filled with ``account``."""

    def ask(permission, what):
        dialog = SignatureDialog(window.users_client, permission, what)
        qtbot.addWidget(dialog)
        dialog.show()
        dialog.user_id.setText(account.user_id)
        dialog.password.setText(account.password)
        with qtbot.waitSignal(window.users_client.answered, timeout=20_000):
            dialog.submit()
        if dialog.value is None:
            refusals.append(dialog.message.text())
            dialog.reject()
        return dialog.value

    return ask


def _open(qtbot, recipe, users, account=TECH) -> MainWindow:
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window._recipe is not None, timeout=30_000)
    window.sign_in_user(users.sign_in(*account.login))
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    return window


def _capture(qtbot, window, chip="LM358"):
    window.panel.chip_fields.chip.setText(chip)
    with awaiting_result(qtbot, window):
        window.capture_and_classify()
    assert window.inspection.result is not None, window.inspection.error


def _committed(qtbot, window, action, call, *args):
    with qtbot.waitSignal(window.audit_committed, timeout=10_000,
                          check_params_cb=lambda entry: entry.action == action) as blocker:
        call(*args)
    return blocker.args[0]


def test_a_technician_cannot_override_an_expert_signs_it(qtbot, recipe, users):
    window = _open(qtbot, recipe, users)
    _capture(qtbot, window)
    other = next(m for m in recipe.decap_methods if m != window.inspection.result.material.material)
    refusals: list[str] = []
    window.ask_signature = _signer(qtbot, window, TECH, refusals)
    window.override_with(other, "lid looks ceramic")
    assert refusals and "technician" in refusals[0] and "override" in refusals[0]
    assert window.inspection.verdict_entry_id is None and not AuditLog().query(action=Action.OVERRIDE)
    window.ask_signature = _signer(qtbot, window, EXPERT, refusals)
    entry = _committed(qtbot, window, "OVERRIDE", window.override_with, other, "lid looks ceramic")
    assert entry.operator_id == TECH.user_id and entry.material == other
    assert entry.details["signature"]["signer_id"] == EXPERT.user_id
    assert entry.details["signature"]["role"] == "expert"
    assert entry.details["signature"]["meaning"] == "override approved"
    window.shutdown()


def test_a_technician_cannot_release_a_held_chip_an_expert_can(qtbot, recipe, users):
    window = _open(qtbot, recipe, users)
    _capture(qtbot, window)
    hold = _committed(qtbot, window, "REJECT_HOLD", window.hold_with, "corner looks chipped")
    assert window.panel.release_button.isEnabled()
    refusals: list[str] = []
    window.ask_signature = _signer(qtbot, window, TECH, refusals)
    window.release_to_decapping()
    assert refusals and "technician" in refusals[0]
    assert window.inspection.release_entry_id is None and not AuditLog().query(action=Action.RELEASE)
    window.ask_signature = _signer(qtbot, window, EXPERT, refusals)
    release = _committed(qtbot, window, "RELEASE", window.release_to_decapping)
    assert release.refers_to == hold.id and release.details["signature"]["meaning"] == "release approved"
    assert release.decap_method == recipe.decap_methods[hold.material]
    window.shutdown()


def test_a_technician_cannot_approve_a_model_an_admin_can(qtbot, monkeypatch, tmp_path, users):
    require_approvals(monkeypatch)
    unapproved = make_tiny_recipe(tmp_path / "models", "Unapproved")
    window = MainWindow(Settings(recipe=unapproved.name), "CPU (test)", recipes={unapproved.name: unapproved})
    qtbot.addWidget(window)
    refusals: list[str] = []
    window.ask_choice = lambda title, text, choices: APPROVE
    window.ask_signature = _signer(qtbot, window, TECH, refusals)
    with qtbot.waitSignal(window.inference.recipe_unapproved, timeout=30_000):
        window.show()
    qtbot.waitUntil(lambda: bool(refusals), timeout=30_000)
    assert "technician" in refusals[0] and window._recipe is None
    assert not AuditLog().query(action=Action.MODEL_APPROVE)
    window.ask_signature = _signer(qtbot, window, ADMIN, refusals)
    with qtbot.waitSignal(window.recipe_ready, timeout=60_000):
        window.choose_recipe(unapproved.name)
    approvals = AuditLog().query(action=Action.MODEL_APPROVE)
    assert {e.details["model"] for e in approvals} == {"tiny-material", "tiny-defects"}
    assert all(e.details["signature"]["signer_id"] == ADMIN.user_id for e in approvals)
    assert AuditLog().query(newest_first=True, limit=1)[0].id == approvals[-1].id
    assert window.audit_label.text() == f"Audit: #{approvals[-1].id} Model approved"  # the worker's record
    window.shutdown()


def test_an_idle_session_locks_and_is_recorded(qtbot, recipe, users, monkeypatch):
    window = _open(qtbot, recipe, users)
    asked: list[str | None] = []
    monkeypatch.setattr(window, "request_sign_in", lambda user_id=None: asked.append(user_id))
    window.idle_lock.minutes = 0.001
    window.idle_lock.arm(True)
    with qtbot.waitSignal(window.audit_committed, timeout=10_000,
                          check_params_cb=lambda entry: entry.action == "SESSION_LOCK") as locked:
        pass
    assert locked.args[0].operator_id == TECH.user_id
    assert window.operator is None and window.session_locked and asked == [TECH.user_id]
    assert window.panel.operator_label.text() == "Locked — sign in"
    assert not window.panel.capture_button.isEnabled()
    assert window.statusBar().currentMessage().startswith("Locked after")
    window.sign_in_user(users.sign_in(*TECH.login))  # the same person comes back
    assert window.operator.operator_id == TECH.user_id and not window.session_locked
    assert "Locked" not in window.statusBar().currentMessage()  # the screen no longer says it is locked
    window.shutdown()


def test_only_an_admin_changes_a_station_setting(qtbot, recipe, users):
    window = _open(qtbot, recipe, users)
    refusals: list[str] = []
    window.ask_signature = _signer(qtbot, window, EXPERT, refusals)
    assert not window.change_setting("objectives", {"20x": 2.5}, window.set_objectives)
    assert "expert" in refusals[0] and window.settings.um_per_px is None
    window.ask_signature = _signer(qtbot, window, ADMIN, refusals)
    with qtbot.waitSignal(window.audit_committed, timeout=10_000,
                          check_params_cb=lambda entry: entry.action == "SETTINGS_CHANGE") as changed:
        assert window.change_setting("objectives", {"20x": 2.5}, window.set_objectives)
    assert window.settings.um_per_px == 2.5 and window.settings.objective == "20x"
    details = changed.args[0].details
    assert details["setting"] == "objectives" and details["value"] == {"20x": 2.5} and details["previous"] == {}
    assert details["signature"]["signer_id"] == ADMIN.user_id
    assert details["signature"]["meaning"] == "settings change approved"
    window.shutdown()

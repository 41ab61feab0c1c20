"""One part, one ID, one verdict: the wrong moves a tired technician makes, in the real window.
Each scenario checks what the screen says against what the audit log recorded."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402
from helpers_users import expert_signs  # noqa: E402
from helpers_window import awaiting_result  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from station.audit import AuditLog  # noqa: E402
from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402
from station.workflow import Operator  # noqa: E402

ADA = Operator("op-7", "Ada Tester")
BEN = Operator("op-9", "Ben Night")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    # never uncertain: these scenarios accept (the tiny random model is unsure of everything)
    return dataclasses.replace(make_tiny_recipe(tmp_path_factory.mktemp("models")), uncertain_below=0.0)


def _open(qtbot, recipe) -> MainWindow:
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window._recipe is not None, timeout=30_000)
    window.sign_in(ADA)
    window.ask_signature = expert_signs  # an expert signs each override
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    return window


@pytest.fixture
def window(qtbot, recipe):
    window = _open(qtbot, recipe)
    yield window
    window.shutdown()


def _capture(qtbot, window, chip="LM358"):
    window.panel.chip_fields.chip.setText(chip)
    with awaiting_result(qtbot, window):
        window.capture_and_classify()
    assert window.inspection.result is not None, window.inspection.error


def _commit(qtbot, window, action, call, *args):
    with qtbot.waitSignal(window.audit_committed, timeout=10_000,
                          check_params_cb=lambda entry: entry.action == action) as blocker:
        call(*args)
    return blocker.args[0]


def _entries():
    with AuditLog(readonly=True) as audit_log:
        assert audit_log.verify().ok
        return audit_log.query()


def test_override_shows_the_overridden_method_and_release_names_it_then_clears(qtbot, window):
    _capture(qtbot, window)
    call = window.inspection.result.material
    other = next(m for m in call.classes if m != call.material)
    method = window.inspection.recipe.decap_methods[other]
    _commit(qtbot, window, "OVERRIDE", window.override_with, other, "gold lid under the label")
    banner = window.panel.results.banner
    assert banner.text().startswith(f"OVERRIDDEN → {other.capitalize()} — {method}")
    assert banner.property("tone") == "overridden"
    assert window.panel.results.material_label.text() == other.capitalize()
    assert window.panel.results.decap_label.text() == method
    assert window.panel.release_button.text() == f"Release to {method} decapsulation"
    assert window.panel.chip_fields.chip.isReadOnly()  # the IDs are the record's until release

    _commit(qtbot, window, "RELEASE", window.panel.release_button.click)
    assert window.panel.results.material_label.text() == "—"
    assert window.panel.results.defects.rowCount() == 0 and not window.panel.results.chart.isVisible()
    assert banner.text().startswith("Released: LM358")
    assert window.panel.chip_fields.values() == {"chip_id": "", "lot_id": "", "serial": ""}
    assert not window.panel.chip_fields.chip.isReadOnly()
    assert not window.panel.release_button.isEnabled() and not window.captured_view.has_image()


def test_hold_needs_a_reason_shows_red_and_clears_the_ids(qtbot, window, monkeypatch):
    _capture(qtbot, window)
    monkeypatch.setattr(window, "ask_reason", lambda *a: None)  # the operator cancels the reason
    window.hold_result()
    window.hold_with("   ")
    assert window.inspection.verdict_entry_id is None and not window._pending_audit
    assert "reason" in window.panel.busy_label.text()
    monkeypatch.setattr(window, "ask_reason", lambda *a: "lid cracked at the corner")
    entry = _commit(qtbot, window, "REJECT_HOLD", window.hold_result)
    assert entry.reason == "lid cracked at the corner" and entry.chip_id == "LM358"
    banner = window.panel.results.banner
    assert banner.text().startswith("HOLD — do not decap") and "lid cracked" in banner.text()
    assert banner.property("tone") == "hold" and "#b3261e" in banner.styleSheet()
    assert window.panel.chip_fields.chip.text() == ""
    assert window.panel.release_button.text() == "Release held chip — expert signs…"


def test_capture_and_accept_need_a_chip_id(qtbot, window):
    window.panel.chip_fields.chip.setText("")
    window.capture_and_classify()
    assert window.inspection is None and "chip ID" in window.panel.busy_label.text()
    assert "chip ID" in window.panel.capture_button.toolTip()
    _capture(qtbot, window, "LM358")
    qtbot.keyClicks(window.panel.chip_fields.chip, "X")  # new IDs mean a new part: the old result goes
    assert window.inspection is None and window.panel.results.material_label.text() == "—"
    assert not window.panel.accept_button.isEnabled() and not window.panel.release_button.isEnabled()
    assert not [e for e in _entries() if e.action in ("VERDICT", "RELEASE")]


def test_a_recipe_may_allow_no_id_with_a_recorded_reason(qtbot, recipe, monkeypatch):
    window = _open(qtbot, dataclasses.replace(recipe, name="bare dies", allow_missing_chip_id=True))
    monkeypatch.setattr(window, "ask_reason", lambda *a: None)
    window.capture_and_classify()
    assert window.inspection is None  # no reason, no capture
    monkeypatch.setattr(window, "ask_reason", lambda *a: "bare die, no marking")
    with awaiting_result(qtbot, window):
        window.capture_and_classify()
    monkeypatch.setattr(window, "ask_reason", lambda *a: "checked")
    entry = _commit(qtbot, window, "REJECT_HOLD", window.hold_result)
    assert entry.chip_id is None and entry.details["no_chip_id_reason"] == "bare die, no marking"
    window.shutdown()


def test_a_new_capture_over_an_unreleased_chip_asks_and_records_the_answer(qtbot, window, monkeypatch):
    _capture(qtbot, window, "CHIP-A")
    _commit(qtbot, window, "VERDICT", window.accept_result)
    asked = []
    monkeypatch.setattr(window, "ask_choice", lambda title, text, choices: asked.append(text) or "Cancel")
    qtbot.keyClick(window.panel.chip_fields.chip, Qt.Key.Key_F12)
    assert "CHIP-A" in asked[0] and window.inspection.stage.value == "accepted"  # cancelled: nothing changed
    monkeypatch.setattr(window, "ask_choice", lambda *a: "Set aside (not released)")
    discard = _commit(qtbot, window, "DISCARD", window.capture_and_classify)
    assert discard.chip_id == "CHIP-A" and discard.reason == "new capture before release"
    assert discard.refers_to == window.inspection.verdict_entry_id
    assert window.panel.results.banner.text().startswith("Set aside: CHIP-A")
    assert window.panel.chip_fields.chip.text() == ""

    _capture(qtbot, window, "CHIP-B")
    _commit(qtbot, window, "VERDICT", window.accept_result)
    monkeypatch.setattr(window, "ask_choice", lambda *a: "Release now")
    release = _commit(qtbot, window, "RELEASE", window.capture_and_classify)
    assert release.chip_id == "CHIP-B"
    chips = [(e.action, e.chip_id) for e in _entries() if e.chip_id]
    assert chips == [("VERDICT", "CHIP-A"), ("DISCARD", "CHIP-A"), ("VERDICT", "CHIP-B"), ("RELEASE", "CHIP-B")]


def test_switching_operator_hands_over_or_sets_aside_on_the_record(qtbot, window, monkeypatch):
    _capture(qtbot, window, "CHIP-A")
    monkeypatch.setattr(window, "ask_choice", lambda *a: "Cancel")
    assert not window.sign_in(BEN) and window.operator == ADA
    monkeypatch.setattr(window, "ask_choice", lambda *a: "Hand over")
    handover = _commit(qtbot, window, "HANDOVER", window.sign_in, BEN)
    assert handover.operator_id == BEN.operator_id and handover.details["from_operator"] == ADA.operator_id
    assert window.inspection.owner == BEN
    accepted = _commit(qtbot, window, "VERDICT", window.accept_result)
    assert accepted.operator_id == BEN.operator_id

    monkeypatch.setattr(window, "ask_choice", lambda *a: "Set aside (not released)")
    with qtbot.waitSignal(window.audit_committed, timeout=10_000,
                          check_params_cb=lambda entry: entry.action == "SIGN_IN"):
        discard = _commit(qtbot, window, "DISCARD", window.sign_in, ADA)
    assert discard.operator_id == BEN.operator_id and discard.chip_id == "CHIP-A"
    assert window.operator == ADA and not window.inspection.pending
    actions = [e.action for e in _entries()][-3:]
    assert actions == ["DISCARD", "SIGN_OUT", "SIGN_IN"]


def test_keys_capture_from_anywhere_except_while_typing(qtbot, window):
    chip = window.panel.chip_fields.chip
    chip.setText("LM358")
    window.activateWindow()
    chip.setFocus()
    qtbot.keyClick(chip, Qt.Key.Key_Space)
    assert window.inspection is None and chip.text() == "LM358 "  # typed, not captured
    chip.setText("LM358")
    with awaiting_result(qtbot, window):
        qtbot.keyClick(chip, Qt.Key.Key_F12)  # the pedal key works in a text field
    first = window.inspection.request_id
    window.captured_view.setFocus()
    with awaiting_result(qtbot, window):
        qtbot.keyClick(window.captured_view, Qt.Key.Key_Space)
    assert window.inspection.request_id == first + 1
    window.panel.chip_fields.serial.setFocus()
    with awaiting_result(qtbot, window):
        qtbot.keyClick(window.panel.chip_fields.serial, Qt.Key.Key_Return)  # a scanner ends with Enter
    assert window.inspection.request_id == first + 2


def test_a_stopped_source_is_marked_on_the_image_and_capture_waits_for_a_fresh_frame(qtbot, window):
    window.panel.chip_fields.chip.setText("LM358")
    with qtbot.waitSignal(window.source_stopped, timeout=10_000):
        window.stop_source()
    assert window.live_view.notice().startswith("SOURCE STOPPED")
    assert not window.panel.capture_button.isEnabled()
    window.capture_and_classify()
    assert window.inspection is None and "stopped" in window.panel.busy_label.text()
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    assert window.live_view.notice() == "" and window.panel.capture_button.isEnabled()


def test_the_sign_in_dialog_lets_a_badge_scan_replace_the_last_id(qtbot):
    from station.ui.users_dialogs import PasswordSignInDialog, UsersClient

    client = UsersClient()
    dialog = PasswordSignInDialog(client, "T0421")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.focusWidget() is dialog.user_id and dialog.user_id.selectedText() == "T0421"
    qtbot.keyClicks(dialog.user_id, "T0777")
    assert dialog.user_id.text() == "T0777"
    qtbot.keyClick(dialog.user_id, Qt.Key.Key_Return)  # the scanner's Enter moves on to the password
    assert dialog.focusWidget() is dialog.password
    client.stop()


def test_a_stalled_camera_says_so_whole_on_the_narrow_live_view_and_shows_no_stale_rate(qtbot, window):
    window.capture.set_paused(True)  # the camera stops sending (a pulled cable) while the source still runs
    qtbot.waitUntil(lambda: window.live_view.notice().startswith("NO NEW FRAMES"), timeout=10_000)
    assert window.fps_label.text() == "— fps" and not window.panel.capture_button.isEnabled()
    window._on_source_problem("Basler acA2440 (40012345) lost (no frame for 3 s): reconnecting for 12 s, attempt 5 "
                              "(last try: No GenICam camera 'Basler-40012345' found)")
    first, second = window.live_view.notice().splitlines()
    assert first.startswith("NO NEW FRAMES — source stalled — last frame ")
    assert second == "Basler acA2440 (40012345) lost (no frame for 3 s): reconnecting for 12 s, attempt 5"
    window.live_view.resize(330, 400)  # the live pane on a 1366 x 768 screen
    lines = window.live_view.fontMetrics().height() * 3
    assert window.live_view.notice_strip().height() >= lines  # wrapped onto lines of its own, not cut at both ends
    window.capture.set_paused(False)
    qtbot.waitUntil(lambda: window.live_view.notice() == "", timeout=10_000)


def test_a_source_that_did_not_open_is_not_marked_in_use(qtbot, window, tmp_path):
    picker = window.source_bar.picker
    with qtbot.waitSignal(window.source_stopped, timeout=10_000):
        window.stop_source()
    missing = str(tmp_path / "no such folder")
    window.source_bar.select_spec(missing)  # typed in "Type a source…"
    with qtbot.waitSignal(window.notified, timeout=10_000, check_params_cb=lambda title, _: title == "Source error"):
        window.start_source(missing)
    qtbot.waitUntil(lambda: window.source_bar.start_button.isEnabled(), timeout=10_000)
    assert window.source_label.text() == "Source: none"
    assert not any(picker.itemText(row).endswith("in use") for row in range(picker.count()))

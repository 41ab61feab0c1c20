"""The operator workflow driven through the real window: sign in -> demo source ->
Capture & Classify -> result -> override with reason -> release -> audit record verified."""

from __future__ import annotations


import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402
from helpers_users import expert_signs, nobody_signs  # noqa: E402
from helpers_window import awaiting_result  # noqa: E402

from station.audit import AuditLog  # noqa: E402
from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402
from station.workflow import Operator  # noqa: E402


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return make_tiny_recipe(tmp_path_factory.mktemp("models"))


def _open_window(qtbot, recipe) -> MainWindow:
    window = MainWindow(Settings(recipe=recipe.name), "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window._recipe is not None, timeout=30_000)
    window.ask_signature = expert_signs  # an expert signs each override (tests of refusals: test_ui_roles)
    return window


@pytest.fixture
def window(qtbot, recipe):
    window = _open_window(qtbot, recipe)
    yield window
    window.shutdown()


def _start_demo_and_sign_in(qtbot, window, chip="LM358"):
    window.sign_in(Operator("op-7", "Ada Tester"))
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    window.panel.chip_fields.chip.setText(chip)


def _capture(qtbot, window):
    with awaiting_result(qtbot, window):
        window.capture_and_classify()
    assert window.inspection.result is not None, window.inspection.error


def test_capture_override_release_writes_verified_audit_records(qtbot, window):
    _start_demo_and_sign_in(qtbot, window)
    window.panel.chip_fields.chip.setText("LM358")
    window.panel.chip_fields.lot.setText("L2431")
    window.panel.chip_fields.serial.setText("SN-001")
    assert not window.panel.release_button.isEnabled()

    _capture(qtbot, window)
    result = window.inspection.result
    assert result.material is not None and len(result.material.probabilities) == 3
    assert window.panel.results.material_label.text().lower() == result.material.material
    assert window.panel.override_button.isEnabled()
    assert not window.panel.release_button.isEnabled()

    other = next(m for m in result.material.classes if m != result.material.material)
    with qtbot.waitSignal(window.audit_committed, timeout=10_000) as verdict:
        window.override_with(other, "gold seal ring visible at 20x")
    assert verdict.args[0].action == "OVERRIDE"
    qtbot.waitUntil(window.panel.release_button.isEnabled, timeout=5_000)
    assert window.panel.release_button.text() == f"Release to {window.inspection.decap_method} decapsulation"
    assert f"#{verdict.args[0].id}" in window.panel.record_label.text()

    with qtbot.waitSignal(window.audit_committed, timeout=10_000) as release:
        window.panel.release_button.click()
    assert release.args[0].action == "RELEASE"
    assert f"#{release.args[0].id}" in window.panel.record_label.text()
    assert not window.panel.release_button.isEnabled()

    with AuditLog(readonly=True) as audit_log:
        entries = audit_log.query()
        assert audit_log.verify().ok
        override_image = audit_log.image_file(next(e for e in entries if e.action == "OVERRIDE").image_path)
    actions = [e.action for e in entries]
    assert actions[0] == "SIGN_IN" and "OVERRIDE" in actions and actions[-1] == "RELEASE"
    override = next(e for e in entries if e.action == "OVERRIDE")
    assert override.material == other and override.reason == "gold seal ring visible at 20x"
    assert override.chip_id == "LM358" and override.lot_id == "L2431" and override.serial_id == "SN-001"
    assert override.predicted_material == result.material.material
    assert override.image_sha256 and override_image.is_file()
    assert override.decap_method == window.inspection.recipe.decap_methods[other]
    assert entries[-1].refers_to == override.id


def test_second_press_while_busy_is_ignored_visibly(qtbot, window):
    _start_demo_and_sign_in(qtbot, window)
    with awaiting_result(qtbot, window):
        window.capture_and_classify()
        first = window.inspection.request_id
        window.capture_and_classify()  # still classifying
        assert "ignored" in window.panel.busy_label.text()
        assert window.inspection.request_id == first


def test_release_stays_disabled_when_the_audit_write_fails(qtbot, window, monkeypatch):
    from station.audit import AuditWriteError

    _start_demo_and_sign_in(qtbot, window)
    _capture(qtbot, window)

    def disk_full(self, action, **fields):
        raise AuditWriteError("database or disk is full: /station/data/audit.sqlite3")

    monkeypatch.setattr("station.audit.log.AuditLog.append", disk_full)
    material = window.inspection.result.material.classes[0]
    with qtbot.waitSignal(window.audit_failed, timeout=10_000):
        window.override_with(material, "checked under the stereo microscope")
    assert not window.panel.release_button.isEnabled()
    assert "NOT recorded" in window.panel.record_label.text()
    assert window.inspection.verdict_entry_id is None
    assert window.panel.override_button.isEnabled()  # the operator can try again once fixed


def test_uncertain_result_cannot_be_accepted(qtbot, recipe):
    import dataclasses

    window = _open_window(qtbot, dataclasses.replace(recipe, name="strict", uncertain_below=0.999))
    _start_demo_and_sign_in(qtbot, window)
    _capture(qtbot, window)
    assert window.inspection.uncertain and not window.inspection.can_accept
    assert window.panel.accept_button.text() == "Accept — expert signs…"  # only with an expert's signature
    window.ask_signature = nobody_signs
    window.accept_result()
    assert window.inspection.verdict_entry_id is None and not window._pending_audit
    assert window.panel.override_button.isEnabled() and window.panel.hold_button.isEnabled()
    assert window.panel.results.banner.text().startswith("UNCERTAIN")
    with qtbot.waitSignal(window.audit_committed, timeout=10_000) as held:
        window.hold_with("lid looks cracked")
    assert held.args[0].action == "REJECT_HOLD"
    assert window.panel.release_button.text() == "Release held chip — expert signs…"
    window.release_to_decapping()  # nobody signs: nothing released
    assert window.inspection.release_entry_id is None and not window._pending_audit
    window.shutdown()


def test_a_frame_failing_the_image_check_shows_why_and_cannot_be_accepted(qtbot, recipe):
    import dataclasses

    from station.inference.image_check import ImageCheck

    # no frame has 255 grey levels of contrast: every capture fails the check
    window = _open_window(qtbot, dataclasses.replace(recipe, name="picky", image_check=ImageCheck(min_contrast=255)))
    _start_demo_and_sign_in(qtbot, window)
    _capture(qtbot, window)
    assert window.inspection.result.image_problems and window.inspection.uncertain
    assert not window.inspection.can_accept and window.panel.accept_button.text() == "Accept — expert signs…"
    assert window.panel.override_button.isEnabled()
    banner = window.panel.results.banner
    assert banner.isVisible() and banner.text().startswith("IMAGE CHECK FAILED") and "nearly uniform" in banner.text()
    window.shutdown()


def test_foot_pedal_key_triggers_capture_and_is_configurable(qtbot, window):
    from PySide6.QtCore import Qt

    _start_demo_and_sign_in(qtbot, window)
    window.set_foot_pedal_key("F9")
    assert window.settings.foot_pedal_key == "F9"
    window.activateWindow()
    window.setFocus()
    with awaiting_result(qtbot, window):
        qtbot.keyClick(window, Qt.Key.Key_F9)
    assert window.inspection is not None and window.inspection.result is not None


def test_reference_file_is_read_off_the_gui_thread_and_bad_files_are_reported(qtbot, window, tmp_path):
    import cv2
    import numpy as np

    good = tmp_path / "template.png"
    cv2.imwrite(str(good), np.full((40, 60, 3), 200, np.uint8))
    window.load_reference_file(str(good))
    qtbot.waitUntil(lambda: window.reference_image is not None, timeout=10_000)
    assert window.reference_image.shape == (40, 60, 3)

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"")
    with qtbot.waitSignal(window.notified, timeout=10_000) as shown:
        window.load_reference_file(str(bad))
    assert "broken.png" in shown.args[1]
    assert window.reference_image.shape == (40, 60, 3)  # the good reference is kept


def test_overlay_offers_only_the_maps_the_recipe_makes(qtbot):
    from station.ui.result_panel import OverlayControls

    controls = OverlayControls()
    qtbot.addWidget(controls)
    assert controls.options()["attention"] == "material"
    controls.set_maps_available(material=False, defects=True)  # a detector-only recipe
    assert controls.options()["attention"] == "defects"
    assert not controls.attention_kind.model().item(0).isEnabled()
    controls.set_maps_available(material=True, defects=True)
    assert controls.attention_kind.model().item(0).isEnabled() and controls.options()["attention"] == "defects"


def test_quit_has_the_ctrl_q_shortcut(window):
    from PySide6.QtGui import QKeySequence

    assert window.quit_action.shortcut() == QKeySequence("Ctrl+Q")


def test_a_faint_or_missing_map_is_said_beside_the_map_choice(qtbot):
    from types import SimpleNamespace

    import numpy as np

    from station.inference.results import AttentionMaps
    from station.ui.result_panel import OverlayControls

    controls = OverlayControls()
    qtbot.addWidget(controls)
    controls.show()
    faint = np.full((8, 8), 0.02, np.float32)
    faint[2, 3] = 0.08
    result = SimpleNamespace(attention=AttentionMaps(material=faint, defects=np.ones((8, 8), np.float32)))
    controls.show_map_note(result)
    assert controls.map_note.isVisible() and controls.map_note.text() == "faint map"
    assert "peaks at 8% of its reference" in controls.map_note.toolTip()
    controls.attention_kind.setCurrentIndex(1)  # the defect map is strong: nothing to say
    controls.show_map_note(result)
    assert not controls.map_note.isVisible()
    controls.show_map_note(SimpleNamespace(attention=None))
    assert controls.map_note.text() == "no map"
    controls.attention.setChecked(False)  # no map asked for on the screen: nothing to explain
    controls.show_map_note(result)
    assert not controls.map_note.isVisible()


def test_an_inspection_only_recipe_ends_at_the_verdict(qtbot, tmp_path):
    from station.ui.dialogs import OverrideDialog

    window = _open_window(qtbot, make_tiny_recipe(tmp_path, "Bare board", classifier=False))
    assert not window.panel.release_button.isVisible()
    assert not window.panel.results.material_box.isVisible()  # no packaging material to show
    _start_demo_and_sign_in(qtbot, window)
    _capture(qtbot, window)
    assert window.inspection.result.material is None and not window.inspection.goes_to_decapping
    assert not window.panel.results.material_box.isVisible()
    with qtbot.waitSignal(window.audit_committed, timeout=10_000) as override:
        window.override_with("", "the short is dust on the lens")
    entry = override.args[0]
    assert entry.action == "OVERRIDE" and entry.material is None and entry.decap_method is None
    assert entry.reason == "the short is dust on the lens"
    assert "inspection only" in window.panel.record_label.text()
    assert not window.inspection.can_release and not window.panel.release_button.isEnabled()
    dialog = OverrideDialog([], "")
    qtbot.addWidget(dialog)
    assert dialog.windowTitle() == "Override the findings" and dialog.values() == ("", "")
    window.shutdown()


def test_the_models_in_use_show_their_cards_with_known_limitations(qtbot, tmp_path):
    from station.ml.cards import load_card, save_card
    from station.ml.cli import edit_limitations

    recipe = make_tiny_recipe(tmp_path, "Annotated")
    edit_limitations(recipe.classifier, ["Trained on synthetic packages only."])
    card = load_card(recipe.classifier)
    card.metrics = {"accuracy": 0.9, "map50": 0.5}
    save_card(recipe.classifier, card)
    window = _open_window(qtbot, recipe)
    window.show_model_cards()
    dialog = window.cards_dialog
    tabs = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert tabs == ["Material classifier: tiny-material", "Defect detector: tiny-defects"]
    classifier_text = dialog.tabs.widget(0).toPlainText()
    assert "Known limitations" in classifier_text and "Trained on synthetic packages only." in classifier_text
    assert "Known limitations" not in dialog.tabs.widget(1).toPlainText()
    assert "Training" in classifier_text
    html = dialog.tabs.widget(0).toHtml()
    assert "<table" in html and "mAP@0.5" in html and "href" not in html  # a table; "mAP@0.5" is no mail link
    assert dialog.tabs.widget(0).textCursor().position() == 0  # opens at the top, on the metrics
    window.show_model_cards()  # again: a fresh dialog, the old one goes
    assert window.cards_dialog is not dialog and window.cards_dialog.tabs.count() == 2
    window.shutdown()


def test_a_recipe_change_records_the_loaded_models_and_their_hashes(qtbot, tmp_path):
    from station.ml.cards import load_card

    first, second = make_tiny_recipe(tmp_path, "First"), make_tiny_recipe(tmp_path, "Second", detector=False)
    window = MainWindow(Settings(recipe="First"), "CPU (test)", recipes={"First": first, "Second": second})
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window._recipe is not None, timeout=30_000)
    window.sign_in(Operator("op-7", "Ada Tester"))
    window.ask_signature = expert_signs
    with qtbot.waitSignal(window.audit_committed, timeout=30_000,
                          check_params_cb=lambda entry: entry.action == "RECIPE_CHANGE") as changed:
        window.choose_recipe("Second")
    classifier = load_card(second.classifier)
    assert changed.args[0].models == {classifier.name: classifier.weights_sha256}
    assert changed.args[0].details["signature"]["meaning"] == "recipe change approved"
    window.shutdown()


def test_the_models_in_use_before_any_recipe_has_loaded(qtbot):
    window = MainWindow(Settings(), "CPU (test)", recipes={})
    qtbot.addWidget(window)
    window.show_model_cards()
    assert window.cards_dialog is None and "not loaded" in window.statusBar().currentMessage()
    window.shutdown()


def test_the_live_view_holds_its_picture_while_a_capture_is_classified(qtbot, window, monkeypatch):
    """Its paints would take CPU from the inference on a 2-core PC; frames still count as fresh."""
    _start_demo_and_sign_in(qtbot, window)
    monkeypatch.setattr(window.inference, "submit", lambda request: None)  # the result never comes
    painted = []
    monkeypatch.setattr(window.live_view, "set_image", painted.append)
    window.capture_and_classify()
    assert window.is_classifying
    captured = window.latest_frame
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        pass
    assert not painted and window.latest_frame is not captured

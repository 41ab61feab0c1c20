"""The camera picker (the cameras `station cameras` lists, found on a worker thread) and the
objective in use, through the real window: the capture's record names the camera and the
objective, and the defects' sizes in µm come from the objective on record."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402
from helpers_window import capture_demo_chip  # noqa: E402

from station.audit import AuditLog  # noqa: E402
from station.capture.discovery import CameraListing, OpenCVDevice  # noqa: E402
from station.capture.genicam import GenICamDevice  # noqa: E402
from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402
from station.workflow import Operator  # noqa: E402

WEBCAM = OpenCVDevice(spec="/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_1A2B-video-index0", name="HD Pro Webcam C920",
                      node="/dev/video0")
BASLER = GenICamDevice(device_id="Basler-40012345", vendor="Basler", model="acA2440-35um", serial="40012345",
                       protocol="GigEVision", address="192.168.10.20", physical_id="00:30:53:01:02:03")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return make_tiny_recipe(tmp_path_factory.mktemp("models"))


@pytest.fixture
def window(qtbot, recipe):
    settings = Settings(recipe=recipe.name, objectives={"5x": 2.0, "20x": 0.5}, objective="20x")
    window = MainWindow(settings, "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window._recipe is not None, timeout=30_000)
    yield window
    window.shutdown()


def _rows(picker) -> list[tuple[str, object]]:
    return [(picker.itemText(i), picker.itemData(i)) for i in range(picker.count())]


def _pick(picker, row: int) -> None:
    """As a click on the row does: it becomes the current one, then ``activated``."""
    picker.setCurrentIndex(row)
    picker.activated.emit(row)


def _list_cameras(qtbot, window, monkeypatch, listing: CameraListing) -> None:
    monkeypatch.setattr("station.capture.discovery.discover_cameras", lambda probe=4: listing)
    with qtbot.waitSignal(window.cameras_listed, timeout=10_000):
        window.source_bar.refresh_button.click()


def test_the_picker_lists_the_attached_cameras_by_stable_spec_and_a_pick_is_saved(qtbot, window, monkeypatch):
    picker = window.source_bar.picker
    window.source_bar.select_spec(WEBCAM.spec)  # saved in the settings, or given with --source
    with qtbot.waitSignal(window.cameras_listed, timeout=10_000):  # first opened: the cameras are looked for
        picker.showPopup()
    picker.hidePopup()
    _list_cameras(qtbot, window, monkeypatch, CameraListing([WEBCAM], [BASLER]))
    rows = _rows(picker)
    assert ("HD Pro Webcam C920 — " + WEBCAM.spec, WEBCAM.spec) in rows
    assert [spec for _, spec in rows].count(WEBCAM.spec) == 1 and window.source_bar.current_spec() == WEBCAM.spec
    assert ("Basler acA2440-35um, serial 40012345 — genicam:Basler-40012345", "genicam:Basler-40012345") in rows
    row = picker.findData("genicam:Basler-40012345")
    assert "192.168.10.20" in picker.itemData(row, 3)  # the tooltip says where it is now
    _pick(picker, row)
    assert window.settings.camera.source == "genicam:Basler-40012345"  # saved with the settings at close
    assert picker.width() >= picker.fontMetrics().horizontalAdvance(picker.currentText())  # name and spec not cut

    _list_cameras(qtbot, window, monkeypatch, CameraListing([], [], "PyGObject is not installed"))
    rows = _rows(picker)
    assert not any(spec == WEBCAM.spec for _, spec in rows)  # unplugged: gone from the list
    assert any("GenICam cameras not listed: PyGObject" in text for text, _ in rows)
    assert window.source_bar.current_spec() == "genicam:Basler-40012345"  # the pick stays, typed or listed


def test_a_pick_while_running_switches_the_source_and_marks_it(qtbot, window, monkeypatch, tmp_path):
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "a.png"), np.full((240, 320, 3), 90, np.uint8))
    _list_cameras(qtbot, window, monkeypatch, CameraListing([], []))
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    picker = window.source_bar.picker
    assert picker.itemText(picker.findData("demo")).endswith("in use")
    window.source_bar.select_spec(str(tmp_path))  # as the folder dialog leaves it
    with qtbot.waitSignal(window.source_started, timeout=10_000,
                          check_params_cb=lambda description: "demo" not in description.lower()):
        _pick(picker, picker.findData(str(tmp_path)))
    assert window.settings.camera.source == str(tmp_path)
    assert picker.itemText(picker.findData(str(tmp_path))).endswith("in use")
    assert not picker.itemText(picker.findData("demo")).endswith("in use")


def test_the_capture_record_names_camera_and_objective_and_sizes_come_from_it(qtbot, window):
    from station.inference import Defect

    objective = window.panel.objective
    assert objective.currentText() == "20x · 0.5 µm/px" and objective.count() == 2
    capture_demo_chip(qtbot, window, Operator("op-7", "Ada Tester"))
    inspection = window.inspection
    assert inspection.objective.name == "20x" and inspection.um_per_px == 0.5
    _pick(objective, objective.findData("5x"))  # the turret turned after the capture
    assert window.settings.objective == "5x" and inspection.um_per_px == 0.5
    assert "taken at 20x · 0.5 µm/px" in window.statusBar().currentMessage()
    inspection.result = dataclasses.replace(inspection.result, defects=[Defect((10.0, 20.0, 50.0, 40.0), "crack", 0.9)])
    window._refresh()
    table = window.panel.results.defects
    assert table.item(0, 2).text() == "40 × 20" and table.item(0, 3).text() == "20 × 10"  # px, µm at 20x
    assert "0.5 µm per pixel" in table.horizontalHeaderItem(3).toolTip()

    with qtbot.waitSignal(window.audit_committed, timeout=10_000) as verdict:
        window.hold_with("checked under the stereo microscope")
    details = verdict.args[0].details
    assert details["objective"] == {"name": "20x", "um_per_px": 0.5}
    assert details["camera"] == {"spec": "demo", "model": "simulated microscope", "width": 640, "height": 480}
    with AuditLog(readonly=True) as audit_log:
        stored = audit_log.query()[-1]
    assert stored.details["camera"]["width"] == 640 and stored.details["objective"]["name"] == "20x"


def test_the_entry_form_and_the_report_show_the_capture():
    from station.audit.entry import AuditEntry
    from station.audit.export import capture_text
    from station.ui.audit_entry import entry_sections

    details = {"camera": {"spec": "genicam:Basler-40012345", "model": "Basler acA2440-35um", "serial": "40012345",
                          "exposure": 2000.0, "exposure_unit": "µs", "gain": 3.0, "width": 2448, "height": 2048},
               "objective": {"name": "20x", "um_per_px": 0.5}}
    entry = AuditEntry(id=7, time_utc="2026-12-07T12:00:00.000000+00:00", utc_offset="+00:00", station_id="s",
                       operator_id="op", action="VERDICT", app_version="1", details=details,
                       defects=[{"class": "crack", "score": 0.9, "box": [10, 20, 50, 40]}])
    sections = dict(entry_sections(entry))
    capture = {label: text for label, text, _ in sections["Capture"]}
    assert capture == {"Camera": "Basler acA2440-35um, serial 40012345", "Resolution": "2448 × 2048 px",
                       "Exposure": "2000 µs", "Gain": "3", "Objective": "20x · 0.5 µm/px"}
    assert sections["Defects"][0][1].endswith("20 × 10 µm")
    assert "camera" not in {key for _, _, key in sections.get("Details", [])}
    assert capture_text(details) == ("camera Basler acA2440-35um (serial 40012345), 2448×2048, exposure 2000 µs, "
                                     "gain 3; objective 20x, 0.5 µm/px")


def test_the_objectives_dialog_measures_a_micrometer_image_on_a_worker(qtbot, tmp_path):
    import cv2
    import numpy as np

    from station.ui.objectives_dialog import ObjectivesDialog
    from tests.test_objectives import ruling_image

    cv2.imwrite(str(tmp_path / "micrometer.png"), ruling_image(25.0, 1.0))
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((400, 600), 90, np.uint8))
    dialog = ObjectivesDialog({"5x": 2.0, "20x": None})
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.measure_finished, timeout=30_000) as finished:
        dialog.measure(str(tmp_path / "micrometer.png"), 1, 10.0)
    assert finished.args[0] and "µm/px" in dialog.status.text()
    assert dialog.values()["20x"] == pytest.approx(0.4, rel=1e-3) and dialog.values()["5x"] == 2.0
    with qtbot.waitSignal(dialog.measure_finished, timeout=30_000) as finished:
        dialog.measure(str(tmp_path / "blank.png"), 0, 10.0)
    assert not finished.args[0] and "blank" in dialog.status.text() and dialog.values()["5x"] == 2.0
    dialog.reject()  # its worker thread ends with it


def test_the_objectives_dialog_refuses_a_scale_it_cannot_read_instead_of_calling_it_not_calibrated(qtbot):
    from PySide6.QtWidgets import QTableWidgetItem

    from station.ui.objectives_dialog import ObjectivesDialog

    dialog = ObjectivesDialog({"5x": 2.05})
    qtbot.addWidget(dialog)
    dialog.add_row("20x", None)
    for typed in ("abc", "-0.5", "0", "inf"):
        dialog.table.setItem(1, 1, QTableWidgetItem(typed))
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
        assert dialog.result() != dialog.DialogCode.Accepted
        assert "20x" in dialog.status.text() and repr(typed) in dialog.status.text()
    dialog.add_row("20x", 0.5)  # the same objective twice
    dialog.table.setItem(1, 1, QTableWidgetItem("0,5127"))
    dialog.accept()
    assert "twice" in dialog.status.text() and dialog.result() != dialog.DialogCode.Accepted
    dialog.table.removeRow(2)
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.accept()
    assert dialog.values() == {"5x": 2.05, "20x": 0.5127}


def test_an_objective_in_use_that_is_not_listed_is_not_shown_as_the_first_one(qtbot, recipe):
    settings = Settings(recipe=recipe.name, objectives={"5x": 2.0, "20x": 0.5}, objective="40x")  # edited by hand
    window = MainWindow(settings, "CPU (test)", recipes={recipe.name: recipe})
    qtbot.addWidget(window)
    try:
        objective = window.panel.objective
        assert window.current_objective() is None  # a capture now is recorded without an objective...
        assert objective.currentText() == "choose the objective" and objective.currentData() is None  # ...and says so
        _pick(objective, objective.findData("20x"))
        assert window.current_objective().name == "20x" and objective.currentText() == "20x · 0.5 µm/px"
        assert objective.findText("choose the objective") < 0
    finally:
        window.shutdown()

"""The objective in use, through the real window: the capture's record names the camera and the
objective, and the defects' sizes in µm come from the objective on record."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("PySide6")

from helpers_models import make_tiny_recipe  # noqa: E402

from station.audit import AuditLog  # noqa: E402
from station.config import Settings  # noqa: E402
from station.ui.main_window import MainWindow  # noqa: E402
from station.workflow import Operator  # noqa: E402

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


def test_the_capture_record_names_camera_and_objective_and_sizes_come_from_it(qtbot, window):
    from station.inference import Defect

    objective = window.panel.objective
    assert objective.currentText() == "20x · 0.5 µm/px" and objective.count() == 2
    window.sign_in(Operator("op-7", "Ada Tester"))
    with qtbot.waitSignal(window.frame_shown, timeout=10_000):
        window.start_source("demo")
    window.panel.chip_fields.chip.setText("LM358")
    with qtbot.waitSignal(window.inspection_updated, timeout=60_000):
        window.capture_and_classify()
    inspection = window.inspection
    assert inspection.objective.name == "20x" and inspection.um_per_px == 0.5
    objective.setCurrentIndex(objective.findData("5x"))
    objective.activated.emit(objective.currentIndex())  # the turret turned after the capture
    assert window.settings.objective == "5x" and inspection.um_per_px == 0.5
    inspection.result = dataclasses.replace(inspection.result, defects=[Defect((10.0, 20.0, 50.0, 40.0), "crack", 0.9)])
    window._refresh()
    table = window.panel.results.defects
    assert table.item(0, 2).text() == "40 × 20" and table.item(0, 3).text() == "20 × 10"  # px, µm at 20x

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

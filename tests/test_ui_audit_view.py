"""The audit window as a reader uses it: a part of a chip ID finds the chip, an entry opens as a
form of readable fields beside its image (not a JSON dump), and the window opens again after a close."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from station.audit import AuditLog  # noqa: E402
from station.audit.draft import EntryDraft  # noqa: E402
from station.audit.entry import Action, Verdict  # noqa: E402
from station.ui.audit_entry import AuditEntryDialog, entry_sections  # noqa: E402
from station.ui.audit_view import AuditView  # noqa: E402

SIGNATURE = {"signer_id": "x-2", "name": "Eve Expert", "role": "expert", "meaning": "override approved",
             "time_utc": "2026-05-09T07:35:25+00:00"}


def _override_draft(chip: str) -> EntryDraft:
    image = np.zeros((60, 80, 3), np.uint8)
    image[20:30, 30:40] = 200
    return EntryDraft(Action.OVERRIDE, operator_id="op-7", chip_id=chip, lot_id="L2431", recipe="IC package",
                      image=image, probabilities={"ceramic": 0.93, "metallic": 0.05, "plastic": 0.02},
                      predicted_material="ceramic", material="metallic", verdict=Verdict.OVERRIDE,
                      reason="gold lid under the label", decap_method="laser",
                      defects=[{"class": "chipped_edge", "score": 0.81, "box": [30, 20, 40, 30]}],
                      models={"cti-demo": "ab" * 32}, details={"signature": SIGNATURE, "frame_id": 17})


@pytest.fixture
def filled_log():
    with AuditLog() as audit_log:
        for chip in ("LM358-2431", "NE555-0007", "lm358-2432"):
            audit_log.append(EntryDraft(Action.CLASSIFY, operator_id="op-7", chip_id=chip))
        return audit_log.append(_override_draft("LM358-2431"))


def test_an_entry_reads_as_a_form_with_readable_names(filled_log):
    sections = dict(entry_sections(filled_log))
    rows = {(title, label): text for title, entries in sections.items() for label, text, _ in entries}
    assert rows[("Entry", "Action")] == "Override"
    assert rows[("Part", "Chip")] == "LM358-2431" and rows[("Part", "Lot")] == "L2431"
    assert rows[("Decision", "Material")] == "Metallic" and rows[("Decision", "Model said")] == "Ceramic"
    assert rows[("Decision", "Probabilities")].startswith("Ceramic 93.0%")
    assert rows[("Decision", "Signed by")].startswith("Eve Expert (x-2, expert) — override approved")
    assert rows[("Defects", "1. Chipped edge")].startswith("score 0.81")
    assert rows[("Details", "Frame id")] == "17"
    assert all("{" not in text for text in rows.values())  # no JSON anywhere
    tooltips = {label: tooltip for _, entries in sections.items() for label, _, tooltip in entries}
    assert tooltips["Action"] == "recorded as OVERRIDE" and tooltips["Material"] == "metallic"


def test_the_chip_filter_matches_a_part_of_the_id_and_an_entry_opens_with_its_image(qtbot, filled_log):
    view = AuditView()
    qtbot.addWidget(view)
    view.show()
    with qtbot.waitSignal(view.worker.queried, timeout=10_000):
        view.chip.setText("lm358")
        view.refresh()
    qtbot.waitUntil(lambda: view.model.rowCount() == 3, timeout=5_000)
    assert {e.chip_id for e in view.model.entries} == {"LM358-2431", "lm358-2432"}
    first = view.model.index(0, 3)
    assert view.model.data(first) == "Override" and view.model.data(first, 3) == "OVERRIDE"  # ToolTipRole

    dialog = view.open_entry(view.model.index(0, 0))
    qtbot.addWidget(dialog)
    assert isinstance(dialog, AuditEntryDialog)
    assert dialog.windowTitle() == f"Audit entry #{filled_log.id} — Override"
    assert dialog.value_labels["Decision/Reason"].text() == "gold lid under the label"
    qtbot.waitUntil(dialog.image_view.has_image, timeout=5_000)
    view.shutdown()


def test_an_entry_dialog_is_deleted_when_closed_even_before_its_image_came(qtbot, filled_log):
    view = AuditView()
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: view.model.rowCount() == 4, timeout=10_000)
    with_image = next(row for row, entry in enumerate(view.model.entries) if entry.image_path)
    early = view.open_entry(view.model.index(with_image, 0))
    with qtbot.waitSignal(early.destroyed, timeout=5_000):
        early.close()  # its image is still being read
    with qtbot.waitSignal(view.worker.image_loaded, timeout=5_000):
        later = view.open_entry(view.model.index(with_image, 0))
    qtbot.waitUntil(later.image_view.has_image, timeout=5_000)
    with qtbot.waitSignal(later.destroyed, timeout=5_000):
        later.close()
    assert not view.findChildren(AuditEntryDialog)
    view.shutdown()


def test_the_window_answers_again_after_a_close(qtbot, filled_log):
    view = AuditView()
    qtbot.addWidget(view)
    view.show()
    qtbot.waitUntil(lambda: view.model.rowCount() == 4, timeout=10_000)
    view.close()
    view.show()
    with qtbot.waitSignal(view.worker.queried, timeout=10_000):
        view.chip.setText("0007")
        view.refresh()
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=5_000)
    view.shutdown()


def test_the_entry_form_fits_its_pane_so_no_line_is_cut_at_the_right_edge(qtbot):
    """Seen at 1366 and at 1920 px: the archive path, one unbroken word, widened the form past its
    pane, and the probabilities and the defects' sizes in µm ran off its right edge."""
    from PySide6.QtCore import QPoint

    from station.audit.entry import AuditEntry

    entry = AuditEntry(id=13, time_utc="2026-12-07T13:12:36.845807+00:00", utc_offset="+00:00", station_id="vm",
                       operator_id="demo-tech", action="VERDICT", app_version="0.1.0", chip_id="CHIP-001",
                       probabilities={"plastic": 0.959, "ceramic": 0.031, "metallic": 0.010},
                       defects=[{"class": "contamination", "score": 0.5766, "box": [102.7, 339.1, 117.5, 353.9]}],
                       image_path="archive/de/de4922659e5b84169bf340d784247443613eecdc299f3574ac817651dae28030.png",
                       details={"objective": {"name": "5x", "um_per_px": 2.05}})
    dialog = AuditEntryDialog(entry)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.resize(1100, 700)  # what it opens at on a 1366 x 768 screen
    qtbot.waitUntil(lambda: dialog.form.width() > 300, timeout=2_000)  # the pane keeps its share of the width
    scroll = dialog.form.parentWidget().parentWidget()
    assert scroll.horizontalScrollBar().maximum() == 0
    viewport = scroll.viewport()
    for key in ("Decision/Probabilities", "Defects/1"):
        label = next(v for k, v in dialog.value_labels.items() if k.startswith(key))
        right = label.mapTo(viewport, QPoint(label.width(), 0)).x()
        assert right <= viewport.width(), f"{key} ends at {right} px, past the pane's {viewport.width()} px"
        assert label.height() >= label.heightForWidth(label.width())  # wrapped, not cut
    path = dialog.value_labels["Integrity/Image file"]
    assert path.toolTip().endswith("dae28030.png")  # all of it on hover


def test_the_form_gives_the_frame_time_in_local_time_and_the_familiarity_as_a_line(qtbot):
    """Seen on the real window: "Frame time 1.797e+09" and "familiar: True, part_problem: , scores: …"."""
    from datetime import datetime, timedelta, timezone

    from station.audit.entry import AuditEntry

    frame_time = datetime(2026, 12, 7, 15, 32, 51, 250_000, tzinfo=timezone.utc).timestamp()
    familiar = {"familiar": True, "part_problem": "", "scores": {"cti-ic-material": 0.7174, "wbam-ffem-ic": 0.4638}}

    def entry(details: dict) -> AuditEntry:
        return AuditEntry(id=21, time_utc="2026-12-07T15:32:52.123456+00:00", utc_offset="+02:00", station_id="vm",
                          operator_id="demo-tech", action="VERDICT", app_version="0.1.0", chip_id="CHIP-001",
                          details={"frame_time": frame_time, "timings_ms": {"classifier": 607.4, "total": 1175.0},
                                   **details})

    dialog = AuditEntryDialog(entry({"familiarity": familiar}))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    text = {key.split("/", 1)[1]: label.text() for key, label in dialog.value_labels.items()}
    local = datetime.fromtimestamp(frame_time, timezone(timedelta(hours=2)))
    assert text["Frame time"] == local.strftime("%Y-%m-%d %H:%M:%S") == "2026-12-07 17:32:51"
    assert text["Familiarity"] == "familiar (cti-ic-material score 0.72, wbam-ffem-ic score 0.46; limit 1.00)"
    assert text["Timings"] == "classifier 607 ms · total 1175 ms"
    assert dialog.value_labels["Details/Frame time"].toolTip() == f"frame_time {frame_time}"

    reasons = ["not a part of the kind the models know: its features are far from every training part "
               "(feature distance cti-ic-material 3.10× its limit)"]
    unfamiliar = {"familiar": False, "part_problem": "", "scores": {"cti-ic-material": 3.1, "wbam-ffem-ic": None}}
    rows = {label: text for _, section in entry_sections(entry({"familiarity": unfamiliar, "unfamiliar": reasons}))
            for label, text, _ in section}
    assert rows["Familiarity"] == f"UNFAMILIAR: {reasons[0]}"
    assert "Unfamiliar" not in rows  # one line, not the reasons again beside it
    no_part = {"familiar": False, "part_problem": "no part in the frame", "scores": {}}
    rows = {label: text for _, section in entry_sections(entry({"familiarity": no_part})) for label, text, _ in section}
    assert rows["Familiarity"] == "UNFAMILIAR: no part in the frame"

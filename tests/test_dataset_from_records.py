"""``station dataset from-audit``: the reviewed decisions on the audit log as a training set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from station.audit import Action, AuditLog, Verdict
from station.audit.draft import EntryDraft
from station.cli import main
from station.training.datasets import read_dataset


def _frame(value: int) -> np.ndarray:
    image = np.full((48, 64, 3), value, np.uint8)
    image[10:20, 10:30] = 255 - value
    return image


def _decision(action, verdict, image_value, material, predicted, reason=None, **extra) -> EntryDraft:
    return EntryDraft(action=action, operator_id="T1", chip_id=f"C{image_value}", recipe="demo", image=_frame(image_value),
                      predicted_material=predicted, material=material, verdict=verdict, reason=reason,
                      defects=[{"class": "scratch", "score": 0.8, "box": [10.0, 10.0, 30.0, 20.0]}], **extra)


@pytest.fixture
def audit_with_decisions():
    with AuditLog() as log:
        accepted = log.append(_decision(Action.VERDICT, Verdict.ACCEPT, 10, "plastic", "plastic"))
        overridden = log.append(_decision(Action.OVERRIDE, Verdict.OVERRIDE, 20, "metallic", "ceramic", "gold lid"))
        held = log.append(_decision(Action.REJECT_HOLD, Verdict.REJECT_HOLD, 30, None, "plastic", "cracked"))
        corrected = log.append(_decision(Action.VERDICT, Verdict.ACCEPT, 40, "plastic", "plastic"))
        log.append(EntryDraft(action=Action.CORRECTION, operator_id="E1", refers_to=corrected.id, material="ceramic",
                              reason="second look under the stereo microscope"))
        log.append(EntryDraft(action=Action.CLASSIFY, operator_id="T1", image=_frame(50), predicted_material="plastic"))
        findings = log.append(_decision(Action.OVERRIDE, Verdict.OVERRIDE, 60, None, None, "a reflection, no scratch"))
        yield {"accepted": accepted, "overridden": overridden, "held": held, "corrected": corrected,
               "findings_overridden": findings}


def test_from_audit_labels_each_image_with_the_final_decision(audit_with_decisions, tmp_path, capsys):
    out = tmp_path / "materials"
    assert main(["dataset", "from-audit", "--out", str(out), "--format", "folder"]) == 0
    printed = capsys.readouterr()
    assert "wrote 3 images" in printed.out
    assert f"entry {audit_with_decisions['held'].id}: held (cracked)" in printed.err
    index = read_dataset(out, "folder")
    labels = sorted(index.classes[s.label] for s in index.samples)
    assert labels == ["ceramic", "metallic", "plastic"]  # accept, override, the correction's material
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    by_entry = {row["audit_entry"]: row for row in manifest}
    assert by_entry[audit_with_decisions["overridden"].id]["label"] == "metallic"
    assert by_entry[audit_with_decisions["corrected"].id]["corrected_by"] == audit_with_decisions["corrected"].id + 1
    assert by_entry[audit_with_decisions["accepted"].id]["audit_hash"] == audit_with_decisions["accepted"].hash


def test_from_audit_as_coco_keeps_the_recorded_boxes(audit_with_decisions, tmp_path, capsys):
    out = tmp_path / "defects"
    assert main(["dataset", "from-audit", "--out", str(out), "--format", "coco", "--recipe", "demo"]) == 0
    index = read_dataset(out, "coco")
    assert index.classes == ("scratch",) and len(index.samples) == 3
    np.testing.assert_allclose(index.samples[0].boxes, [[10, 10, 30, 20]])
    # the expert said these boxes are wrong: they are nobody's truth
    assert f"entry {audit_with_decisions['findings_overridden'].id}: its findings were overridden" in capsys.readouterr().err


def test_from_audit_leaves_out_an_image_that_no_longer_matches(audit_with_decisions, tmp_path, capsys):
    with AuditLog(readonly=True) as log:
        path = log.image_file(audit_with_decisions["accepted"].image_path)
    path.write_bytes(path.read_bytes() + b"tampered")
    assert main(["dataset", "from-audit", "--out", str(tmp_path / "out")]) == 0
    assert f"entry {audit_with_decisions['accepted'].id}: archived image altered" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["yolo", "voc", "labelme"])
def test_from_audit_in_each_annotation_format_reads_back(audit_with_decisions, tmp_path, fmt):
    out = tmp_path / fmt
    assert main(["dataset", "from-audit", "--out", str(out), "--format", fmt]) == 0
    index = read_dataset(out, fmt)
    assert index.classes == ("scratch",) and len(index.samples) == 3 and not index.problems
    for sample in index.samples:
        np.testing.assert_allclose(sample.boxes, [[10, 10, 30, 20]], atol=1.0)  # VOC: whole pixels


def test_from_audit_since_and_recipe_select_the_decisions(audit_with_decisions, tmp_path, capsys):
    from datetime import datetime, timedelta

    # the station day (local time) of the first decision; all were made within a second of it
    today = datetime.fromisoformat(audit_with_decisions["accepted"].time_utc).astimezone().date()
    for since, recipe, written in ((today, "demo", 3), (today - timedelta(days=1), None, 3),
                                   (today + timedelta(days=1), None, 0), (today, "another recipe", 0)):
        capsys.readouterr()
        argv = ["dataset", "from-audit", "--out", str(tmp_path / f"{since}-{recipe}"), "--since", since.isoformat()]
        assert main(argv + (["--recipe", recipe] if recipe else [])) == 0
        assert f"wrote {written} images" in capsys.readouterr().out, (since, recipe)

"""The Capture & Classify workflow as data: what each stage shows and what it refuses (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_users import signature_for

from station.audit.entry import Action, Verdict
from station.capture.base import Frame
from station.inference import Recipe
from station.inference.results import InspectionResult, MaterialCall
from station.users import Permission
from station.workflow import Inspection, Operator, Stage, Tone, chip_id_problem, display_name

DECAP = {"plastic": "chemical (acid)", "metallic": "laser", "ceramic": "mechanical"}
RECIPE = Recipe(name="ic", classifier="c", decap_methods=DECAP)
ADA, BEN = Operator("A1", "Ada"), Operator("B2", "Ben")
OVERRIDE_SIGNATURE = signature_for(Permission.OVERRIDE)


def _inspection(uncertain=False, chip="C-1") -> Inspection:
    call = MaterialCall(("plastic", "ceramic", "metallic"), (0.1, 0.85, 0.05), "ceramic", 0.85, uncertain, "mechanical")
    result = InspectionResult(1, call, [], None, {"total": 40.0}, "cpu", (), {"uncertain_below": 0.6})
    frame = Frame(image=np.zeros((8, 8, 3), np.uint8), timestamp=0.0, frame_id=1, source="test")
    return Inspection(1, frame, RECIPE, {"chip_id": chip}, result=result, owner=ADA)


def _commit(inspection, draft, entry_id):
    inspection.commit_verdict(draft, entry_id)
    return inspection.view()


def test_each_stage_shows_the_decision_of_record():
    inspection = _inspection()
    view = inspection.view()
    assert view.stage is Stage.CAPTURED and view.banner == "Ceramic — mechanical" and view.tone is Tone.CONFIDENT
    assert view.can_accept and not view.can_release
    view = _commit(inspection, inspection.verdict_draft(ADA, Verdict.OVERRIDE, "metallic", "gold lid",
                                                               signature=OVERRIDE_SIGNATURE), 5)
    assert view.banner == "OVERRIDDEN → Metallic — laser" and view.tone is Tone.OVERRIDDEN
    assert view.material == "Metallic" and view.decap == "laser"
    assert view.release_text == "Release to laser decapsulation" and view.can_release and not view.can_accept
    assert "#5" in view.record
    inspection.release_entry_id = 6
    view = inspection.view()
    assert view.stage is Stage.RELEASED and not view.show_result and view.material == "—" and not view.can_release


def test_a_hold_needs_a_reason_and_says_do_not_decap():
    inspection = _inspection(uncertain=True)
    view = inspection.view()
    assert view.tone is Tone.TO_PERSON and not inspection.can_accept and view.accept_text == "Accept — expert signs…"
    with pytest.raises(ValueError, match="a hold needs a reason"):
        inspection.verdict_draft(ADA, Verdict.REJECT_HOLD)
    view = _commit(inspection, inspection.verdict_draft(ADA, Verdict.REJECT_HOLD, reason="cracked lid"), 3)
    assert view.banner == "HOLD — do not decap" and view.tone is Tone.HOLD and not inspection.can_release
    assert not inspection.pending
    assert view.can_release and view.release_text == "Release held chip — expert signs…"  # with the expert's signature


def test_a_verdict_needs_the_chip_id_and_the_owner():
    assert chip_id_problem({"chip_id": ""}, RECIPE)
    assert not chip_id_problem({"chip_id": ""}, Recipe(name="dies", classifier="c", allow_missing_chip_id=True))
    with pytest.raises(ValueError, match="chip ID"):
        _inspection(chip="").verdict_draft(ADA, Verdict.ACCEPT)
    inspection = _inspection()
    with pytest.raises(ValueError, match="belongs to operator A1"):
        inspection.verdict_draft(BEN, Verdict.ACCEPT)
    handover = inspection.handover_draft(ADA, BEN)
    assert handover.action is Action.HANDOVER and handover.details["from_operator"] == "A1"
    inspection.owner = BEN
    inspection.commit_verdict(inspection.verdict_draft(BEN, Verdict.ACCEPT), 9)
    assert inspection.awaiting_release
    discard = inspection.discard_draft(BEN, "new capture before release")
    assert discard.action is Action.DISCARD and discard.refers_to == 9
    inspection.discarded_entry_id = 10
    assert inspection.stage is Stage.DISCARDED and not inspection.can_release


def test_raw_names_become_words():
    assert display_name("chipped_edge") == "Chipped edge" and display_name(None) == "—"

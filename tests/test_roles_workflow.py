"""Who may decide a chip's fate: the workflow checks roles and e-signatures (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_users import ADMIN, EXPERT, TECH, make_directory, make_users

from station.audit import AuditLog, Verdict
from station.capture.base import Frame
from station.inference import Recipe
from station.inference.results import InspectionResult, MaterialCall, ModelRef
from station.users import Permission, PermissionDenied
from station.workflow import Inspection, recipe_change_draft

RECIPE = Recipe(name="IC", classifier="cti-ic-material",
                decap_methods={"plastic": "chemical (acid)", "ceramic": "mechanical", "metallic": "laser"})


def _inspection(confidence: float) -> Inspection:
    others = (1.0 - confidence) / 2
    call = MaterialCall(("plastic", "ceramic", "metallic"), (confidence, others, others), "plastic", confidence,
                        confidence < 0.6, "chemical (acid)")
    result = InspectionResult(1, call, [], None, {"total": 1.0}, "cpu", (ModelRef("m", "0" * 64),),
                              {"uncertain_below": 0.6}, recipe="IC", image_size=(8, 8))
    frame = Frame(image=np.zeros((8, 8, 3), np.uint8), timestamp=0.0, frame_id=1, source="test")
    return Inspection(request_id=1, frame=frame, recipe=RECIPE, chip={"chip_id": "C-1"}, result=result)


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
    """Real signatures, given with the passwords (one log for the module: argon2 is not free)."""
    directory = make_directory(AuditLog(tmp_path_factory.mktemp("roles") / "audit.sqlite3"))
    make_users(directory)
    return {
        (account.role.value, permission): directory.sign(*account.login, permission)
        for account in (EXPERT, ADMIN)
        for permission in (Permission.OVERRIDE, Permission.ACCEPT_UNCERTAIN, Permission.RELEASE_HELD,
                           Permission.CHANGE_RECIPE)
    }


def test_a_technician_accepts_a_confident_call_holds_and_releases():
    tech = TECH.operator()
    inspection = _inspection(0.95)
    draft = inspection.verdict_draft(tech, Verdict.ACCEPT)
    inspection.commit_verdict(draft, 10)
    assert inspection.release_draft(tech).refers_to == 10
    assert "signature" not in draft.details
    _inspection(0.95).verdict_draft(tech, Verdict.REJECT_HOLD, reason="chipped corner")


def test_a_technician_cannot_override(signatures):
    inspection = _inspection(0.95)
    with pytest.raises(PermissionDenied, match="cannot be overridden without the electronic signature of an expert"):
        inspection.verdict_draft(TECH.operator(), Verdict.OVERRIDE, "ceramic", "lid looks ceramic")
    # nor with a signature given for something else
    with pytest.raises(PermissionDenied, match="does not approve 'override approved'"):
        inspection.verdict_draft(TECH.operator(), Verdict.OVERRIDE, "ceramic", "lid looks ceramic",
                                 signature=signatures[("expert", Permission.RELEASE_HELD)])


def test_an_expert_signature_overrides_and_is_in_the_record(signatures):
    signature = signatures[("expert", Permission.OVERRIDE)]
    draft = _inspection(0.95).verdict_draft(TECH.operator(), Verdict.OVERRIDE, "ceramic", "lid looks ceramic",
                                            signature=signature)
    assert draft.operator_id == "T001"
    assert draft.details["signature"] == {
        "signer_id": "E001", "name": "Erin Expert", "role": "expert", "meaning": "override approved",
        "time_utc": signature.time_utc}
    # an admin may sign it too
    _inspection(0.95).verdict_draft(ADMIN.operator(), Verdict.OVERRIDE, "ceramic", "x",
                                    signature=signatures[("admin", Permission.OVERRIDE)])


def test_an_uncertain_call_is_accepted_only_with_an_expert_signature(signatures):
    inspection = _inspection(0.4)
    assert not inspection.can_accept and inspection.can_accept_signed
    with pytest.raises(PermissionDenied, match="uncertain result cannot be accepted"):
        inspection.verdict_draft(EXPERT.operator(), Verdict.ACCEPT)
    draft = inspection.verdict_draft(TECH.operator(), Verdict.ACCEPT,
                                     signature=signatures[("expert", Permission.ACCEPT_UNCERTAIN)])
    assert draft.details["signature"]["meaning"] == "uncertain call accepted"


def test_a_technician_cannot_release_a_held_chip(signatures):
    inspection = _inspection(0.4)
    inspection.commit_verdict(inspection.verdict_draft(TECH.operator(), Verdict.REJECT_HOLD, reason="unsure"), 20)
    assert inspection.can_release_held and not inspection.can_release
    with pytest.raises(PermissionDenied, match="held chip cannot be released"):
        inspection.release_draft(TECH.operator())
    draft = inspection.release_draft(TECH.operator(), signature=signatures[("expert", Permission.RELEASE_HELD)])
    assert draft.details["signature"]["meaning"] == "release approved"
    assert draft.decap_method == "chemical (acid)" and draft.refers_to == 20


def test_changing_the_recipe_needs_a_signature(signatures):
    tech = TECH.operator()
    recipe_change_draft(tech, "IC", {"m": "0" * 64}, previous=None)  # the station's recipe at sign-in
    with pytest.raises(PermissionDenied, match="recipe cannot be changed"):
        recipe_change_draft(tech, "IC", {"m": "0" * 64}, previous="Other")
    draft = recipe_change_draft(tech, "IC", {}, previous="Other", signature=signatures[("expert", Permission.CHANGE_RECIPE)])
    assert draft.details["signature"]["meaning"] == "recipe change approved"

"""NO PART / UNFAMILIAR: frames that hold no part the models know go to a person, through
``Engine.run`` and batch review alike, and can be neither accepted nor bulk-accepted."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_users import signature_for

from station.audit import Verdict
from station.capture.base import Frame
from station.capture.images import read_image
from station.inference import Engine, InspectionRequest, load_recipes
from station.inference.familiarity import (FamiliarityCheck, FeatureStatistics, combined_score, load_statistics,
                                          save_statistics)
from station.ml.cards import FamiliarityInfo, load_card
from station.inference.part_region import PartRegion, PartRegionCheck, find_part
from station.review.export import write_csv
from station.review.runner import BatchRunner, RunOptions
from station.review.scan import scan_folder
from station.review.store import BatchStore
from station.review.verdicts import BulkRule, VerdictError, verdict_draft
from station.synth.render import render_package
from station.training.foreign import FAMILIES, ForeignSpec, foreign_frames, generated_frame
from station.users import Permission
from station.users.approvals import ModelApprovals
from station.workflow import Inspection, Operator, person_routing

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NEU_FRAME = SHARED / "neu-det" / "images" / "crazing_1.jpg"
DEEPPCB_FRAME = SHARED / "deeppcb" / "group00041" / "00041" / "00041000_test.jpg"
EXPERT_OVERRIDE = signature_for(Permission.OVERRIDE)
TECHNICIAN = Operator("op-1", "Ada Technician")
needs_data = pytest.mark.skipif(not NEU_FRAME.is_file() or not DEEPPCB_FRAME.is_file(),
                                reason="the shared NEU / DeepPCB data is not here")


def _recipe(name: str):
    return load_recipes()[name]


@pytest.fixture(scope="module")
def demo_engine():
    with Engine(_recipe("IC package (demo)"), device="cpu", warm_up=False,
                approvals=ModelApprovals.developer()) as engine:
        yield engine


def _foreign(size: tuple[int, int]) -> dict[str, np.ndarray]:
    frames = {family: generated_frame(family, 1, size).image for family in ("noise", "blank", "texture")}
    if NEU_FRAME.is_file():
        frames["neu"] = cv2.resize(read_image(NEU_FRAME), (size[1], size[0]))
        frames["deeppcb"] = cv2.resize(read_image(DEEPPCB_FRAME), (size[1], size[0]))
    return frames


def test_foreign_set_is_deterministic_and_covers_every_family():
    spec = ForeignSpec((48, 64), per_family=2, other_sources={})
    first, second = list(foreign_frames(spec)), list(foreign_frames(spec))
    assert [f.name for f in first] == [f.name for f in second]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, second))
    assert {f.family for f in first} == set(FAMILIES) - {"other_dataset"}
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in first)


def test_statistics_round_trip_and_distances(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (200, 6))
    stats = FeatureStatistics.fit(features, [i % 2 for i in range(200)])
    sha = save_statistics(tmp_path / "f.safetensors", ["a"], [stats])
    (loaded,) = load_statistics(tmp_path / "f.safetensors", ["a"], sha)
    np.testing.assert_allclose(loaded.distances(features[:5]), stats.distances(features[:5]), rtol=1e-4)
    assert stats.distances(np.full((1, 6), 50.0))[0] > 10 * np.median(stats.distances(features))
    with pytest.raises(ValueError, match="sha256"):
        load_statistics(tmp_path / "f.safetensors", ["a"], "0" * 64)


def test_joint_limit_flags_a_frame_that_is_a_little_far_on_every_layer():
    ratios = np.array([[0.95, 0.97],   # under both layers' limits, but close to each
                       [0.40, 0.99],   # close on one layer only: a genuine part's usual spread
                       [1.20, 0.10]])  # over one layer's limit
    assert np.allclose(combined_score(ratios, None), [0.97, 0.99, 1.20])
    joint = combined_score(ratios, 0.9)
    assert joint[0] > 1.0 and joint[1] < 1.0 and joint[2] == pytest.approx(1.20)
    with pytest.raises(ValueError, match="joint_limit"):
        FamiliarityInfo(["a"], [1.0], joint_limit=0.0)


def test_bundled_cards_carry_a_joint_limit():
    for name in ("cti-ic-material", "wbam-ffem-ic", "wbam-ffem-neu", "wbam-ffem-deeppcb"):
        card = load_card(Path(__file__).resolve().parents[1] / "models" / name)
        assert card.familiarity is not None and card.familiarity.joint_limit is not None, name
        assert "joint_limit_from" in card.familiarity.fitted


def test_part_localiser_finds_a_package_and_nothing_in_noise():
    check = PartRegionCheck(contrast=3.5)
    package = render_package(seed=12345).image
    region = find_part(check, package)
    assert region.found and 0.01 < region.mask.mean() < 0.8
    assert not find_part(check, generated_frame("noise", 0, (480, 640)).image).found
    assert find_part(PartRegionCheck(kind="frame"), package).mask.all()
    inside = np.zeros((480, 640), np.float32)
    assert PartRegion(np.ones((4, 4), bool)).share_inside(inside) == 1.0  # no attention: nothing off the part


@pytest.mark.parametrize("kind", ["noise", "blank", "texture", "neu", "deeppcb"])
def test_demo_recipe_flags_foreign_frames_through_engine_run(demo_engine, kind):
    frames = _foreign((480, 640))
    assert kind in frames, "the shared NEU / DeepPCB data is missing (../shared/data or STATION_SHARED_DATA)"
    result = demo_engine.run(InspectionRequest(1, frames[kind], want_attention=False))
    assert result.unfamiliar and result.needs_expert
    assert result.material.uncertain and result.defects == []
    assert any(problem.startswith("NO PART / UNFAMILIAR") for problem in result.problems)
    assert person_routing(result).kind == "unfamiliar"
    assert result.to_dict()["familiarity"]["familiar"] is False


def test_demo_recipe_passes_a_genuine_package(demo_engine):
    result = demo_engine.run(InspectionRequest(1, render_package(seed=900001).image, want_attention=False))
    assert result.familiarity is not None and result.familiarity.familiar and not result.unfamiliar


@needs_data
@pytest.mark.parametrize("recipe_name, foreign", [("Steel surface (NEU)", "deeppcb"), ("Bare PCB (DeepPCB)", "neu")])
def test_detector_recipes_flag_noise_blank_texture_and_the_other_dataset(recipe_name, foreign):
    recipe = _recipe(recipe_name)
    size = (200, 200) if foreign == "deeppcb" else (640, 640)
    frames = _foreign(size)
    with Engine(recipe, device="cpu", warm_up=False, approvals=ModelApprovals.developer()) as engine:
        for kind in ("noise", "blank", "texture", foreign):
            image = frames[kind]
            result = engine.run(InspectionRequest(1, image, image if recipe.use_reference else None,
                                                  want_attention=False))
            assert result.unfamiliar and result.defects == [], (recipe_name, kind, result.familiarity)


def _unfamiliar_result() -> object:
    from station.inference import InspectionResult, MaterialCall

    call = MaterialCall(("ceramic", "metallic", "plastic"), (0.02, 0.96, 0.02), "metallic", 0.96, True, "laser")
    return InspectionResult(1, call, [], None, {}, "cpu", (), {"uncertain_below": 0.6},
                            familiarity=FamiliarityCheck({"cti-ic-material": 3.2}, ""), suppressed_defects=2)


def test_workflow_never_accepts_an_unfamiliar_frame_only_an_expert_override():
    recipe = _recipe("IC package (demo)")
    inspection = Inspection(1, Frame(image=np.zeros((8, 8, 3), np.uint8), timestamp=0.0, frame_id=1, source="t"),
                            recipe, chip={"chip_id": "C-1"}, result=_unfamiliar_result(), owner=TECHNICIAN)
    view = inspection.view()
    assert inspection.routing.kind == "unfamiliar" and view.banner.startswith("NO PART / UNFAMILIAR")
    assert not inspection.can_accept and not inspection.can_accept_signed and not view.can_accept
    assert view.can_override and view.material.startswith("not named")
    with pytest.raises(ValueError, match="cannot be accepted"):
        inspection.verdict_draft(TECHNICIAN, Verdict.ACCEPT, signature=signature_for(Permission.ACCEPT_UNCERTAIN))
    draft = inspection.verdict_draft(TECHNICIAN, Verdict.OVERRIDE, "ceramic", "an expert sees a ceramic lid",
                                     signature=EXPERT_OVERRIDE)
    assert draft.details["routed_to_person"] == "unfamiliar" and draft.details["suppressed_defects"] == 2
    assert draft.details["unfamiliar"] and draft.defects == []


def test_batch_review_flags_foreign_frames_refuses_accept_and_bulk_accept(demo_engine, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    for name, image in _foreign((480, 640)).items():
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    scan = scan_folder(folder)
    with BatchStore.for_folder(scan.folder, demo_engine.recipe.name) as store:
        runner = BatchRunner(demo_engine, store, scan.folder, options=RunOptions(want_attention=True, inference_lanes=1))
        runner.run(runner.plan(scan))
        rule = BulkRule.from_recipe(demo_engine.recipe)
        rows = store.rows()
        assert rows and all(row.is_done and row.uncertain and not row.n_defects for row in rows)
        for row in rows:
            record = store.record(row.item_id)
            assert record.result.unfamiliar
            assert rule.refusal(row) is not None
            with pytest.raises(VerdictError):
                verdict_draft(record, folder, demo_engine.recipe.decap_methods, TECHNICIAN, Verdict.ACCEPT)
            with pytest.raises(VerdictError):
                verdict_draft(record, folder, demo_engine.recipe.decap_methods, TECHNICIAN, Verdict.ACCEPT,
                              bulk=True, bulk_rule=rule)
        with open(write_csv(store, tmp_path / "report.csv"), newline="") as handle:
            report = list(csv.DictReader(handle))
    assert len(report) == len(rows)
    assert all(line["image_problems"].startswith("NO PART / UNFAMILIAR") for line in report)
    assert all(line["uncertain"] in ("True", "true", "1", "yes") for line in report), report[0]["uncertain"]
    assert all(not line["material"] and not line["decap_method"] for line in report)


def test_bulk_rule_needs_confidence_and_attention_on_the_part():
    from station.review.store import ItemRow

    rule = BulkRule(min_confidence=0.9, min_attention_on_part=0.6)
    row = ItemRow(1, "a.png", "done", "0" * 64, "plastic", 0.95, False, 0, None, None, None, None, None, 0.8)
    assert rule.refusal(row) is None
    assert "confidence" in rule.refusal(ItemRow(1, "a.png", "done", "0" * 64, "plastic", 0.85, False, 0, None, None,
                                                None, None, None, 0.8))
    assert "attention" in rule.refusal(ItemRow(1, "a.png", "done", "0" * 64, "plastic", 0.95, False, 0, None, None,
                                               None, None, None, 0.3))
    assert "attention map" in rule.refusal(ItemRow(1, "a.png", "done", "0" * 64, "plastic", 0.95, False, 0, None,
                                                   None, None, None, None, None))
    assert "≥ 90%" in rule.describe() and "60%" in rule.describe()


def test_a_held_unfamiliar_frame_has_no_material_of_record_and_cannot_be_released_to_its_unnamed_call():
    """An expert may not accept a frame with no known part; holding it and then releasing it
    (signed) must not send the chip to the decapsulation of the call the screen said was not named."""
    recipe = _recipe("IC package (demo)")
    inspection = Inspection(1, Frame(image=np.zeros((8, 8, 3), np.uint8), timestamp=0.0, frame_id=1, source="t"),
                            recipe, chip={"chip_id": "C-1"}, result=_unfamiliar_result(), owner=TECHNICIAN)
    draft = inspection.verdict_draft(TECHNICIAN, Verdict.REJECT_HOLD, reason="no part on the stage")
    assert draft.material is None and draft.decap_method is None
    inspection.commit_verdict(draft, 7)
    view = inspection.view()
    assert view.banner.startswith("HOLD") and view.material.startswith("not named")
    assert not inspection.can_release_held and not view.can_release and inspection.decap_method is None
    with pytest.raises(ValueError, match="release needs"):
        inspection.release_draft(TECHNICIAN, signature=signature_for(Permission.RELEASE_HELD))


@pytest.mark.parametrize("kind", ["package", "noise", "texture"])
def test_onnx_runtime_engine_gives_torch_maps_and_familiarity_without_a_torch_detector_pass(demo_engine, kind):
    pytest.importorskip("onnxruntime")
    image = render_package(seed=900001, defects=True).image if kind == "package" else \
        generated_frame(kind, 3, (480, 640)).image
    with Engine(_recipe("IC package (demo)"), device="cpu", warm_up=False, backend="auto",
                approvals=ModelApprovals.developer()) as engine:
        assert engine.backend == "onnxruntime" and engine.device_description.endswith("ONNX Runtime")
        torch_passes = []
        hook = engine.detector.model.register_forward_hook(lambda *_: torch_passes.append(1))
        try:
            ours = engine.run(InspectionRequest(1, image, want_attention=True))
        finally:
            hook.remove()
    theirs = demo_engine.run(InspectionRequest(1, image, want_attention=True))
    assert torch_passes == []  # the detector's map and features came from the graph's taps
    assert ours.familiarity.familiar == theirs.familiarity.familiar == (kind == "package")
    for name, score in theirs.familiarity.scores.items():
        assert ours.familiarity.scores[name] == pytest.approx(score, rel=1e-4)
    assert ours.material.material == theirs.material.material
    np.testing.assert_allclose(ours.material.probabilities, theirs.material.probabilities, atol=1e-4)
    np.testing.assert_allclose(ours.attention.defects, theirs.attention.defects, atol=1e-4)
    np.testing.assert_allclose(ours.attention.material, theirs.attention.material, atol=1e-4)  # Grad-CAM: torch
    assert [(d.label, round(d.score, 3)) for d in ours.defects] == [(d.label, round(d.score, 3)) for d in theirs.defects]


def test_auto_backend_stays_on_torch_when_the_graph_cannot_be_exported(monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    import station.inference.onnx_backend as onnx_backend

    def refuse(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_backend, "export_graph", refuse)
    monkeypatch.setattr(onnx_backend, "runner_for", refuse)
    with Engine(_recipe("IC package (demo)"), device="cpu", warm_up=False, backend="auto",
                approvals=ModelApprovals.developer()) as engine:
        assert engine.backend == "torch" and "ONNX Runtime" not in engine.device_description
        result = engine.run(InspectionRequest(1, render_package(seed=900001).image, want_attention=False))
    assert result.material is not None and "running on torch" in caplog.text
    with pytest.raises(OSError, match="No space"):
        Engine(_recipe("IC package (demo)"), device="cpu", warm_up=False, backend="onnxruntime",
               approvals=ModelApprovals.developer())

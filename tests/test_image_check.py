"""The recipe's image check: a frame unfit to judge goes to a person, in every path."""

from __future__ import annotations

import numpy as np
import pytest

from helpers_models import make_tiny_classifier
from station.audit.entry import Verdict
from station.capture.base import Frame
from station.inference import Engine, InspectionRequest, InspectionResult, Recipe, RecipeError
from station.inference.image_check import ImageCheck
from station.synth import render_package
from station.users import PermissionDenied
from station.workflow import Inspection, Operator

DECAP = {"plastic": "chemical (acid)", "metallic": "laser", "ceramic": "mechanical"}
FLAT = np.full((120, 160, 3), 114, np.uint8)


def test_the_check_names_what_is_wrong_with_a_frame():
    check = ImageCheck()
    package = render_package(7, size=(240, 320)).image
    assert check.problems(package) == ()
    assert "nearly uniform" in check.problems(FLAT)[0]
    noisy_grey = np.random.default_rng(0).integers(100, 108, (480, 640, 3)).astype(np.uint8)
    assert "nearly uniform" in check.problems(noisy_grey)[0]
    assert "too dark" in check.problems((package // 8).astype(np.uint8))[0]
    blown = package.copy()
    blown[:, :200] = 255
    assert any("overexposed" in problem for problem in check.problems(blown))


def test_recipes_read_and_validate_their_limits(tmp_path):
    data = {"name": "r", "classifier": "m", "image_check": {"min_contrast": 20, "max_saturated": 0.1}}
    recipe = Recipe.from_dict(data)
    assert recipe.image_check == ImageCheck(min_contrast=20, max_saturated=0.1)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert Recipe.from_dict({"name": "r", "classifier": "m"}).image_check is None
    with pytest.raises(RecipeError, match="unknown limit"):
        Recipe.from_dict(data | {"image_check": {"min_contrats": 20}})
    with pytest.raises(RecipeError, match="max_saturated"):
        Recipe.from_dict(data | {"image_check": {"max_saturated": 0}})
    with pytest.raises(RecipeError, match="object of limits"):
        Recipe.from_dict(data | {"image_check": 12})


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "material"
    make_tiny_classifier(folder, name="test-material",
                         calibration_frames=[render_package(100 + i, size=(120, 160)).image for i in range(3)])
    return folder


def test_a_frame_that_fails_goes_to_a_person_with_the_reason(classifier):
    checked = Recipe(name="checked", classifier=str(classifier), decap_methods=DECAP, image_check=ImageCheck())
    with Engine(checked, device="cpu") as engine:
        good = engine.run(InspectionRequest(1, render_package(3, size=(120, 160)).image))
        flat = engine.run(InspectionRequest(2, FLAT))
        batched = engine.run_batch([engine.prepare(FLAT, request_id=3)])[0]
    with Engine(Recipe(name="unchecked", classifier=str(classifier), decap_methods=DECAP), device="cpu") as engine:
        unchecked = engine.run(InspectionRequest(2, FLAT))
    assert good.image_problems == () and unchecked.image_problems == ()
    assert "nearly uniform" in flat.image_problems[0] and flat.material.uncertain and flat.needs_expert
    # the network's answer is kept for the record, only routed to a person
    assert flat.material.probabilities == pytest.approx(unchecked.material.probabilities)
    assert batched.image_problems == flat.image_problems and batched.material.uncertain
    assert InspectionResult.from_dict(flat.to_dict()).image_problems == flat.image_problems

    frame = Frame(image=FLAT, timestamp=0.0, frame_id=1, source="test")
    inspection = Inspection(request_id=2, frame=frame, recipe=checked, result=flat, chip={"chip_id": "C-1"})
    assert inspection.uncertain and not inspection.can_accept
    operator = Operator("T1", "Tester")
    with pytest.raises(PermissionDenied, match="cannot be accepted without the electronic signature of an expert"):
        inspection.verdict_draft(operator, Verdict.ACCEPT)
    hold = inspection.verdict_draft(operator, Verdict.REJECT_HOLD, reason="lens cap on")
    assert hold.details["image_problems"] == list(flat.image_problems)


def test_the_demo_recipe_checks_its_frames():
    from station.inference import load_recipes

    recipes = load_recipes()
    assert recipes["IC package (demo)"].image_check is not None
    # binary DeepPCB scans and bright steel patches are normal there: no check
    assert recipes["Bare PCB (DeepPCB)"].image_check is None and recipes["Steel surface (NEU)"].image_check is None

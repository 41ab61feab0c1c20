"""The inference engine end to end on synthetic frames, with tiny random-init model cards."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from station.inference import (
    CorruptWeightsError,
    Engine,
    IncompatibleModelError,
    InspectionRequest,
    InspectionResult,
    InvalidCardError,
    InvalidInputError,
    MissingReferenceError,
    ModelNotFoundError,
    Recipe,
    RecipeError,
    TruncatedWeightsError,
    WeightsMismatchError,
    load_recipes,
)
from helpers_models import make_tiny_classifier, make_tiny_detector
from station.ml.cards import ModelCard
from station.synth import DEFECT_CLASSES, MATERIALS, render_package

FRAME = (120, 160)  # height, width of the synthetic test frames
DECAP = {"plastic": "chemical (acid)", "metallic": "laser", "ceramic": "mechanical"}
# cti-tiny cut to three stages with a stride-4 stem: a 4x4 Grad-CAM map at 64x64, fast
CLASSIFIER_KWARGS = {
    "num_classes": len(MATERIALS),
    "depths": (1, 1, 1),
    "widths": (16, 32, 64),
    "stem_strides": (2, 2),
    "stem_width": 8,
    "head_width": 64,
}


def _frames(count: int, seed: int = 0) -> list[np.ndarray]:
    return [render_package(seed + i, defects=True, size=FRAME).image for i in range(count)]


def make_classifier(directory: Path, temperature: float = 1.0, seed: int = 0) -> ModelCard:
    return make_tiny_classifier(
        directory, temperature=temperature, seed=seed, name="test-material", calibration_frames=_frames(3, seed=100)
    )


def make_detector(directory: Path, input_mode: str = "rgb", seed: int = 0) -> ModelCard:
    templates = [render_package(100 + i, size=FRAME).image for i in range(3)] if input_mode.endswith("+ref") else None
    return make_tiny_detector(
        directory,
        size=64,
        input_mode=input_mode,
        # random-init scores sit near the 0.01 class prior: a low threshold gives some boxes
        score=0.001,
        max_det=10,
        seed=seed,
        name=f"test-defects-{input_mode}",
        calibration_frames=_frames(3, seed=100),
        calibration_templates=templates,
    )


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_classifier(root / "material")
    make_detector(root / "defects")
    return root


def _recipe(root: Path, **changes) -> Recipe:
    fields = {
        "name": "test recipe",
        "classifier": str(root / "material"),
        "detector": str(root / "defects"),
        "decap_methods": DECAP,
    }
    return Recipe(**(fields | changes))


@pytest.fixture(scope="module")
def engine(model_root) -> Engine:
    with Engine(_recipe(model_root), device="cpu") as engine:
        yield engine


def _copy_model(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


# -- recipes ------------------------------------------------------------------------------


def test_bundled_recipes():
    recipes = load_recipes()
    demo, pcb = recipes["IC package (demo)"], recipes["Bare PCB (DeepPCB)"]
    assert demo.classifier == "cti-ic-material" and demo.detector == "wbam-ffem-ic" and not demo.use_reference
    assert demo.decap_methods == DECAP
    assert pcb.classifier is None and pcb.detector == "wbam-ffem-deeppcb" and pcb.use_reference
    steel = recipes["Steel surface (NEU)"]
    assert steel.classifier is None and steel.detector == "wbam-ffem-neu" and not steel.use_reference
    assert demo.model_dir("cti-ic-material").name == "cti-ic-material"


def test_user_recipe_overrides_and_broken_ones_are_skipped(station_home, caplog):
    from station import paths

    user_dir = paths.recipes_dir()
    override = load_recipes()["IC package (demo)"].to_dict() | {"uncertain_below": 0.9, "description": "mine"}
    (user_dir / "demo.json").write_text(json.dumps(override))
    (user_dir / "extra.json").write_text(json.dumps({"name": "Extra", "detector": "models/mine"}))
    (user_dir / "broken.json").write_text("{ not json")
    (user_dir / "typo.json").write_text(json.dumps({"name": "Typo", "detector": "x", "uncertain_bellow": 0.5}))
    (user_dir / "empty.json").write_text(json.dumps({"name": "Empty"}))
    with caplog.at_level(logging.WARNING, logger="station.inference"):
        recipes = load_recipes()
    assert recipes["IC package (demo)"].uncertain_below == 0.9
    assert recipes["IC package (demo)"].description == "mine"
    assert "Bare PCB (DeepPCB)" in recipes
    # a relative model path is relative to the recipe file
    assert recipes["Extra"].model_dir("models/mine") == user_dir / "models" / "mine"
    assert not {"Typo", "Empty"} & set(recipes)
    messages = "\n".join(caplog.messages)
    assert "broken.json" in messages and "not valid JSON" in messages
    assert "uncertain_bellow" in messages and "neither a classifier nor a detector" in messages


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"uncertain_below": 1.5}, "'uncertain_below' must be in"),
        ({"nms_iou": 0.0}, "'nms_iou' must be in"),
        ({"score_threshold": "high"}, "must be a number"),
        ({"max_detections": 0}, "positive integer"),
        ({"decap_methods": {"plastic": ""}}, "decap_methods"),
        ({"use_reference": "yes"}, "use_reference"),
    ],
)
def test_recipe_values_are_checked(changes, message):
    with pytest.raises(RecipeError, match=message):
        Recipe(name="bad", detector="x", **changes)


def test_recipe_round_trips_through_json():
    recipe = Recipe(name="r", classifier="a", detector="b", uncertain_below=0.7, decap_methods=DECAP)
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


# -- end to end ---------------------------------------------------------------------------


def test_end_to_end_on_a_synthetic_frame(engine, model_root):
    sample = render_package(3, defects=True, size=FRAME)
    result = engine.run(InspectionRequest(42, sample.image, None, want_attention=True))
    assert isinstance(result, InspectionResult) and result.request_id == 42

    call = result.material
    assert call.classes == tuple(MATERIALS)
    assert sum(call.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert call.material == MATERIALS[int(np.argmax(call.probabilities))]
    assert call.confidence == max(call.probabilities)
    assert call.uncertain == (call.confidence < result.thresholds["uncertain_below"])
    assert call.decap_method == DECAP[call.material]

    assert 0 < len(result.defects) <= 10
    for defect in result.defects:
        x1, y1, x2, y2 = defect.box
        assert 0 <= x1 <= x2 <= FRAME[1] and 0 <= y1 <= y2 <= FRAME[0]
        assert defect.label in DEFECT_CLASSES and defect.score >= 0.001

    for attention in (result.attention.material, result.attention.defects):
        assert attention.shape == FRAME and attention.dtype == np.float32
        assert attention.min() >= 0.0 and attention.max() <= 1.0
    assert set(result.timings_ms) == {"preprocess", "classifier", "detector", "cam", "total"}
    assert result.timings_ms["total"] >= result.timings_ms["classifier"] + result.timings_ms["detector"]
    assert result.timings_ms["cam"] > 0
    shas = {ref.name: ref.sha256 for ref in result.models}
    assert shas["test-material"] == json.loads((model_root / "material" / "card.json").read_text())["weights_sha256"]
    assert result.thresholds["score_threshold"] == 0.001 and result.thresholds["temperature"] == 1.0
    assert result.device.startswith("CPU") and result.recipe == "test recipe"
    json.dumps(result.to_dict())  # the audit log stores it as JSON


def test_same_request_same_answer(engine):
    image = _frames(1, seed=5)[0]
    first = engine.run(InspectionRequest(1, image))
    second = engine.run(InspectionRequest(2, image))
    assert first.material == second.material and first.defects == second.defects
    np.testing.assert_allclose(first.attention.defects, second.attention.defects, atol=1e-6)


def test_attention_only_when_asked(engine):
    result = engine.run(InspectionRequest(1, _frames(1)[0], want_attention=False))
    assert result.attention is None and result.timings_ms["cam"] == 0.0
    assert result.material is not None


def test_blank_frame_gives_a_cold_map(engine):
    # a featureless frame, in a grey that calibration never saw
    blank = np.full((*FRAME, 3), 100, dtype=np.uint8)
    result = engine.run(InspectionRequest(1, blank))
    for attention in (result.attention.material, result.attention.defects):
        assert attention.mean() < 0.1  # well below the card's reference (1.0)
        assert attention.std() < 0.1  # and not stretched into a pattern


def test_calibrated_confidence_uses_the_card_temperature(tmp_path, model_root):
    image = _frames(1, seed=9)[0]
    make_classifier(tmp_path / "hot", temperature=4.0)
    request = InspectionRequest(1, image, want_attention=False)
    sharp = Engine(_recipe(model_root, detector=None), device="cpu").run(request)
    soft = Engine(_recipe(model_root, classifier=str(tmp_path / "hot"), detector=None), device="cpu").run(request)
    logits = torch.log(torch.tensor(sharp.material.probabilities))  # T=1: log-probabilities = logits + c
    expected = torch.softmax(logits / 4.0, dim=0).tolist()
    assert soft.material.probabilities == pytest.approx(expected, abs=1e-5)
    assert soft.material.material == sharp.material.material
    assert soft.defects == [] and soft.thresholds["temperature"] == 4.0


def test_uncertain_threshold_from_the_recipe(model_root):
    image = _frames(1)[0]
    always = Engine(_recipe(model_root, detector=None, uncertain_below=1.0), device="cpu", warm_up=False)
    never = Engine(_recipe(model_root, detector=None, uncertain_below=0.0), device="cpu", warm_up=False)
    assert always.run(InspectionRequest(1, image, want_attention=False)).material.uncertain
    assert not never.run(InspectionRequest(1, image, want_attention=False)).material.uncertain


def test_reference_recipe(tmp_path):
    make_detector(tmp_path / "pcb", input_mode="gray+ref")
    recipe = Recipe(name="pcb", detector=str(tmp_path / "pcb"), use_reference=True)
    engine = Engine(recipe, device="cpu")
    template = render_package(1, size=FRAME).image
    tested = render_package(1, defects=True, size=FRAME).image
    result = engine.run(InspectionRequest(1, tested, template))
    assert result.material is None and result.attention.material is None
    assert result.attention.defects.shape == FRAME
    with pytest.raises(MissingReferenceError, match="template"):
        engine.run(InspectionRequest(2, tested, None))
    with pytest.raises(InvalidInputError, match="same size"):
        engine.run(InspectionRequest(3, tested, template[:60]))
    with pytest.raises(IncompatibleModelError, match="needs a reference"):
        Engine(dataclasses.replace(recipe, use_reference=False), device="cpu")


def test_test_time_views_from_the_card(tmp_path, model_root):
    folder = _copy_model(model_root / "defects", tmp_path / "four-views")
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps(card | {"test_time_views": 4}))
    engine = Engine(_recipe(model_root, detector=str(folder)), device="cpu")
    result = engine.run(InspectionRequest(1, _frames(1)[0], want_attention=True))
    assert 0 < len(result.defects) <= 10
    assert all(0 <= d.box[0] <= d.box[2] <= FRAME[1] and 0 <= d.box[1] <= d.box[3] <= FRAME[0] for d in result.defects)
    assert result.attention.defects is not None and result.attention.defects.shape == FRAME


def test_no_map_without_a_cam_reference(tmp_path, model_root, caplog):
    folder = _copy_model(model_root / "defects", tmp_path / "uncalibrated")
    card = json.loads((folder / "card.json").read_text())
    card["cam_reference"] = None
    (folder / "card.json").write_text(json.dumps(card))
    with caplog.at_level(logging.WARNING, logger="station.inference"):
        engine = Engine(_recipe(model_root, detector=str(folder)), device="cpu")
    assert "no attention map" in caplog.text
    result = engine.run(InspectionRequest(1, _frames(1)[0]))
    assert result.attention.defects is None  # rather than a map on a made-up scale
    assert result.attention.material is not None


def test_bad_images_are_refused(engine):
    gray = np.zeros(FRAME, np.uint8)
    with pytest.raises(InvalidInputError, match="HxWx3 RGB uint8"):
        engine.run(InspectionRequest(1, gray))
    with pytest.raises(InvalidInputError, match="HxWx3 RGB uint8"):
        engine.run(InspectionRequest(1, np.zeros((*FRAME, 3), np.float32)))


# -- loading errors -----------------------------------------------------------------------


def test_missing_model(tmp_path, model_root):
    with pytest.raises(ModelNotFoundError, match="nowhere") as info:
        Engine(_recipe(model_root, classifier=str(tmp_path / "nowhere")), device="cpu")
    assert info.value.path == tmp_path / "nowhere"
    folder = _copy_model(model_root / "material", tmp_path / "no-weights")
    (folder / "weights.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="weights.safetensors"):
        Engine(_recipe(model_root, classifier=str(folder)), device="cpu")


def test_broken_weights(tmp_path, model_root):
    folder = _copy_model(model_root / "material", tmp_path / "broken")
    (folder / "weights.safetensors").write_bytes(b"this is not a tensor file, it is a pickle" * 10)
    with pytest.raises(CorruptWeightsError, match="not a safetensors file") as info:
        Engine(_recipe(model_root, classifier=str(folder)), device="cpu")
    assert not isinstance(info.value, TruncatedWeightsError)
    assert info.value.path == folder / "weights.safetensors" and str(folder) in str(info.value)


def test_truncated_weights(tmp_path, model_root):
    folder = _copy_model(model_root / "defects", tmp_path / "truncated")
    weights = folder / "weights.safetensors"
    payload = weights.read_bytes()
    weights.write_bytes(payload[: len(payload) * 2 // 3])
    with pytest.raises(TruncatedWeightsError, match="truncated") as info:
        Engine(_recipe(model_root, detector=str(folder)), device="cpu")
    assert str(weights) in str(info.value)


def test_mismatched_weights(tmp_path, model_root):
    folder = _copy_model(model_root / "material", tmp_path / "mismatched")
    other = tmp_path / "other"
    make_classifier(other, seed=1)  # same network, other weights: a complete file, the wrong one
    shutil.copy(other / "weights.safetensors", folder / "weights.safetensors")
    with pytest.raises(WeightsMismatchError, match="sha256") as info:
        Engine(_recipe(model_root, classifier=str(folder)), device="cpu")
    assert info.value.path == folder / "weights.safetensors"


def test_weights_of_another_network(tmp_path, model_root):
    # the card's sha256 matches, but the tensors are the detector's
    folder = _copy_model(model_root / "material", tmp_path / "foreign")
    shutil.copy(model_root / "defects" / "weights.safetensors", folder / "weights.safetensors")
    card = json.loads((folder / "card.json").read_text())
    card["weights_sha256"] = json.loads((model_root / "defects" / "card.json").read_text())["weights_sha256"]
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(WeightsMismatchError, match="another network"):
        Engine(_recipe(model_root, classifier=str(folder)), device="cpu")


def test_broken_card(tmp_path, model_root):
    folder = _copy_model(model_root / "material", tmp_path / "bad-card")
    (folder / "card.json").write_text('{"name": "x"')
    with pytest.raises(InvalidCardError, match="card.json"):
        Engine(_recipe(model_root, classifier=str(folder)), device="cpu")


def test_models_must_fit_the_recipe(model_root):
    with pytest.raises(IncompatibleModelError, match="classification model is needed"):
        Engine(_recipe(model_root, classifier=str(model_root / "defects")), device="cpu")
    with pytest.raises(IncompatibleModelError, match="'ceramic'"):
        Engine(_recipe(model_root, decap_methods={"plastic": "acid", "metallic": "laser"}), device="cpu")


# -- device -------------------------------------------------------------------------------


def test_one_precision_policy_for_every_forward_pass():
    import warnings

    from station.devices import autocast

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not isinstance(autocast(cpu, "classifier"), torch.autocast)
    assert not isinstance(autocast(cpu, "detector"), torch.autocast)
    assert autocast(cpu, "detector", amp="bf16").fast_dtype == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that autocast is disabled where CUDA is missing
        # box coordinates need fp16's mantissa; bf16 (where the GPU has it) keeps the classifier's range
        assert autocast(cuda, "detector").fast_dtype == torch.float16
        assert autocast(cuda, "detector", amp="bf16").fast_dtype == torch.float16
        assert autocast(cuda, "classifier").fast_dtype in (torch.bfloat16, torch.float16)
        assert not isinstance(autocast(cuda, "detector", amp="off"), torch.autocast)
    with pytest.raises(ValueError, match="role"):
        autocast(cpu, "segmenter")


def test_cuda_out_of_memory_falls_back_to_cpu(model_root, monkeypatch, caplog):
    engine = Engine(_recipe(model_root), device="cpu", warm_up=False)
    real_run = engine._run_batch
    devices_tried = []

    def run_out_of_memory_on_the_gpu(batch, want_attention):
        devices_tried.append(engine.device.type)
        if engine.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run(batch, want_attention)

    monkeypatch.setattr(engine, "_run_batch", run_out_of_memory_on_the_gpu)
    monkeypatch.setattr(engine, "_device", torch.device("cuda"))  # as if it had been running on a GPU
    with caplog.at_level(logging.WARNING, logger="station.inference"):
        result = engine.run(InspectionRequest(7, _frames(1)[0]))
    assert devices_tried == ["cuda", "cpu"]
    assert result.request_id == 7 and result.material is not None
    assert engine.device.type == "cpu" and "fell back" in result.device
    assert "out of memory" in caplog.text
    assert all(p.device.type == "cpu" for p in engine.classifier.model.parameters())


def test_cuda_out_of_memory_splits_a_batch_before_falling_back(model_root, monkeypatch):
    engine = Engine(_recipe(model_root), device="cpu", warm_up=False)
    real_run = engine._run_batch
    tried = []

    def run_out_of_memory_on_the_gpu(batch, want_attention):
        tried.append((engine.device.type, len(batch)))
        if engine.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_run(batch, want_attention)

    monkeypatch.setattr(engine, "_run_batch", run_out_of_memory_on_the_gpu)
    monkeypatch.setattr(engine, "_device", torch.device("cuda"))
    results = engine.run_batch([engine.prepare(frame, request_id=i) for i, frame in enumerate(_frames(3))])
    assert tried == [("cuda", 3), ("cuda", 1), ("cpu", 1), ("cpu", 2)]
    assert [r.request_id for r in results] == [0, 1, 2] and engine.device.type == "cpu"


def test_cpu_errors_are_not_swallowed(model_root, monkeypatch):
    engine = Engine(_recipe(model_root), device="cpu", warm_up=False)

    def fail(batch, want_attention):
        raise torch.cuda.OutOfMemoryError("out of memory")

    monkeypatch.setattr(engine, "_run_batch", fail)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        engine.run(InspectionRequest(1, _frames(1)[0]))


def test_closed_engine_refuses(model_root):
    engine = Engine(_recipe(model_root), device="cpu", warm_up=False)
    engine.close()
    with pytest.raises(Exception, match="closed"):
        engine.run(InspectionRequest(1, _frames(1)[0]))


# -- memory -------------------------------------------------------------------------------


def _hooks(engine: Engine) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for loaded in (engine.classifier, engine.detector)
        for m in loaded.model.modules()
    )


def _live_objects() -> tuple[int, int]:
    gc.collect()
    objects = gc.get_objects()
    return len(objects), sum(1 for obj in objects if type(obj) is torch.Tensor or type(obj) is torch.nn.Parameter)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_flat_over_repeated_calls(model_root):
    engine = Engine(_recipe(model_root), device="cpu")
    image = _frames(1)[0]
    for index in range(20):
        engine.run(InspectionRequest(index, image))
    objects_before, tensors_before = _live_objects()
    rss_before = _rss_bytes() if sys.platform == "linux" else 0
    for index in range(150):
        engine.run(InspectionRequest(index, image, want_attention=index % 4 != 3))
    objects_after, tensors_after = _live_objects()
    assert tensors_after <= tensors_before
    assert objects_after - objects_before < 200, "Python objects accumulate across calls"
    if sys.platform == "linux":
        growth = _rss_bytes() - rss_before
        assert growth < 32 * 2**20, f"resident memory grew {growth / 2**20:.1f} MiB over 150 calls"
    assert _hooks(engine) == 0
    assert not any(p.grad is not None for p in engine.classifier.model.parameters())


def test_boxes_of_two_classes_at_one_place_become_one_defect_with_its_alternatives():
    from station.inference.defects import defects_from_detections
    from station.workflow import result_audit_fields

    detections = {
        "boxes": torch.tensor([[10.0, 10, 50, 50], [11, 10, 50, 51], [200, 200, 240, 230], [12, 11, 49, 50],
                               [30, 10, 70, 50]]),
        "labels": torch.tensor([1, 0, 1, 2, 2]),
        "scores": torch.tensor([0.41, 0.62, 0.30, 0.25, 0.35]),
    }
    defects = defects_from_detections(detections, ["crack", "scratch", "void"])
    assert [(d.label, round(d.score, 2)) for d in defects] == [("crack", 0.62), ("void", 0.35), ("scratch", 0.30)]
    first = defects[0]
    assert first.box == (11.0, 10.0, 50.0, 51.0)  # the better box is kept as the detector gave it
    assert [(label, round(score, 2)) for label, score in first.alternatives] == [("scratch", 0.41), ("void", 0.25)]
    assert first.label_text == "crack (or scratch 0.41, void 0.25)"
    assert defects[1].alternatives == () and defects[1].label_text == "void"  # IoU 0.33 with the crack: its own place
    assert defects_from_detections({"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                                    "scores": torch.zeros(0)}, ["crack"]) == []

    result = InspectionResult(request_id=3, material=None, defects=defects, attention=None, timings_ms={"total": 1.0},
                              device="CPU", models=(), thresholds={}, recipe="r", image_size=(480, 640))
    assert InspectionResult.from_dict(result.to_dict()).defects == defects  # batch review keeps them
    record = result_audit_fields(result)["defects"]
    assert record[0]["alternatives"] == [{"class": "scratch", "score": 0.41}, {"class": "void", "score": 0.25}]
    assert "alternatives" not in record[1]

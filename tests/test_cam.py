"""Attention maps: Grad-CAM and EigenCAM maths, hook hygiene, fixed-range scaling, calibration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn

from station.ml.cam import (
    EigenCam,
    GradCam,
    calibrate_reference,
    principal_component_maps,
    reference_range,
    scale_to_reference,
    to_image_size,
)
from station.ml.cards import CamReference, ModelCard, Preprocessing
from station.ml.letterbox import letterbox


class RedDetector(nn.Module):
    """conv -> ReLU -> GAP -> linear, where class 0 is "how red": its evidence is where red is."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        self.act = nn.ReLU()
        self.head = nn.Linear(2, 2)
        self.cam_target_layer = "act"
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5]]).view(2, 3, 1, 1))
            self.head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
            self.head.bias.zero_()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.features(x)).mean(dim=(2, 3)))


def _red_card() -> ModelCard:
    return ModelCard(
        name="red",
        task="classification",
        architecture="none",
        build_kwargs={},
        classes=["red", "green"],
        input_size=(3, 16, 16),
        preprocessing=Preprocessing(resize="resize", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
    )


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_grad_cam_finds_the_evidence_and_leaves_no_hooks():
    model = RedDetector().eval()
    image = torch.zeros(1, 3, 16, 16)
    image[0, 0, 4:8, 10:14] = 1.0  # a red square
    with GradCam(model, model.cam_target_layer) as cam:
        logits, maps = cam(image)
    assert torch.allclose(logits, model(image))
    assert maps.shape == (1, 16, 16)
    assert maps[0, 4:8, 10:14].min() > 0 and maps[0, :4].max() == 0
    assert _hook_count(model) == 0
    with pytest.raises(RuntimeError, match="inside"):
        GradCam(model, model.cam_target_layer)(image)


def test_grad_cam_of_a_uniform_image_is_flat():
    model = RedDetector().eval()
    with GradCam(model, model.cam_target_layer) as cam:
        _, maps = cam(torch.full((2, 3, 8, 8), 0.3))
    assert float(maps.std()) < 1e-6


def test_unknown_target_layer_is_named():
    with pytest.raises(ValueError, match="no layer 'nope'"):
        GradCam(RedDetector(), "nope")


def test_principal_component_map():
    uniform = torch.ones(1, 8, 6, 6) * torch.arange(8.0).view(1, 8, 1, 1)
    assert principal_component_maps(uniform).abs().max() < 1e-5  # nothing stands out: cold
    blob = uniform.clone()
    blob[0, :, 2:4, 3:5] += 5.0  # stronger activation in one place
    maps = principal_component_maps(blob)
    assert maps.shape == (1, 6, 6)
    assert maps[0, 2:4, 3:5].min() > 0 and maps[0, 0, 0] == 0
    # the sign follows activation strength whatever the decomposition returned
    assert torch.allclose(principal_component_maps(blob), maps)


def test_eigen_cam_hooks_live_only_inside_the_with_block():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    with torch.inference_mode():
        with EigenCam(model, "1") as cam:
            assert _hook_count(model) == 1
            model(torch.rand(2, 3, 8, 8))
            assert cam.maps().shape == (2, 8, 8)
        assert _hook_count(model) == 0
        with pytest.raises(ZeroDivisionError), EigenCam(model, "1"):
            raise ZeroDivisionError
        assert _hook_count(model) == 0
        with EigenCam(model, "1") as cam, pytest.raises(RuntimeError, match="no forward pass"):
            cam.maps()


def test_scale_to_reference_is_fixed_not_min_max():
    raw = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    assert scale_to_reference(raw, 1.0, 3.0).tolist() == [[0.0, 0.0, 0.5, 1.0, 1.0]]
    faint = torch.full((4, 4), 0.2)
    faint[0, 0] = 0.25
    assert scale_to_reference(faint, 1.0, 3.0).max() == 0  # a faint map stays cold
    with pytest.raises(ValueError, match="high > low"):
        scale_to_reference(raw, 2.0, 2.0)


def test_to_image_size_undoes_the_letterbox():
    image = np.zeros((60, 120, 3), np.uint8)
    _, info = letterbox(image, 64)  # 120x60 -> 64x32, padded 16 rows top and bottom
    maps = torch.zeros(1, 8, 8)
    maps[0, 2:6, 0:2] = 1.0  # input rows 16..48 hold the image; columns 0..16 its left part
    restored = to_image_size(maps, (60, 120), info)
    assert restored.shape == (1, 60, 120)
    assert restored[0, 20:40, :10].min() > 0.5 and restored[0, :, 60:].max() < 0.1
    plain = to_image_size(torch.ones(2, 4, 4), (30, 50))
    assert plain.shape == (2, 30, 50) and torch.allclose(plain, torch.ones_like(plain))


def test_reference_range():
    evidence = [np.linspace(0, 10, 1001)]
    no_baseline = reference_range(evidence)
    assert no_baseline["low"] == pytest.approx(5.0) and no_baseline["high"] == pytest.approx(9.95)
    with_baseline = reference_range(evidence, [np.full(10, 2.0)])
    assert with_baseline["low"] == pytest.approx(2.0) and with_baseline["high"] == pytest.approx(9.95)
    # a blank frame answered above the real images' median: the range starts at the median,
    # so real maps keep their contrast (the image check stops blank frames)
    strong_blank = reference_range(evidence, [np.full(10, 20.0)])
    assert strong_blank["low"] == pytest.approx(5.0) and strong_blank["high"] == pytest.approx(9.95)
    with pytest.raises(ValueError):
        reference_range([])


def test_calibrate_reference_puts_featureless_frames_at_zero():
    model = RedDetector().eval()
    card = _red_card()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    reference = calibrate_reference(model, card, images)
    assert isinstance(reference, CamReference) and reference.high > reference.low
    assert not model.training


def test_a_classifier_gets_a_range_per_predicted_class():
    model = RedDetector().eval()
    card = _red_card()
    rng = np.random.default_rng(0)

    def tinted(channel: int) -> np.ndarray:
        image = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
        image[..., channel] = rng.integers(150, 255, (32, 32), dtype=np.uint8)
        return image

    reference = calibrate_reference(model, card, [tinted(0) for _ in range(4)] + [tinted(1) for _ in range(4)])
    # class 0's logit weighs its evidence twice as much: its maps run hotter
    assert set(reference.per_class) == {"red", "green"}
    assert reference.range_for("red")[1] > 1.5 * reference.range_for("green")[1]
    assert reference.range_for(None) == reference.range_for("blue") == (reference.low, reference.high)
    few = calibrate_reference(model, card, [tinted(0) for _ in range(4)] + [tinted(1)])
    assert set(few.per_class) == {"red"}  # one green image is too few for a range of its own
    restored = ModelCard.from_dict(dataclasses.replace(card, cam_reference=reference).to_dict())
    assert restored.cam_reference.range_for("green") == reference.range_for("green")


def test_featureless_frames_for_every_input_mode():
    from station.ml.cam import featureless_frames

    for mode, channels in (("rgb", 3), ("gray", 1), ("gray+ref", 2), ("rgb+ref", 6)):
        card = ModelCard(
            name="m",
            task="detection",
            architecture="none",
            build_kwargs={},
            classes=["a"],
            input_size=(channels, 32, 32),
            input_mode=mode,
            preprocessing=Preprocessing(resize="letterbox", mean=(0.5,) * channels, std=(1.0,) * channels),
        )
        frames = featureless_frames(20, 30, card)
        assert [f.shape for f in frames] == [(20, 30, 3)] * 2
        assert frames[0][0, 0].tolist() == [128, 128, 128] and frames[1][0, 0].tolist() == [114, 114, 114]

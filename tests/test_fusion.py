"""Batch normalisations folded into their convolutions: the same network, fewer operations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

from station.inference.loading import load_for_role
from station.ml.cards import load_model
from station.ml.fusion import fold_batch_norms
from station.ml.registry import build_model

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_a_trained_detector_folded_gives_the_same_outputs_and_keeps_its_module_names():
    plain, card = load_model(MODELS / "wbam-ffem-neu")
    folded = load_for_role("detector", MODELS / "wbam-ffem-neu", "detection").model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert [name for name, _ in plain.named_modules()] == [name for name, _ in folded.named_modules()]
    assert not any(p.requires_grad for p in folded.parameters())
    images = torch.rand(2, *card.input_size)
    with torch.inference_mode():
        expected = plain.predict(images, score_thresh=0.05)
        found = folded.predict(images, score_thresh=0.05)
    for mine, theirs in zip(found, expected):
        torch.testing.assert_close(mine["boxes"], theirs["boxes"], rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(mine["scores"], theirs["scores"], rtol=1e-4, atol=1e-5)


def test_only_a_normalisation_that_follows_a_convolution_in_a_sequence_is_folded():
    side = nn.Module()
    side.conv, side.norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)  # attributes, not a sequence: data flow unknown
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4), side).eval()
    assert fold_batch_norms(model) == 1
    assert isinstance(model[1], nn.Identity) and isinstance(model[3], nn.BatchNorm2d)
    assert isinstance(side.norm, nn.BatchNorm2d)


def test_folding_refuses_a_model_in_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(build_model("wbam-ffem-nano", num_classes=2).train())

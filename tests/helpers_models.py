"""Tiny random-init model folders and recipes for tests (seconds to build, no training)."""

from __future__ import annotations

from pathlib import Path

import torch

from station.ml.cards import CamReference, ModelCard, Preprocessing, Thresholds, save_model
from station.ml.registry import build_model
from station.synth import DEFECT_CLASSES, MATERIALS


def make_tiny_classifier(directory: Path, size: int = 64, uncertain_confidence: float = 0.5) -> ModelCard:
    torch.manual_seed(0)
    kwargs = {"num_classes": len(MATERIALS), "in_chans": 3}
    model = build_model("cti-tiny", **kwargs)
    card = ModelCard(
        name="tiny-material",
        task="classification",
        architecture="cti-tiny",
        build_kwargs=kwargs,
        classes=list(MATERIALS),
        input_size=(3, size, size),
        preprocessing=Preprocessing(resize="resize"),
        thresholds=Thresholds(uncertain_confidence=uncertain_confidence),
        cam_reference=CamReference(low=0.0, high=1.0),
    )
    return save_model(directory, model, card)


def make_tiny_detector(directory: Path, size: int = 96, input_mode: str = "rgb") -> ModelCard:
    torch.manual_seed(0)
    kwargs = {"num_classes": len(DEFECT_CLASSES), "input_mode": input_mode}
    model = build_model("wbam-ffem-nano", **kwargs)
    channels = {"rgb": 3, "gray": 1, "gray+ref": 2, "rgb+ref": 6}[input_mode]
    card = ModelCard(
        name="tiny-defects",
        task="detection",
        architecture="wbam-ffem-nano",
        build_kwargs=kwargs,
        classes=list(DEFECT_CLASSES),
        input_size=(channels, size, size),
        input_mode=input_mode,
        preprocessing=Preprocessing(resize="letterbox", mean=(0.0,) * channels, std=(1.0,) * channels),
        thresholds=Thresholds(score=0.05, nms_iou=0.5, max_det=20),
        cam_reference=CamReference(low=0.0, high=1.0),
    )
    return save_model(directory, model, card)


def make_tiny_recipe(root: Path, name: str = "Tiny IC recipe", *, classifier: bool = True, detector: bool = True):
    """A Recipe whose models are tiny random-init folders under ``root``."""
    from station.inference import Recipe

    classifier_dir = root / "tiny-material"
    detector_dir = root / "tiny-defects"
    if classifier and not classifier_dir.exists():
        make_tiny_classifier(classifier_dir)
    if detector and not detector_dir.exists():
        make_tiny_detector(detector_dir)
    return Recipe(
        name=name,
        description="tiny random-init models for tests",
        classifier=str(classifier_dir) if classifier else None,
        detector=str(detector_dir) if detector else None,
        uncertain_below=0.5,
        decap_methods={"plastic": "chemical (acid)", "metallic": "laser", "ceramic": "mechanical"},
    )

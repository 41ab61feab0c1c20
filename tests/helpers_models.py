"""Tiny random-init model folders and recipes for tests (seconds to build, no training)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from station.ml.cards import CamReference, ModelCard, Preprocessing, Thresholds, save_model
from station.ml.registry import build_model
from station.synth import DEFECT_CLASSES, MATERIALS

_CHANNELS = {"rgb": 3, "gray": 1, "gray+ref": 2, "rgb+ref": 6}


def _save(directory: Path, model: torch.nn.Module, card: ModelCard, calibration_frames, templates) -> ModelCard:
    """Save, with the CAM range calibrated on ``calibration_frames`` when given, else [0, 1]."""
    if calibration_frames is None:
        return save_model(directory, model, dataclasses.replace(card, cam_reference=CamReference(low=0.0, high=1.0)))
    from station.ml.cam import calibrate_reference

    reference = calibrate_reference(model.eval(), card, calibration_frames, templates)
    return save_model(directory, model, dataclasses.replace(card, cam_reference=reference))


def make_tiny_classifier(
    directory: Path,
    size: int = 64,
    uncertain_confidence: float = 0.5,
    temperature: float = 1.0,
    seed: int = 0,
    name: str = "tiny-material",
    calibration_frames: Sequence[np.ndarray] | None = None,
) -> ModelCard:
    torch.manual_seed(seed)
    kwargs = {"num_classes": len(MATERIALS), "in_chans": 3}
    model = build_model("cti-tiny", **kwargs)
    card = ModelCard(
        name=name,
        task="classification",
        architecture="cti-tiny",
        build_kwargs=kwargs,
        classes=list(MATERIALS),
        input_size=(3, size, size),
        preprocessing=Preprocessing(resize="resize"),
        temperature=temperature,
        thresholds=Thresholds(uncertain_confidence=uncertain_confidence),
    )
    return _save(directory, model, card, calibration_frames, None)


def make_tiny_detector(
    directory: Path,
    size: int = 96,
    input_mode: str = "rgb",
    score: float = 0.05,
    max_det: int = 20,
    seed: int = 0,
    name: str = "tiny-defects",
    calibration_frames: Sequence[np.ndarray] | None = None,
    calibration_templates: Sequence[np.ndarray] | None = None,
) -> ModelCard:
    torch.manual_seed(seed)
    kwargs = {"num_classes": len(DEFECT_CLASSES), "input_mode": input_mode}
    model = build_model("wbam-ffem-nano", **kwargs)
    channels = _CHANNELS[input_mode]
    card = ModelCard(
        name=name,
        task="detection",
        architecture="wbam-ffem-nano",
        build_kwargs=kwargs,
        classes=list(DEFECT_CLASSES),
        input_size=(channels, size, size),
        input_mode=input_mode,
        preprocessing=Preprocessing(resize="letterbox", mean=(0.0,) * channels, std=(1.0,) * channels),
        thresholds=Thresholds(score=score, nms_iou=0.5, max_det=max_det),
    )
    return _save(directory, model, card, calibration_frames, calibration_templates)


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

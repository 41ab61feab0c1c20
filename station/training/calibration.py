"""What a model card learns from the validation set after training: temperature, default
detection threshold, the fixed CAM range, and the card's validation metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from station.ml.cards import CamReference, ModelCard
from station.training.datasets import Sample, load_image
from station.training.deeppcb import deeppcb_metrics, match_official
from station.training.evaluate import ClassifierOutputs, DetectorOutputs, run_classifier, run_detector
from station.training.metrics import (
    Detections,
    classification_metrics,
    detection_metrics,
    match_detections,
    expected_calibration_error,
    negative_log_likelihood,
)

log = logging.getLogger(__name__)

TEMPERATURE_RANGE = (0.05, 20.0)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling (Guo et al., ICML 2017): the T minimising the NLL of softmax(logits / T)
    on validation, by LBFGS on log T. Bounded to ``TEMPERATURE_RANGE``: a perfectly separated
    validation set would otherwise push T towards 0."""
    logits = logits.detach().float().cpu().clone()  # clone: may come from inference mode
    labels = labels.detach().long().cpu().clone()
    if len(labels) == 0:
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    low, high = TEMPERATURE_RANGE
    temperature = float(log_t.detach().exp().clamp(low, high))
    return temperature if torch.isfinite(torch.tensor(temperature)) else 1.0


def best_score_threshold(
    predictions: Detections,
    targets: Detections,
    num_classes: int,
    deeppcb: bool = False,
    floor: float = 0.05,
) -> float:
    """The score threshold with the best validation F-score (at least ``floor``): COCO-style
    per-class matching at IoU 0.5, or the DeepPCB benchmark's rule (``station.training.deeppcb``)."""
    table = match_official(predictions, targets, num_classes) if deeppcb else match_detections(
        predictions, targets, num_classes, 0.5)
    threshold, *_ = table.best_threshold()
    return max(float(threshold), floor)


def cam_reference(model: nn.Module, card: ModelCard, samples: Sequence[Sample], max_images: int = 32,
                  seed: int = 0) -> CamReference | None:
    """The card's fixed CAM range from up to ``max_images`` validation images (``station.ml.cam``'s
    ``calibrate_reference``: featureless frames give ``low``, the images' strongest evidence ``high``).
    None for a network without a CAM layer."""
    from station.ml.cam import calibrate_reference

    if getattr(model, "cam_target_layer", None) is None or not samples:
        return None
    order = np.random.default_rng(seed).permutation(len(samples))[:max_images]
    chosen = [samples[i] for i in sorted(order)]
    images = [load_image(sample.image_path) for sample in chosen]
    references = None
    if card.uses_reference:
        references = [load_image(sample.reference_path) for sample in chosen]  # type: ignore[arg-type]
    try:
        return calibrate_reference(model, card, images, references)
    except (RuntimeError, TypeError, ValueError) as exc:  # e.g. a peer whose CAM layer is not [B, C, H, W]
        log.warning("no CAM reference for %s: %s", card.architecture, exc)
        return None


def calibrate_card(model: nn.Module, card: ModelCard, val_loader: DataLoader, device: torch.device, *,
                   deeppcb: bool, amp: str = "off", seed: int = 0,
                   outputs: ClassifierOutputs | DetectorOutputs | None = None,
                   progress: bool = False) -> ModelCard:
    """``card`` with its validation calibration and metrics (the same numbers `station evaluate`
    gives): the temperature (classifiers) or the best-F score threshold (detectors, through the
    card's ``test_time_views``), the CAM range, and the metrics. ``outputs``: the model's
    validation outputs when already at hand; ``progress`` shows a progress bar over the pass."""
    classes = list(card.classes)
    val_samples = val_loader.dataset.samples  # type: ignore[attr-defined]
    if amp == "bf16" or (device.type == "cuda" and amp != "off") or card.test_time_views > 1:
        # the card's figures are full precision, as `station evaluate` computes them on a CPU;
        # the per-epoch outputs were taken under autocast (they can differ by an image or two)
        # and with one view
        outputs = None
    if card.task == "classification":
        if not isinstance(outputs, ClassifierOutputs):
            outputs = run_classifier(model, val_loader, device, "off", progress=progress)
        temperature = fit_temperature(outputs.logits, outputs.labels)
        metrics = classification_metrics(outputs.labels, outputs.logits.argmax(1), classes).summary()
        metrics["ece"] = expected_calibration_error(outputs.logits, outputs.labels, temperature)
        cam = cam_reference(model, replace(card, temperature=temperature), val_samples, seed=seed)
        log.info("temperature %.3f (validation NLL %.4f -> %.4f)", temperature,
                 negative_log_likelihood(outputs.logits, outputs.labels),
                 negative_log_likelihood(outputs.logits, outputs.labels, temperature))
        return replace(card, temperature=temperature, cam_reference=cam, metrics=metrics)
    if not isinstance(outputs, DetectorOutputs):
        outputs = run_detector(model, val_loader, device, nms_iou=card.thresholds.nms_iou, amp="off",
                               views=card.test_time_views, progress=progress)
    score = best_score_threshold(outputs.predictions, outputs.targets, len(classes), deeppcb=deeppcb)
    thresholds = replace(card.thresholds, score=round(score, 4), uncertain_confidence=round(score / 2, 4))
    metrics = detection_metrics(outputs.predictions, outputs.targets, classes).summary()
    if deeppcb:
        metrics |= deeppcb_metrics(outputs.predictions, outputs.targets, classes,
                                   card_threshold=thresholds.score).summary()
    cam = cam_reference(model, replace(card, thresholds=thresholds), val_samples, seed=seed)
    log.info("score threshold %.3f (best validation F-score)", thresholds.score)
    return replace(card, thresholds=thresholds, cam_reference=cam, metrics=metrics)

"""Batched inference for folder review: many images per forward pass, no attention maps.

``Engine.run`` inspects one image at a time (what Capture & Classify needs). A folder review
wants throughput instead: the preprocessing (:func:`prepare`) runs on the decode threads, and
:func:`run_batch` stacks the prepared inputs and calls each network once per batch, through the
engine's public attributes (its loaded models and cards, thresholds, recipe and device). The
numbers are those of ``Engine.run``: the same card preprocessing, temperature-scaled softmax,
uncertain threshold, detector thresholds and box mapping; only attention maps are left out
(the runner uses ``Engine.run`` per image when they are wanted).

On CUDA the batch runs under autocast (bf16 where supported, else fp16) in channels-last
memory, like the engine; an out-of-memory error halves the batch and tries again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from station.inference import (
    Defect,
    Engine,
    InspectionResult,
    InvalidInputError,
    MaterialCall,
    MissingReferenceError,
)
from station.inference.defects import defects_from_detections
from station.inference.image_check import check_frame, route_unfit_frame
from station.ml.cards import PreparedInput, prepare_input
from station.ml.tta import predict_with_views

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedImage:
    """One image ready for the networks: each model's input tensor, made on a decode thread."""

    image_hw: tuple[int, int]
    classifier_input: PreparedInput | None
    detector_input: PreparedInput | None
    preprocess_ms: float
    image_problems: tuple[str, ...] = ()  # the recipe's image check (station.inference.image_check)


def prepare(engine: Engine, image: np.ndarray, reference: np.ndarray | None = None) -> PreparedImage:
    """The card-defined inputs of ``engine``'s models for an RGB uint8 ``image``.

    Thread-safe (reads the cards only). Raises ``InvalidInputError`` for an image the engine
    cannot inspect (e.g. a reference of another size).
    """
    start = time.perf_counter()
    if engine.recipe.use_reference and reference is None:
        raise MissingReferenceError(
            f"recipe {engine.recipe.name!r} compares against a defect-free template image; none was given"
        )
    try:
        classifier_input = prepare_input(image, engine.classifier.card) if engine.classifier is not None else None
        detector_input = prepare_input(image, engine.detector.card, reference) if engine.detector is not None else None
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    problems = check_frame(engine.recipe.image_check, image)
    height, width = image.shape[:2]
    return PreparedImage((int(height), int(width)), classifier_input, detector_input, (time.perf_counter() - start) * 1e3,
                         problems)


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def _stack(inputs: Sequence[PreparedInput], device: torch.device) -> torch.Tensor:
    batch = torch.stack([p.tensor for p in inputs])  # [B, C, H, W]
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _classify(engine: Engine, batch: Sequence[PreparedImage]) -> list[MaterialCall]:
    loaded = engine.classifier
    assert loaded is not None
    card = loaded.card
    images = _stack([p.classifier_input for p in batch], engine.device)  # type: ignore[misc]
    with torch.inference_mode(), _autocast(engine.device):
        logits = loaded.model(images)
    # temperature scaling (Guo et al. 2017): calibrated probabilities, same ranking
    probabilities = torch.softmax(logits.float() / card.temperature, dim=1).cpu().numpy()
    calls = []
    for row in probabilities:
        best = int(np.argmax(row))
        confidence = float(row[best])
        material = card.classes[best]
        calls.append(MaterialCall(
            classes=tuple(card.classes),
            probabilities=tuple(float(p) for p in row),
            material=material,
            confidence=confidence,
            uncertain=confidence < engine.thresholds["uncertain_below"],
            decap_method=engine.recipe.decap_methods[material],
        ))
    return calls


def _detect(engine: Engine, batch: Sequence[PreparedImage]) -> list[list[Defect]]:
    loaded = engine.detector
    assert loaded is not None
    card = loaded.card
    inputs = [p.detector_input for p in batch]
    images = _stack(inputs, engine.device)  # type: ignore[arg-type]
    letterboxes = [p.letterbox for p in inputs]  # type: ignore[union-attr]
    thresholds = engine.thresholds
    with torch.inference_mode(), _autocast(engine.device):
        detections = predict_with_views(
            loaded.model,
            images,
            card.test_time_views,
            score_thresh=thresholds["score_threshold"],
            nms_iou=thresholds["nms_iou"],
            max_det=int(thresholds["max_detections"]),
            letterbox=letterboxes if all(info is not None for info in letterboxes) else None,
        )
    return [defects_from_detections(found, card.classes) for found in detections]


def run_batch(engine: Engine, batch: Sequence[PreparedImage], request_ids: Sequence[int]) -> list[InspectionResult]:
    """One result per prepared image, in order; the stage timings are the batch's, shared evenly."""
    if len(batch) != len(request_ids):
        raise ValueError(f"{len(batch)} images but {len(request_ids)} request ids")
    if not batch:
        return []
    try:
        return _run_batch(engine, batch, request_ids)
    except torch.cuda.OutOfMemoryError:
        if len(batch) == 1:
            raise
        half = len(batch) // 2
        log.warning("CUDA out of memory with a batch of %d on %s; splitting it", len(batch), engine.device_description)
        torch.cuda.empty_cache()
        return run_batch(engine, batch[:half], request_ids[:half]) + run_batch(engine, batch[half:], request_ids[half:])


def _run_batch(engine: Engine, batch: Sequence[PreparedImage], request_ids: Sequence[int]) -> list[InspectionResult]:
    device = engine.device
    count = len(batch)
    calls: list[MaterialCall | None] = [None] * count
    defects: list[list[Defect]] = [[] for _ in range(count)]
    classifier_ms = detector_ms = 0.0
    if engine.classifier is not None:
        start = time.perf_counter()
        calls = list(_classify(engine, batch))
        _sync(device)
        classifier_ms = (time.perf_counter() - start) * 1e3 / count
    if engine.detector is not None:
        start = time.perf_counter()
        defects = _detect(engine, batch)
        _sync(device)
        detector_ms = (time.perf_counter() - start) * 1e3 / count
    models = engine.models
    thresholds = dict(engine.thresholds)
    results = []
    for index, prepared in enumerate(batch):
        timings = {
            "preprocess": prepared.preprocess_ms,
            "classifier": classifier_ms,
            "detector": detector_ms,
            "cam": 0.0,
            "total": prepared.preprocess_ms + classifier_ms + detector_ms,
        }
        call = calls[index]
        results.append(InspectionResult(
            request_id=int(request_ids[index]),
            material=route_unfit_frame(call, prepared.image_problems) if call is not None else None,
            defects=defects[index],
            attention=None,
            timings_ms=timings,
            device=engine.device_description,
            models=models,
            thresholds=dict(thresholds),
            recipe=engine.recipe.name,
            image_size=prepared.image_hw,
            image_problems=prepared.image_problems,
        ))
    return results

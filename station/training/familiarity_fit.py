"""Fit a model's familiarity check (``station.inference.familiarity``) on its own split.

The statistics (class means and a shrunk shared covariance of pooled features, per layer) come
from up to ``max_train`` training images; each layer's limit is the ``quantile`` of the
validation images' distances, so about ``1 - quantile`` of genuine validation parts go to a
person per layer; the joint limit is the same quantile of the mean of each validation image's
distance-to-limit ratios (``combined_score``). No foreign frame takes part: the limits know only
what a part looks like, so no family of foreign frames is tuned for (``station.training.foreign`` builds the set that
measures them). ``station calibrate`` calls this; ``--familiarity only`` does nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from station.inference.familiarity import (FAMILIARITY_FILE, FeatureStatistics, FeatureTap, combined_score,
                                          save_statistics)
from station.ml.cards import FamiliarityInfo, ModelCard, load_model, prepare_input, save_card
from station.training.datasets import ClassificationSample, Sample, load_image, read_dataset
from station.training.evaluate import card_split_file
from station.training.splits import Split, SplitError

log = logging.getLogger(__name__)

# an early layer (texture, noise, colour statistics) and the one the head reads (what a part is)
DEFAULT_LAYERS = {"classification": ("stages.1", "head.pool"), "detection": ("backbone.stages.1", "ffem")}
DEFAULT_QUANTILE = 0.985
SHRINKAGE = 0.1


def pooled_features(model: nn.Module, card: ModelCard, layers: Sequence[str],
                    frames: Iterable[tuple[np.ndarray, np.ndarray | None]], batch: int = 16) -> list[np.ndarray]:
    """[N, D_l] pooled features per layer of ``(image, reference)`` frames, as the engine catches them."""
    taps = [FeatureTap(model, layer) for layer in layers]
    collected: list[list[np.ndarray]] = [[] for _ in layers]
    pending: list[torch.Tensor] = []

    def flush() -> None:
        for tap in taps:
            tap.arm()
        with torch.inference_mode():
            model(torch.stack(pending))
        for store, tap in zip(collected, taps):
            store.append(tap.take().cpu().numpy())  # type: ignore[union-attr]
        pending.clear()

    try:
        for image, reference in frames:
            pending.append(prepare_input(image, card, reference).tensor)
            if len(pending) == batch:
                flush()
        if pending:
            flush()
    finally:
        for tap in taps:
            tap.close()
    return [np.concatenate(store) if store else np.zeros((0, 0)) for store in collected]


def sample_frames(samples: Sequence[Sample]) -> Iterable[tuple[np.ndarray, np.ndarray | None]]:
    for sample in samples:
        reference = getattr(sample, "reference_path", None)
        yield load_image(sample.image_path), (load_image(reference) if reference is not None else None)


def _subset(samples: Sequence[Sample], keys: set[str], limit: int | None, seed: int) -> list[Sample]:
    chosen = [sample for sample in samples if sample.key in keys]
    if limit is not None and len(chosen) > limit:
        picks = np.random.default_rng(seed).permutation(len(chosen))[:limit]
        chosen = [chosen[i] for i in sorted(picks)]
    return chosen


def fit_familiarity(model_dir: str | Path, data: str | Path, fmt: str | None = None, *,
                    layers: Sequence[str] | None = None, quantile: float = DEFAULT_QUANTILE,
                    max_train: int = 600, max_val: int | None = None, seed: int = 0,
                    command_line: str = "") -> ModelCard:
    """Fit and write ``model_dir``'s familiarity statistics and limits (``familiarity.safetensors``
    and the card's ``familiarity``); the weights are not touched. Returns the new card."""
    model_dir = Path(model_dir)
    if not 0.5 <= quantile < 1.0:
        raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
    model, card = load_model(model_dir, "cpu")
    layers = list(layers or DEFAULT_LAYERS[card.task])
    split_path = card_split_file(model_dir, card)
    if split_path is None or not split_path.is_file():
        raise SplitError(f"{model_dir} has no split file: the familiarity check is fitted on its training and "
                         "validation images")
    split = Split.load(split_path)
    index = read_dataset(data, fmt or card.data.format, classes=card.classes)
    train = _subset(index.samples, set(split.subsets.get("train", ())), max_train, seed)
    val = _subset(index.samples, set(split.subsets.get("val", ())), max_val, seed + 1)
    if len(train) < 20 or len(val) < 20:
        raise SplitError(f"{data}: {len(train)} training and {len(val)} validation images of {split_path} found; "
                         "the familiarity fit needs at least 20 of each")
    log.info("familiarity of %s: statistics from %d training images, limits from %d validation images",
             card.name, len(train), len(val))
    labels = [s.label for s in train] if all(isinstance(s, ClassificationSample) for s in train) else None
    train_features = pooled_features(model, card, layers, sample_frames(train))
    val_features = pooled_features(model, card, layers, sample_frames(val))
    statistics, limits, ratios = [], [], []
    for train_f, val_f in zip(train_features, val_features):
        stats = FeatureStatistics.fit(train_f, labels, SHRINKAGE)
        distances = stats.distances(val_f)
        limit = float(np.quantile(distances, quantile))
        statistics.append(stats)
        limits.append(round(limit, 4))
        ratios.append(distances / limit)
    layer_ratios = np.stack(ratios, axis=1)
    joint_limit = round(float(np.quantile(layer_ratios.mean(axis=1), quantile)), 4)
    flagged = float(np.mean(combined_score(layer_ratios, joint_limit) > 1.0))
    sha256 = save_statistics(model_dir / FAMILIARITY_FILE, layers, statistics)
    fitted = {
        "method": "Mahalanobis distance to the nearest class mean (shared covariance shrunk by "
                  f"{SHRINKAGE}) of per-channel mean and standard deviation of each layer's activations",
        "statistics_from": f"{len(train)} training images of {split_path.name} ({data})",
        "limits_from": f"{len(val)} validation images of {split_path.name}; no foreign frame used",
        "joint_limit_from": "the same quantile of the validation images' mean distance-to-limit ratio",
        "quantile": quantile,
        "counts": {"train": len(train), "val": len(val)},
        "validation_flag_rate": round(flagged, 4),
        "command": command_line,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    card = dataclasses.replace(card, familiarity=FamiliarityInfo(layers, limits, FAMILIARITY_FILE, sha256, fitted,
                                                                   joint_limit))
    save_card(model_dir, card)
    log.info("familiarity limits %s, joint %s; %.1f%% of validation images above one", limits, joint_limit,
             100 * flagged)
    return card

"""Is this a part of the kind the model knows? An out-of-distribution score on pooled features.

A classifier names one of its materials for any frame, and its calibrated confidence is
calibrated on packages only: a grey noise frame came out "metallic 96 %". So before a result is
trusted, the features the network computed anyway are compared with those of the parts it was
trained on: the Mahalanobis distance (Lee et al., "A simple unified framework for detecting
out-of-distribution samples and adversarial attacks", NeurIPS 2018) of the globally pooled
activations of the card's ``familiarity.layers`` (an early stage, and the classifier's pre-logit
vector or the detector's enhanced pyramid), to the nearest class mean with a shared, shrunk covariance
(detectors: one mean). A frame whose distance exceeds a layer's limit is unfamiliar, and so is one
whose layers are each a little far: the mean of its distance-to-limit ratios above the card's
``joint_limit`` (a frame of another real dataset sat just under every layer's limit at once).

The means and the precision matrices live next to the weights in ``familiarity.safetensors``;
the card's ``familiarity`` names the file's sha256 (so an approval of the card covers it), the
layers, their limits and how they were fitted (``station calibrate``,
``station.training.familiarity_fit``).

``FeatureTap`` catches the layer's output with a forward hook during the engine's own forward
pass (no second pass). Its storage is per thread: batch review runs one engine on several
inference lanes at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

FAMILIARITY_FILE = "familiarity.safetensors"
UNFAMILIAR_BANNER = "NO PART / UNFAMILIAR – route to expert"
UNFAMILIAR_PREFIX = "NO PART / UNFAMILIAR: "


@dataclass(frozen=True)
class FamiliarityCheck:
    """One frame's answer. ``scores``: per model whose card has statistics, its largest feature
    distance over its layers' limits (above 1.0: unfamiliar); ``part_problem``: why the recipe's
    part localiser (``station.inference.part_region``) found no part, "" when it found one."""

    scores: dict[str, float]
    part_problem: str = ""

    @property
    def familiar(self) -> bool:
        return not self.part_problem and all(score <= 1.0 for score in self.scores.values())

    @property
    def reasons(self) -> tuple[str, ...]:
        """In words for the operator and the record; () for a familiar frame."""
        found = [self.part_problem] if self.part_problem else []
        over = [f"{name} {score:.2f}× its limit" for name, score in self.scores.items() if score > 1.0]
        if over:
            found.append("not a part of the kind the models know: its features are far from every training "
                         f"part (feature distance {'; '.join(over)})")
        return tuple(found)

    def to_dict(self) -> dict[str, Any]:
        return {"familiar": self.familiar, "scores": {k: _finite(v) for k, v in self.scores.items()},
                "part_problem": self.part_problem}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FamiliarityCheck:
        scores = {k: float("inf") if v is None else float(v) for k, v in data.get("scores", {}).items()}
        return cls(scores, str(data.get("part_problem", "")))


def _finite(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)  # JSON has no inf: None is "no features"


def pooled(output: Any, with_spread: bool = True) -> torch.Tensor:
    """A layer's output as one vector per image: each [B, C, H, W] map's mean over H and W (and,
    ``with_spread``, its standard deviation: noise and textures differ from parts there more
    than in the mean), [B, C] kept, a list of maps concatenated -> [B, D] float32."""
    tensors = output if isinstance(output, (list, tuple)) else [output]
    parts = []
    for tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"familiarity layer must output tensors, got {type(tensor).__name__}")
        tensor = tensor.detach().float()
        if tensor.ndim != 4:
            parts.append(tensor.flatten(1))
            continue
        parts.append(tensor.mean(dim=(-2, -1)))
        if with_spread and tensor.shape[-2] * tensor.shape[-1] > 1:
            parts.append(tensor.std(dim=(-2, -1)))
    return torch.cat(parts, dim=1)


class FeatureTap:
    """Keeps the pooled output of ``model.<layer_name>`` of the last forward pass on this thread,
    between ``arm()`` and ``take()``."""

    def __init__(self, model: nn.Module, layer_name: str) -> None:
        try:
            module = model.get_submodule(layer_name)
        except AttributeError as exc:
            raise ValueError(f"{type(model).__name__} has no layer {layer_name!r} for familiarity: {exc}") from None
        self._local = threading.local()
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if getattr(self._local, "armed", False):
            self._local.features = pooled(output)

    def arm(self) -> None:
        self._local.armed, self._local.features = True, None

    def take(self) -> torch.Tensor | None:
        features = getattr(self._local, "features", None)
        self._local.armed, self._local.features = False, None
        return features

    def close(self) -> None:
        self._handle.remove()


@dataclass(frozen=True, eq=False)
class FeatureStatistics:
    """Class means ``[K, D]`` and a shared precision matrix ``[D, D]`` of pooled features."""

    means: np.ndarray
    precision: np.ndarray

    def distances(self, features: np.ndarray) -> np.ndarray:
        """[N, D] -> [N]: the Mahalanobis distance to the nearest mean."""
        features = np.asarray(features, dtype=np.float64)
        centred = features[:, None, :] - self.means[None, :, :]  # [N, K, D]
        squared = np.einsum("nkd,de,nke->nk", centred, self.precision, centred)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[int] | None = None, shrinkage: float = 0.05) -> FeatureStatistics:
        """Means per label (one mean without labels) and the pooled within-class covariance,
        shrunk towards its mean variance (``shrinkage``) so that it inverts with few images."""
        features = np.asarray(features, dtype=np.float64)
        groups = np.zeros(len(features), dtype=int) if labels is None else np.asarray(labels, dtype=int)
        keys = sorted(set(groups.tolist()))
        means = np.stack([features[groups == key].mean(axis=0) for key in keys])
        centred = features - means[np.searchsorted(keys, groups)]
        covariance = centred.T @ centred / max(1, len(features) - len(keys))
        dims = covariance.shape[0]
        target = np.trace(covariance) / dims
        covariance = (1 - shrinkage) * covariance + shrinkage * target * np.eye(dims)
        return cls(means, np.linalg.inv(covariance))


class FamiliarityScorer:
    """One model's check: a tap per layer on the loaded network, each layer's statistics and limit.
    The model's score is the largest ``distance / limit`` over its layers, or the mean of those
    ratios over ``joint_limit`` when that is larger (1.0 is the limit either way)."""

    def __init__(self, name: str, model: nn.Module, layers: Sequence[str], statistics: Sequence[FeatureStatistics],
                 limits: Sequence[float], joint_limit: float | None = None) -> None:
        if not len(layers) == len(statistics) == len(limits) or not layers:
            raise ValueError(f"familiarity of {name}: one statistics and one limit per layer, got {len(layers)} "
                             f"layers, {len(statistics)} statistics, {len(limits)} limits")
        self.name = name
        self.layers = list(layers)
        self.taps = [FeatureTap(model, layer) for layer in layers]
        self.statistics = list(statistics)
        self.limits = [float(limit) for limit in limits]
        self.joint_limit = joint_limit

    def arm(self) -> None:
        for tap in self.taps:
            tap.arm()

    def take(self) -> list[torch.Tensor | None]:
        return [tap.take() for tap in self.taps]

    def scores(self, captured: Sequence[torch.Tensor | None], count: int) -> np.ndarray:
        """[count] scores from what ``take`` returned; a layer that saw no pass counts as unfamiliar."""
        ratios = []
        for features, statistics, limit in zip(captured, self.statistics, self.limits):
            if features is None or features.shape[0] != count:
                return np.full(count, np.inf)
            ratios.append(statistics.distances(features.cpu().numpy()) / limit)
        return combined_score(np.stack(ratios, axis=1), self.joint_limit)

    def close(self) -> None:
        for tap in self.taps:
            tap.close()


def combined_score(ratios: np.ndarray, joint_limit: float | None) -> np.ndarray:
    """[N, L] per-layer ``distance / limit`` -> [N] model score: the largest ratio, or the mean
    ratio over ``joint_limit`` where that is larger."""
    score = ratios.max(axis=1)
    if joint_limit is not None:
        score = np.maximum(score, ratios.mean(axis=1) / joint_limit)
    return score


def statistics_tensors(layers: Sequence[str], statistics: Sequence[FeatureStatistics]) -> dict[str, np.ndarray]:
    tensors = {}
    for layer, stats in zip(layers, statistics):
        tensors[f"{layer}/means"] = stats.means.astype(np.float32)
        # the precision matrix is symmetric: its upper triangle, row by row, halves the file
        tensors[f"{layer}/precision_upper"] = stats.precision[np.triu_indices(len(stats.precision))].astype(np.float32)
    return tensors


def _symmetric(upper: np.ndarray) -> np.ndarray:
    dims = int((np.sqrt(8 * len(upper) + 1) - 1) / 2)
    matrix = np.zeros((dims, dims))
    matrix[np.triu_indices(dims)] = upper
    return matrix + np.triu(matrix, 1).T


def save_statistics(path: Path, layers: Sequence[str], statistics: Sequence[FeatureStatistics]) -> str:
    """Write every layer's statistics to one safetensors file; returns its sha256."""
    from safetensors.numpy import save_file

    save_file(statistics_tensors(layers, statistics), str(path))
    Path(path).chmod(0o644)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_statistics(path: Path, layers: Sequence[str], sha256: str = "") -> list[FeatureStatistics]:
    """Read the layers' statistics; ``sha256`` (the card's) must match when given (ValueError otherwise)."""
    from safetensors.numpy import load

    data = Path(path).read_bytes()
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path} does not match the card's familiarity.statistics_sha256")
    tensors = load(data)
    try:
        return [FeatureStatistics(tensors[f"{layer}/means"].astype(np.float64),
                                  _symmetric(tensors[f"{layer}/precision_upper"].astype(np.float64)))
                for layer in layers]
    except KeyError as exc:
        raise ValueError(f"{path} has no statistics for layer {exc}") from None

"""Class-activation maps for the classifier and the detector, scaled against a fixed reference.

* ``GradCam``: Grad-CAM (Selvaraju et al., ICCV 2017) on a named layer through captum's
  ``LayerGradCam``, for the top-scoring class. The same forward pass gives the logits, so
  classification plus map costs one forward and one partial backward (with frozen weights the
  backward starts at the target layer).
* ``EigenCam``: EigenCAM (Muhammad & Yeasin, IJCNN 2020): the first principal component of a
  layer's activations, caught by a forward hook while the detector runs its normal ``predict``
  (no extra forward, no gradients). As in pytorch-grad-cam, activations are centred per channel
  before the decomposition; here, in addition, the component's sign (arbitrary in an
  eigen-decomposition) is chosen so that it follows activation strength. Centring also makes a
  featureless image give a map near zero.

Both are context managers: hooks exist only inside ``with``. Raw maps are in the layer's own
units; ``scale_to_reference`` maps them to [0, 1] with the ``cam_reference`` range stored in the
model card, never min-max per image, so that a clean part stays cold instead of having its
strongest texture painted red. ``calibrate_reference`` computes that range once, at export:
0 is what featureless frames reach (the attribution baseline), 1 what the strongest
validation evidence reaches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from station.ml.cards import CamReference, ModelCard, prepare_input
from station.ml.letterbox import LetterboxInfo


def target_module(model: nn.Module, layer_name: str) -> nn.Module:
    try:
        return model.get_submodule(layer_name)
    except AttributeError as exc:
        raise ValueError(f"{type(model).__name__} has no layer {layer_name!r} for CAM: {exc}") from None


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"CAM target layer must output a tensor [B, C, H, W], got {type(output).__name__}")


class GradCam:
    """Grad-CAM of the top class on ``model.<layer_name>``.

    >>> with GradCam(model, model.cam_target_layer) as cam:
    ...     logits, raw_maps = cam(images)  # [B, classes], [B, h, w]
    """

    def __init__(self, model: nn.Module, layer_name: str) -> None:
        self.model = model
        self.layer = target_module(model, layer_name)
        self._attribution = None
        self._logits: torch.Tensor | None = None

    def __enter__(self) -> GradCam:
        from captum.attr import LayerGradCam  # captum pulls in matplotlib: import only when maps are wanted

        self._attribution = LayerGradCam(self._top_logit, self.layer)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._attribution = None
        self._logits = None

    def _top_logit(self, images: torch.Tensor) -> torch.Tensor:
        # Grad-CAM differentiates the pre-softmax score of the predicted class
        logits = self.model(images)
        self._logits = logits.detach()
        return logits.max(dim=1).values  # [B]

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._attribution is None:
            raise RuntimeError("GradCam is used inside `with GradCam(...) as cam:`")
        maps = self._attribution.attribute(images, relu_attributions=True)  # [B, 1, h, w]
        logits, self._logits = self._logits, None
        return logits, maps.detach().float().squeeze(1)


class EigenCam:
    """EigenCAM of ``model.<layer_name>`` from whatever forward pass runs inside the ``with``.

    >>> with EigenCam(detector, detector.cam_target_layer) as cam:
    ...     detections = detector.predict(images, ...)
    ...     raw_maps = cam.maps()  # [B, h, w]
    """

    def __init__(self, model: nn.Module, layer_name: str) -> None:
        self.layer = target_module(model, layer_name)
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._activations: torch.Tensor | None = None

    def __enter__(self) -> EigenCam:
        self._handle = self.layer.register_forward_hook(self._keep)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._activations = None

    def _keep(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self._activations = _first_tensor(output).detach()

    def maps(self) -> torch.Tensor:
        if self._activations is None:
            raise RuntimeError("EigenCam saw no forward pass through its target layer")
        return principal_component_maps(self._activations)


def principal_component_maps(activations: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] activations -> [B, h, w]: ReLU of the projection on the first principal axis."""
    batch, channels, height, width = activations.shape
    features = activations.float().flatten(2).transpose(1, 2)  # [B, hw, C]
    centred = features - features.mean(dim=1, keepdim=True)
    # the first right-singular vector of the centred matrix = top eigenvector of its C x C scatter
    scatter = centred.transpose(1, 2) @ centred  # [B, C, C]
    _, eigenvectors = torch.linalg.eigh(scatter)
    axis = eigenvectors[..., -1:]  # [B, C, 1], the largest eigenvalue's
    projection = (centred @ axis).squeeze(-1)  # [B, hw]
    strength = features.norm(dim=2)
    agreement = ((strength - strength.mean(dim=1, keepdim=True)) * projection).sum(dim=1, keepdim=True)
    projection = torch.where(agreement < 0, -projection, projection)
    return projection.clamp(min=0).reshape(batch, height, width)


def scale_to_reference(raw_maps: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Raw maps -> [0, 1] against the card's fixed range: ``low`` and below is 0, ``high`` and above 1."""
    if not high > low:
        raise ValueError(f"cam reference range must have high > low, got low={low}, high={high}")
    return ((raw_maps - low) / (high - low)).clamp(0.0, 1.0)


def to_image_size(
    maps: torch.Tensor,
    image_hw: tuple[int, int],
    letterbox: LetterboxInfo | None = None,
) -> torch.Tensor:
    """[B, h, w] maps over the network input -> [B, H, W] over the original image.

    With ``letterbox`` the padding is cut away first; without, the input was a plain resize of
    the whole image.
    """
    maps = maps.unsqueeze(1)
    if letterbox is not None:
        maps = F.interpolate(maps, size=(letterbox.out_h, letterbox.out_w), mode="bilinear", align_corners=False)
        new_h = max(1, round(letterbox.orig_h * letterbox.scale))
        new_w = max(1, round(letterbox.orig_w * letterbox.scale))
        maps = maps[..., letterbox.pad_y : letterbox.pad_y + new_h, letterbox.pad_x : letterbox.pad_x + new_w]
    maps = F.interpolate(maps, size=tuple(image_hw), mode="bilinear", align_corners=False)
    return maps.squeeze(1)


def raw_maps_and_classes(
    model: nn.Module, card: ModelCard, images: torch.Tensor
) -> tuple[torch.Tensor, list[str] | None]:
    """Unscaled maps [B, h, w] the way the station computes them for ``card``'s task, and for a
    classifier the predicted class each map follows (None for a detector)."""
    if card.task == "classification":
        with GradCam(model, model.cam_target_layer) as cam:
            logits, maps = cam(images)
        return maps, [card.classes[index] for index in logits.argmax(dim=1).tolist()]
    with EigenCam(model, model.cam_target_layer) as cam:
        model.predict(images, score_thresh=card.thresholds.score, nms_iou=card.thresholds.nms_iou)
        return cam.maps(), None


def compute_raw_maps(model: nn.Module, card: ModelCard, images: torch.Tensor) -> torch.Tensor:
    """Unscaled maps [B, h, w] the way the station computes them for ``card``'s task."""
    return raw_maps_and_classes(model, card, images)[0]


def featureless_frames(height: int, width: int, card: ModelCard) -> list[np.ndarray]:
    """The attribution baseline: uniform frames in the card's mean colour (normalised to ~0
    everywhere, so consistent with the networks' zero padding) and in the letterbox grey (what
    surrounds every letterboxed input). Black or white frames would not do: against zero padding
    their borders are strong edges."""
    mean = [int(round(255 * m)) for m in card.preprocessing.mean]
    # gray modes have one mean per part (image, reference): the image's grey for all of R, G, B
    mean_rgb = tuple(mean[:3]) if len(mean) >= 3 else (mean[0],) * 3
    pad = card.preprocessing.pad_value
    return [np.full((height, width, 3), colour, dtype=np.uint8) for colour in (mean_rgb, (pad, pad, pad))]


def calibrate_reference(
    model: nn.Module,
    card: ModelCard,
    images: Iterable[np.ndarray],
    references: Iterable[np.ndarray] | None = None,
    high_quantile: float = 0.995,
    min_class_images: int = 4,
) -> CamReference:
    """The card's fixed ``cam_reference``, computed once at export.

    ``low`` is the level featureless frames reach (their 99th-percentile pixel): the baseline,
    so that a blank or clean frame stays cold. ``high`` is the ``high_quantile`` pixel of the
    maps of ``images`` (validation images, with their ``references`` for ``*+ref`` models):
    the level only the strongest evidence reaches. A classifier also gets a range per
    predicted class from that class's images (at least ``min_class_images`` of them).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    reference_list = list(references) if references is not None else None
    evidence, baseline, predicted = [], [], []
    try:
        image_list = list(images)
        if not image_list:
            raise ValueError("calibrate_reference needs at least one image")
        for index, image in enumerate(image_list):
            reference = reference_list[index] if reference_list is not None else None
            prepared = prepare_input(image, card, reference)
            maps, classes = raw_maps_and_classes(model, card, prepared.tensor[None].to(device))
            evidence.append(maps)
            predicted.extend(classes or ())
        height, width = image_list[0].shape[:2]
        for blank in featureless_frames(height, width, card):
            prepared = prepare_input(blank, card, blank if card.uses_reference else None)
            baseline.append(compute_raw_maps(model, card, prepared.tensor[None].to(device)))
    finally:
        model.train(was_training)
    per_class = {}
    for name in card.classes:
        maps = [m for m, label in zip(evidence, predicted) if label == name]
        if len(maps) >= min_class_images:
            found = reference_range(maps, baseline, high_quantile=high_quantile)
            per_class[name] = [found["low"], found["high"]]
    return CamReference(**reference_range(evidence, baseline, high_quantile=high_quantile), per_class=per_class)


def _values(maps: Iterable[torch.Tensor | np.ndarray]) -> np.ndarray:
    arrays = [
        np.asarray(m.detach().float().cpu() if isinstance(m, torch.Tensor) else m, dtype=np.float32).ravel()
        for m in maps
    ]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float32)


def reference_range(
    evidence_maps: Iterable[torch.Tensor | np.ndarray],
    baseline_maps: Iterable[torch.Tensor | np.ndarray] = (),
    high_quantile: float = 0.995,
    baseline_quantile: float = 0.99,
    max_samples: int = 2_000_000,
    seed: int = 0,
) -> dict[str, float]:
    """``{"low": ..., "high": ...}`` (a card's ``cam_reference``) from raw maps.

    ``low``: the ``baseline_quantile`` pixel of the baseline maps (featureless frames), but at
    most the evidence's median (the median alone without baseline maps). ``high``: the
    ``high_quantile`` pixel of the evidence maps, and at least ``low`` plus the evidence's own
    spread (high quantile - median), so the range stays usable when a model answers a blank
    frame as strongly as real images.

    The cap on ``low``: a classifier that has never seen a blank frame can answer one more
    strongly than any real image (the demo CTI calls a flat grey frame "metallic" at 88 %, and
    its Grad-CAM there peaks at twice the real images' 99.5th percentile). A baseline above
    the evidence would leave every real map cold; frames like that are the recipe's image
    check's to stop (``station.inference.image_check``), not the map's.
    """
    evidence = _values(evidence_maps)
    if evidence.size == 0:
        raise ValueError("reference_range needs at least one evidence map")
    if evidence.size > max_samples:
        evidence = np.random.default_rng(seed).choice(evidence, size=max_samples, replace=False)
    median, top = (float(v) for v in np.quantile(evidence, [0.5, high_quantile]))
    baseline = _values(baseline_maps)
    low = min(float(np.quantile(baseline, baseline_quantile)), median) if baseline.size else median
    spread = max(top - median, 1e-6, abs(low) * 1e-3)
    return {"low": low, "high": max(top, low + spread)}

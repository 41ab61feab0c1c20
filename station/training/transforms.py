"""Training augmentation with torchvision.transforms.v2: boxes follow the image.

Inputs are uint8 ``[C, H, W]`` tensors in the network's channel layout (see
:func:`station.ml.cards.stack_input`): a tested image and its template are stacked as channels
*before* the geometric transforms, so both get exactly the same rotation, flip, scale and crop;
photometric jitter is then applied to each part on its own (lighting differs between captures).
Normalisation comes last, from the model card, as at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

# The CTI paper (Section 3.1) augments by rotating every image by ±15° and ±30°.
PAPER_ROTATIONS = (-30.0, -15.0, 0.0, 15.0, 30.0)
# Right angles keep axis-aligned boxes exact (a 30° turn inflates every box).
RIGHT_ANGLES = (0.0, 90.0, 180.0, 270.0)
PAD_VALUE = 114  # as letterboxing pads


@dataclass(frozen=True)
class AugmentConfig:
    rotations: tuple[float, ...] = PAPER_ROTATIONS  # degrees, one drawn uniformly per sample
    hflip: float = 0.5
    vflip: float = 0.5
    scale: tuple[float, float] = (0.6, 1.0)  # classification: crop area; detection: zoom factor range
    translate: float = 0.1  # detection: fraction of the side
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0


class RandomRotationChoice(v2.Transform):
    """Rotate by one angle drawn from ``angles``; right angles swap the canvas instead of cropping."""

    def __init__(self, angles: Sequence[float], fill: float = 0) -> None:
        super().__init__()
        self.angles = tuple(float(a) for a in angles)
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"angle": self.angles[int(torch.randint(len(self.angles), ()))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        angle = params["angle"]
        if angle % 360 == 0:
            return inpt
        right_angle = angle % 90 == 0
        if right_angle and isinstance(inpt, tv_tensors.BoundingBoxes) and inpt.shape[0] == 0:
            # torchvision leaves the canvas of an empty box set unrotated; the image's swaps
            height, width = inpt.canvas_size
            canvas = (width, height) if angle % 180 else (height, width)
            return tv_tensors.wrap(inpt.as_subclass(torch.Tensor), like=inpt, canvas_size=canvas)
        fill = self.fill if isinstance(inpt, tv_tensors.Image) else None
        return TF.rotate(inpt, angle, expand=right_angle, fill=fill)


class PartwiseColorJitter(v2.Transform):
    """ColorJitter on each channel group (image, then reference) independently."""

    def __init__(self, parts: Sequence[int], **jitter: float) -> None:
        super().__init__()
        self.parts = tuple(parts)
        self.jitter = v2.ColorJitter(**jitter)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        if inpt.shape[-3] != sum(self.parts):
            raise ValueError(f"expected {sum(self.parts)} channels {self.parts}, got {inpt.shape[-3]}")
        pieces = torch.split(inpt.as_subclass(torch.Tensor), list(self.parts), dim=-3)
        jittered = [self.jitter(tv_tensors.Image(piece)).as_subclass(torch.Tensor) for piece in pieces]
        return tv_tensors.wrap(torch.cat(jittered, dim=-3), like=inpt)


class RandomNativeCrop(v2.Transform):
    """A ``size``-square crop at native resolution (padded when the image is smaller).

    Boxes cut so that less than ``min_visible`` of their area stays inside are dropped (made
    degenerate here, removed by ``SanitizeBoundingBoxes``): a sliver of a defect is not a
    defect the network can learn. With probability ``object_bias`` the crop is placed to
    contain a random box, so that sparse defects are not mostly cropped away.
    """

    def __init__(self, size: int, min_visible: float = 0.4, object_bias: float = 0.5, fill: float = PAD_VALUE) -> None:
        super().__init__()
        self.size = int(size)
        self.min_visible = min_visible
        self.object_bias = object_bias
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        boxes = next((i for i in flat_inputs if isinstance(i, tv_tensors.BoundingBoxes)), None)
        span_y, span_x = max(height - self.size, 0), max(width - self.size, 0)
        top, left = int(torch.randint(span_y + 1, ())), int(torch.randint(span_x + 1, ()))
        if boxes is not None and len(boxes) and float(torch.rand(())) < self.object_bias:
            x1, y1, x2, y2 = boxes[int(torch.randint(len(boxes), ()))].tolist()
            # any crop origin that keeps the box's centre inside, within the image
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left = int(min(max(cx - float(torch.rand(())) * self.size, 0), span_x))
            top = int(min(max(cy - float(torch.rand(())) * self.size, 0), span_y))
        return {"top": top, "left": left, "pad_h": max(self.size - height, 0), "pad_w": max(self.size - width, 0)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, (tv_tensors.Image, tv_tensors.BoundingBoxes)):
            return inpt
        if params["pad_h"] or params["pad_w"]:
            padding = [0, 0, params["pad_w"], params["pad_h"]]
            fill = self.fill if isinstance(inpt, tv_tensors.Image) else 0
            inpt = TF.pad(inpt, padding, fill=fill)
        if isinstance(inpt, tv_tensors.Image):
            return TF.crop(inpt, params["top"], params["left"], self.size, self.size)
        areas = (inpt[:, 2] - inpt[:, 0]) * (inpt[:, 3] - inpt[:, 1])
        cropped = TF.crop(inpt, params["top"], params["left"], self.size, self.size)
        cropped = TF.clamp_bounding_boxes(cropped)
        visible = (cropped[:, 2] - cropped[:, 0]).clamp(min=0) * (cropped[:, 3] - cropped[:, 1]).clamp(min=0)
        too_small = visible < self.min_visible * areas
        data = cropped.as_subclass(torch.Tensor).clone()
        data[too_small, 2:] = data[too_small, :2]
        return tv_tensors.wrap(data, like=cropped)


def classification_train_transform(size: tuple[int, int], parts: Sequence[int], config: AugmentConfig) -> v2.Transform:
    """uint8 ``[C, H, W]`` -> augmented uint8 ``[C, *size]``."""
    steps: list[v2.Transform] = []
    if any(angle % 360 for angle in config.rotations):
        steps.append(RandomRotationChoice(config.rotations))
    steps += [
        v2.RandomHorizontalFlip(config.hflip),
        v2.RandomVerticalFlip(config.vflip),
        v2.RandomResizedCrop(size, scale=config.scale, antialias=True),
        PartwiseColorJitter(parts, brightness=config.brightness, contrast=config.contrast,
                            saturation=config.saturation, hue=config.hue),
    ]
    return v2.Compose(steps)


def detection_train_transform(
    parts: Sequence[int],
    config: AugmentConfig,
    crop: int | None = None,
) -> v2.Transform:
    """``{"image": Image, "boxes": BoundingBoxes, "labels": Tensor}`` -> the same, augmented.

    The image comes letterboxed to the input size, or at native resolution when ``crop`` is
    set (then a ``crop``-square is cut from it first). Boxes too small after the transform are
    removed together with their labels.
    """
    # cropping first: every later step then works on the crop, a quarter of a 2x larger image
    steps: list[v2.Transform] = [RandomNativeCrop(crop)] if crop is not None else []
    if any(angle % 360 for angle in config.rotations):
        steps.append(RandomRotationChoice(config.rotations, fill=PAD_VALUE))
    steps += [v2.RandomHorizontalFlip(config.hflip), v2.RandomVerticalFlip(config.vflip)]
    if config.scale != (1.0, 1.0) or config.translate:
        steps.append(v2.RandomAffine(degrees=0, translate=(config.translate, config.translate), scale=config.scale,
                                     fill=PAD_VALUE))
    steps += [
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=2.0),
        PartwiseColorJitter(parts, brightness=config.brightness, contrast=config.contrast,
                            saturation=config.saturation, hue=config.hue),
    ]
    return v2.Compose(steps)


def default_augment(task: str, rotations: Sequence[float] | None = None) -> AugmentConfig:
    """Classification: the CTI paper's rotations; detection: right angles and zoom 0.75-1.25x.
    ``rotations`` replaces the task's rotation choices."""
    config = AugmentConfig() if task == "classification" else AugmentConfig(rotations=RIGHT_ANGLES, scale=(0.75, 1.25))
    return config if rotations is None else replace(config, rotations=tuple(rotations))

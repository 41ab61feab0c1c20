"""Training augmentation with torchvision.transforms.v2: boxes follow the image.

Inputs are uint8 ``[C, H, W]`` tensors in the network's channel layout (see
:func:`station.ml.cards.stack_input`): a tested image and its template are stacked as channels
*before* the geometric transforms, so both get exactly the same rotation, flip, scale and crop;
photometric jitter is then applied to each part on its own (lighting differs between captures).
Normalisation comes last, from the model card, as at inference.
"""

from __future__ import annotations

import math
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
    # detection only, letterboxed inputs (not --crop): sample-mixing augmentations of YOLO-family recipes
    mosaic: float = 0.0  # probability that a sample is a 2x2 mosaic of four images (Bochkovskiy et al. 2020)
    mosaic_zoom: tuple[float, float] = (1.0, 2.0)  # the mosaic window's side, in input sides, before resizing
    # detection: per sample; classification: per batch, labels mixed too (Zhang et al. 2018)
    mixup: float = 0.0  # probability of blending in a second augmented sample
    copy_paste: float = 0.0  # probability of pasting boxes cut from another image (Dwibedi et al. 2017)
    close_mosaic: int = 0  # the last N epochs train without mosaic, mixup and copy-paste (as YOLOv8 does)
    multiscale: float = 0.0  # each batch resized to a random side within +-this fraction (stride multiples)
    # classification only: probability that a batch is CutMix-ed (Yun et al. 2019), labels mixed by area
    cutmix: float = 0.0

    @property
    def mixes_samples(self) -> bool:
        return bool(self.mosaic or self.mixup or self.copy_paste)


# Beta(alpha, alpha) of the mixing weight, as timm's Mixup defaults
CLASSIFIER_MIXUP_ALPHA = 0.8
CLASSIFIER_CUTMIX_ALPHA = 1.0


class ClassifierBatchMixing:
    """CutMix or MixUp of a classification batch (torchvision.transforms.v2), drawn from (seed, step).

    Per batch: CutMix with probability ``cutmix``, else MixUp with probability ``mixup``, else the
    batch unchanged; the labels become the mixed one-hot targets. Drawing from (seed, step) alone
    keeps a resumed run identical to an uninterrupted one.
    """

    def __init__(self, num_classes: int, mixup: float, cutmix: float, seed: int) -> None:
        if not (0.0 <= mixup <= 1.0 and 0.0 <= cutmix <= 1.0 and mixup + cutmix <= 1.0):
            raise ValueError(f"mixup {mixup} and cutmix {cutmix} must be probabilities summing to at most 1")
        self.num_classes, self.mixup, self.cutmix, self.seed = num_classes, mixup, cutmix, seed
        self._cutmix = v2.CutMix(alpha=CLASSIFIER_CUTMIX_ALPHA, num_classes=num_classes)
        self._mixup = v2.MixUp(alpha=CLASSIFIER_MIXUP_ALPHA, num_classes=num_classes)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + step)
            draw = float(torch.rand(()))
            if draw < self.cutmix:
                return self._cutmix(images, labels)
            if draw < self.cutmix + self.mixup:
                return self._mixup(images, labels)
        return images, labels


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


@dataclass
class BoxedImage:
    """A uint8 ``[C, H, W]`` image with its ``[N, 4]`` XYXY boxes (pixels) and ``[N]`` labels."""

    image: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor

    def as_sample(self) -> dict[str, Any]:
        return {"image": tv_tensors.Image(self.image),
                "boxes": tv_tensors.BoundingBoxes(self.boxes.float(), format="XYXY",
                                                  canvas_size=tuple(self.image.shape[-2:])),
                "labels": self.labels}

    @classmethod
    def from_sample(cls, sample: dict[str, Any]) -> BoxedImage:
        return cls(sample["image"].as_subclass(torch.Tensor), sample["boxes"].as_subclass(torch.Tensor).float(),
                   sample["labels"])


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def mosaic(tiles: Sequence[BoxedImage], min_visible: float = 0.1, zoom: tuple[float, float] = (1.0, 2.0),
           fill: int = PAD_VALUE) -> BoxedImage:
    """Four ``s``-square tiles around a random centre of a ``2s`` canvas; a square window on that centre,
    ``zoom`` times ``s`` wide, is resized back to ``s``. Boxes less than ``min_visible`` inside are dropped
    (0.1: YOLOv5's ``box_candidates``; a clipped texture defect such as crazing is still that defect)."""
    if len(tiles) != 4:
        raise ValueError(f"a mosaic needs 4 tiles, got {len(tiles)}")
    channels, side, width = tiles[0].image.shape
    if side != width or any(tuple(t.image.shape) != (channels, side, side) for t in tiles):
        raise ValueError("mosaic tiles must be squares of one size")
    canvas = torch.full((channels, 2 * side, 2 * side), fill, dtype=torch.uint8)
    xc, yc = int(_uniform(side / 2, 1.5 * side)), int(_uniform(side / 2, 1.5 * side))
    boxes, labels = [], []
    for tile, (ox, oy) in zip(tiles, [(xc - side, yc - side), (xc, yc - side), (xc - side, yc), (xc, yc)]):
        x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + side, 2 * side), min(oy + side, 2 * side)
        canvas[:, y0:y1, x0:x1] = tile.image[:, y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        boxes.append(tile.boxes.float() + torch.tensor([ox, oy, ox, oy], dtype=torch.float32))
        labels.append(tile.labels)
    window = min(int(round(side * _uniform(*zoom))), 2 * side)
    left = min(max(xc - window // 2, 0), 2 * side - window)
    top = min(max(yc - window // 2, 0), 2 * side - window)
    image = TF.resize(canvas[:, top:top + window, left:left + window], [side, side], antialias=True)
    all_boxes, all_labels = torch.cat(boxes), torch.cat(labels)
    areas = (all_boxes[:, 2:] - all_boxes[:, :2]).prod(dim=1)
    shifted = all_boxes - torch.tensor([left, top, left, top], dtype=torch.float32)
    clipped = shifted.clamp(0, window)
    visible = (clipped[:, 2:] - clipped[:, :2]).clamp(min=0).prod(dim=1)
    scaled = clipped * (side / window)
    keep = (visible >= min_visible * areas) & ((scaled[:, 2:] - scaled[:, :2]) >= 2).all(dim=1)
    return BoxedImage(image, scaled[keep], all_labels[keep])


def mixup(first: BoxedImage, second: BoxedImage, alpha: float = 32.0) -> BoxedImage:
    """Blend two images with a Beta(alpha, alpha) weight (near 0.5, as YOLOv5's recipe) and keep both box sets."""
    if first.image.shape != second.image.shape:
        raise ValueError(f"mixup needs images of one shape, got {tuple(first.image.shape)} and "
                         f"{tuple(second.image.shape)}")
    weight = float(torch.distributions.Beta(alpha, alpha).sample())
    blended = first.image.float() * weight + second.image.float() * (1 - weight)
    return BoxedImage(blended.round().clamp(0, 255).to(torch.uint8), torch.cat([first.boxes, second.boxes]),
                      torch.cat([first.labels, second.labels]))


def copy_paste(target: BoxedImage, donor: BoxedImage, max_objects: int = 3, max_cover: float = 0.3,
               tries: int = 10) -> BoxedImage:
    """Paste up to ``max_objects`` box regions of ``donor`` at random places of ``target``.

    Box-level (no masks: NEU-DET and DeepPCB have none). A place is taken only where the patch
    covers less than ``max_cover`` of every box already there, so no label is hidden under a patch.
    """
    image, boxes, labels = target.image.clone(), target.boxes.float(), target.labels
    _, height, width = image.shape
    order = torch.randperm(len(donor.boxes))[:max_objects]
    for index in order.tolist():
        x1, y1, x2, y2 = (int(round(v)) for v in donor.boxes[index].tolist())
        patch = donor.image[:, max(y1, 0):y2, max(x1, 0):x2]
        ph, pw = patch.shape[-2:]
        if ph < 2 or pw < 2 or ph > height or pw > width:
            continue
        for _ in range(tries):
            left, top = int(torch.randint(width - pw + 1, ())), int(torch.randint(height - ph + 1, ()))
            placed = torch.tensor([left, top, left + pw, top + ph], dtype=torch.float32)
            overlap = (torch.minimum(boxes[:, 2:], placed[2:]) - torch.maximum(boxes[:, :2], placed[:2])).clamp(min=0)
            covered = overlap.prod(dim=1) / (boxes[:, 2:] - boxes[:, :2]).prod(dim=1).clamp(min=1e-6)
            if not len(boxes) or float(covered.max()) < max_cover:
                image[:, top:top + ph, left:left + pw] = patch
                boxes = torch.cat([boxes, placed[None]])
                labels = torch.cat([labels, donor.labels[index:index + 1]])
                break
    return BoxedImage(image, boxes, labels)


def multiscale_side(side: int, fraction: float, stride: int, generator: torch.Generator) -> int:
    """A random training side within ``side * (1 +- fraction)``, a multiple of ``stride``."""
    low = max(stride, int(math.ceil(side * (1 - fraction) / stride)) * stride)
    high = max(low, int(side * (1 + fraction) // stride) * stride)
    return low + stride * int(torch.randint((high - low) // stride + 1, (), generator=generator))


def resize_batch(images: torch.Tensor, targets: list[dict[str, torch.Tensor]],
                 side: int) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """A ``[B, C, H, W]`` float batch resized to ``side`` squared, with its targets' boxes scaled to match."""
    height, width = images.shape[-2:]
    if (height, width) == (side, side):
        return images, targets
    resized = torch.nn.functional.interpolate(images, size=(side, side), mode="bilinear", align_corners=False,
                                              antialias=side < min(height, width))
    scale = torch.tensor([side / width, side / height, side / width, side / height])
    return resized, [target | {"boxes": target["boxes"] * scale.to(target["boxes"])} for target in targets]


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

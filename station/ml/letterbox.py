"""Letterboxing: fit an image into a fixed network input without distorting it, and map boxes back.

The image is resized by one factor (keeping its aspect ratio, up or down) and centred on a
``pad_value`` canvas. ``LetterboxInfo`` records what was done so that detections made on the
letterboxed input can be returned in the original image's pixels. Any channel count works
(grayscale, RGB, a tested + template stack). Rounding the output size to the detector's stride
is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import torch

Boxes = TypeVar("Boxes", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class LetterboxInfo:
    """``letterboxed = original * scale + (pad_x, pad_y)``, in pixels."""

    scale: float
    pad_x: int
    pad_y: int
    orig_h: int
    orig_w: int
    out_h: int
    out_w: int


def _output_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """``size`` is a side length or ``(height, width)``."""
    if isinstance(size, (int, np.integer)):
        out_h = out_w = int(size)
    else:
        if len(size) != 2:
            raise ValueError(f"letterbox size must be an int or (height, width), got {size!r}")
        out_h, out_w = (int(side) for side in size)
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"letterbox size must be positive, got {size!r}")
    return out_h, out_w


def _resize(image: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    """cv2.resize for any channel count (it takes at most 4 at a time)."""
    channels = image.shape[2] if image.ndim == 3 else 0
    groups = [image] if channels <= 4 else [image[..., i : i + 4] for i in range(0, channels, 4)]
    resized = [
        cv2.resize(np.ascontiguousarray(group), (width, height), interpolation=interpolation).reshape(
            height, width, *group.shape[2:]  # cv2 drops a trailing channel axis of length 1
        )
        for group in groups
    ]
    return resized[0] if len(resized) == 1 else np.concatenate(resized, axis=2)


def letterbox(
    image: np.ndarray, size: int | tuple[int, int], pad_value: int | float = 114
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize ``image`` (HxW or HxWxC) to fit ``size`` keeping its aspect ratio, centre-pad the rest.

    Shrinking uses ``cv2.INTER_AREA`` (no aliasing of thin traces), enlarging ``cv2.INTER_LINEAR``.
    The result has the input's dtype and layout (HxW stays HxW, HxWx1 stays HxWx1).
    """
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"letterbox expects an HxW or HxWxC image, got shape {image.shape}")
    out_h, out_w = _output_hw(size)
    orig_h, orig_w = image.shape[:2]
    scale = min(out_h / orig_h, out_w / orig_w)
    new_h = min(out_h, max(1, round(orig_h * scale)))
    new_w = min(out_w, max(1, round(orig_w * scale)))

    if (new_h, new_w) == (orig_h, orig_w):
        resized = image
    else:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = _resize(image, new_h, new_w, interpolation)

    pad_y = (out_h - new_h) // 2
    pad_x = (out_w - new_w) // 2
    canvas = np.full((out_h, out_w, *image.shape[2:]), pad_value, dtype=image.dtype)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    info = LetterboxInfo(
        scale=float(scale), pad_x=pad_x, pad_y=pad_y, orig_h=orig_h, orig_w=orig_w, out_h=out_h, out_w=out_w
    )
    return canvas, info


def _check_boxes(boxes: Boxes) -> None:
    if boxes.shape[-1] != 4:
        raise ValueError(
            f"boxes must have 4 coordinates (x1, y1, x2, y2) in the last axis, got shape {tuple(boxes.shape)}"
        )


def _offsets(boxes: Boxes, info: LetterboxInfo) -> Boxes:
    pad = [info.pad_x, info.pad_y, info.pad_x, info.pad_y]
    if isinstance(boxes, torch.Tensor):
        return torch.tensor(pad, dtype=boxes.dtype, device=boxes.device)
    return np.asarray(pad, dtype=boxes.dtype)


def _as_float(boxes: Boxes) -> Boxes:
    if isinstance(boxes, torch.Tensor):
        return boxes if boxes.is_floating_point() else boxes.float()
    boxes = np.asarray(boxes)
    return boxes if np.issubdtype(boxes.dtype, np.floating) else boxes.astype(np.float32)


def boxes_to_letterbox(boxes: Boxes, info: LetterboxInfo) -> Boxes:
    """Original-image x1y1x2y2 boxes ``[..., 4]`` -> letterboxed-input pixels (numpy or torch)."""
    boxes = _as_float(boxes)
    _check_boxes(boxes)
    return boxes * info.scale + _offsets(boxes, info)


def boxes_from_letterbox(boxes: Boxes, info: LetterboxInfo) -> Boxes:
    """Letterboxed-input x1y1x2y2 boxes ``[..., 4]`` -> original-image pixels, clipped to the image."""
    boxes = _as_float(boxes)
    _check_boxes(boxes)
    restored = (boxes - _offsets(boxes, info)) / info.scale
    limits = [info.orig_w, info.orig_h, info.orig_w, info.orig_h]
    if isinstance(restored, torch.Tensor):
        upper = torch.tensor(limits, dtype=restored.dtype, device=restored.device)
        return torch.minimum(restored.clamp(min=0), upper)
    return np.clip(restored, 0, np.asarray(limits, dtype=restored.dtype))

"""The networks' forward passes, run the same way by every caller: the engine (and through it
batch review and the latency bench) and evaluation. Precision follows ``devices.autocast``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from station.devices import autocast
from station.inference.tiling import TILES_PER_PASS, PreparedTiles, shift_to_frame
from station.ml.cards import ModelCard, normalise
from station.ml.letterbox import LetterboxInfo
from station.ml.tta import predict_with_views


def to_device(tensors: torch.Tensor | Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """[B, C, H, W] on ``device`` (a sequence of [C, H, W] is stacked); on CUDA pinned, copied
    without blocking and channels-last, the layout the engine's models are kept in."""
    batch = tensors if isinstance(tensors, torch.Tensor) else torch.stack(list(tensors))
    if device.type != "cuda":
        return batch.to(device)
    return batch.pin_memory().to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def classifier_logits(model: nn.Module, images: torch.Tensor, device: torch.device, amp: str = "auto") -> torch.Tensor:
    """[B, K] float32 logits, before the card's temperature."""
    with torch.inference_mode(), autocast(device, "classifier", amp):
        return model(images).float()


def detections(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device,
    *,
    views: int,
    score_thresh: float,
    nms_iou: float,
    max_det: int,
    letterboxes: Sequence[LetterboxInfo | None] | None = None,
    amp: str = "auto",
) -> list[dict[str, torch.Tensor]]:
    """Each image's detections (``predict_with_views``), boxes in the original image's pixels
    when every image has its letterbox info, else in input pixels."""
    letterbox = list(letterboxes) if letterboxes is not None and all(i is not None for i in letterboxes) else None
    with torch.inference_mode(), autocast(device, "detector", amp):
        return predict_with_views(
            model, images, views, score_thresh=score_thresh, nms_iou=nms_iou, max_det=max_det, letterbox=letterbox
        )


def tile_detections(
    model: nn.Module,
    tiles: PreparedTiles,
    card: ModelCard,
    device: torch.device,
    *,
    views: int,
    score_thresh: float,
    nms_iou: float,
    max_det: int,
    amp: str = "auto",
) -> list[dict[str, torch.Tensor]]:
    """Each tile's detections (``station.inference.tiling``), boxes in the frame's pixels; the
    tiles go through the network ``TILES_PER_PASS`` at a time."""
    found: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(tiles.grid), TILES_PER_PASS):
        images = to_device(normalise(tiles.pixels[start : start + TILES_PER_PASS], card), device)
        found += detections(model, images, device, views=views, score_thresh=score_thresh, nms_iou=nms_iou,
                            max_det=max_det, amp=amp)
    return [shift_to_frame(item, origin, tiles.grid.frame_hw) for item, origin in zip(found, tiles.grid.origins)]

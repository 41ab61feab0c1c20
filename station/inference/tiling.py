"""Full-resolution detection: a large frame seen as overlapping native-resolution tiles.

Letterboxing a 5-MP frame to a 640-px input shrinks it four times, and a defect of a few pixels
with it. When the letterbox would shrink the frame by more than ``TILE_WHEN_SHRUNK``, the
detector also runs on tiles cut from the frame at its own resolution (SAHI: Akyon, Altinuc &
Temizel, "Slicing aided hyper inference and fine-tuning for small object detection", ICIP 2022).
A tile is the card's training crop (``training.options.crop``: the native-resolution patches the
detector learned from), or its input size when it was trained on whole images; neighbouring
tiles overlap by at least ``TILE_OVERLAP`` of a tile, and the last tile of a row or column lies
flush with the frame's edge. The whole-frame (letterboxed) pass still runs: it gives the
attention map and the familiarity features, and its boxes are merged with the tiles' (SAHI's
"standard prediction"), so a defect larger than a tile is still found whole.

Boxes of one class from two tiles that cover each other by ``MERGE_IOS`` (intersection over the
smaller box) become their union (SAHI's greedy non-maximum merging): a defect cut by a tile's
edge is put together again. A tile's box and the whole frame's are one defect only at IoU
``WHOLE_FRAME_IOU``, and the better-scored box stands as it is: each pass saw the defect whole,
at its own scale. Joining them by IoS lost defects both ways (on DeepPCB validation images: the
union blurred small defects' tile boxes on 3×3 mosaics, recall 0.68 against the tiles' 0.996;
keeping the better-scored box let a tile's piece of a large defect swallow the whole frame's box
on ×3 enlargements, 0.88 against the letterbox's 0.99). Boxes of one pass are left apart: its
own NMS already chose among them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from station.ml.cards import ModelCard, stack_input

TILING_MODES = ("auto", "on", "off")  # a recipe's ``tiling``
TILE_OVERLAP = 0.2  # of a tile's side; SAHI's default
TILE_WHEN_SHRUNK = 1.5  # auto: tile when the letterbox would shrink the frame more than this
MERGE_IOS = 0.5  # SAHI's default match threshold (intersection over the smaller box)
WHOLE_FRAME_IOU = 0.5  # a tile's box and the whole frame's: one defect (the detectors' NMS IoU)
TILES_PER_PASS = 16  # tiles per forward pass: bounds the activations' memory


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one frame lie: ``origins`` are each tile's (x, y) top-left corner in
    frame pixels; a tile is ``tile_hw`` (height, width), padded where the frame is smaller."""

    frame_hw: tuple[int, int]
    tile_hw: tuple[int, int]
    origins: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.origins)


def tile_starts(length: int, tile: int, overlap: float = TILE_OVERLAP) -> list[int]:
    """Start offsets of tiles of side ``tile`` along ``length`` pixels, evenly spaced, the first at
    0 and the last ending at ``length``, neighbours overlapping by at least ``overlap`` × ``tile``."""
    if tile < 1 or length < 1:
        raise ValueError(f"tile and length must be positive, got tile {tile}, length {length}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile overlap must be in [0, 1), got {overlap}")
    if length <= tile:
        return [0]
    step = tile * (1.0 - overlap)
    gaps = math.ceil((length - tile) / step - 1e-9)
    return [round(index * (length - tile) / gaps) for index in range(gaps + 1)]


def tile_layout(frame_hw: tuple[int, int], tile_hw: tuple[int, int], overlap: float = TILE_OVERLAP) -> TileGrid:
    """The tiles covering a ``frame_hw`` frame, row by row."""
    height, width = frame_hw
    rows = tile_starts(height, tile_hw[0], overlap)
    columns = tile_starts(width, tile_hw[1], overlap)
    return TileGrid((int(height), int(width)), (int(tile_hw[0]), int(tile_hw[1])),
                    tuple((x, y) for y in rows for x in columns))


def tile_size(card: ModelCard) -> tuple[int, int]:
    """(height, width) of a tile for a detector's card: its training crop, else its input size."""
    crop = card.training.options.get("crop")
    if crop:
        return int(crop), int(crop)
    return int(card.input_size[1]), int(card.input_size[2])


def wants_tiles(mode: str, frame_hw: tuple[int, int], card: ModelCard) -> bool:
    """Whether a ``frame_hw`` frame is tiled under a recipe's ``tiling`` ``mode``: "auto" when the
    letterbox to the card's input would shrink it by more than ``TILE_WHEN_SHRUNK``."""
    if mode not in TILING_MODES:
        raise ValueError(f"tiling must be one of {TILING_MODES}, got {mode!r}")
    if mode != "auto":
        return mode == "on"
    _, input_h, input_w = card.input_size
    shrink = max(frame_hw[0] / input_h, frame_hw[1] / input_w)
    return shrink > TILE_WHEN_SHRUNK


def cut_tiles(stacked: np.ndarray, grid: TileGrid, pad_value: int) -> np.ndarray:
    """``[T, tile_h, tile_w, C]`` uint8 tiles of an HxWxC frame; ``pad_value`` where the frame ends."""
    tile_h, tile_w = grid.tile_hw
    tiles = np.full((len(grid), tile_h, tile_w, stacked.shape[2]), pad_value, dtype=stacked.dtype)
    for index, (x, y) in enumerate(grid.origins):
        part = stacked[y : y + tile_h, x : x + tile_w]
        tiles[index, : part.shape[0], : part.shape[1]] = part
    return tiles


@dataclass(frozen=True)
class PreparedTiles:
    """A frame's tiles for a detector, kept as uint8 (a quarter of float32's memory for a 5-MP
    frame's ~80 tiles) and normalised a pass at a time."""

    grid: TileGrid
    pixels: torch.Tensor  # [T, C, tile_h, tile_w] uint8: the card's input channels


def prepare_tiles(image: np.ndarray, card: ModelCard, reference: np.ndarray | None = None) -> PreparedTiles:
    """The tiles of an HxWx3 RGB frame (and its aligned reference, for ``*+ref`` cards)."""
    stacked = stack_input(image, reference if card.uses_reference else None, card.input_mode)
    grid = tile_layout(stacked.shape[:2], tile_size(card))
    tiles = cut_tiles(stacked, grid, card.preprocessing.pad_value)
    return PreparedTiles(grid, torch.from_numpy(tiles).permute(0, 3, 1, 2))


def shift_to_frame(detections: dict[str, torch.Tensor], origin: tuple[int, int],
                   frame_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """One tile's detections with boxes moved from tile to frame pixels, clipped to the frame
    (a padded tile's boxes may reach into the padding)."""
    x, y = origin
    boxes = detections["boxes"].float() + torch.tensor([x, y, x, y], dtype=torch.float32,
                                                       device=detections["boxes"].device)
    height, width = frame_hw
    limits = torch.tensor([width, height, width, height], dtype=torch.float32, device=boxes.device)
    return dict(detections, boxes=torch.minimum(boxes.clamp(min=0), limits))


def _overlaps(box: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(intersection over the smaller box, intersection over union) of ``box`` with each of ``others``."""
    left_top = np.maximum(box[:2], others[:, :2])
    right_bottom = np.minimum(box[2:], others[:, 2:])
    intersection = np.prod(np.clip(right_bottom - left_top, 0, None), axis=1)
    area = np.prod(np.clip(box[2:] - box[:2], 0, None))
    areas = np.prod(np.clip(others[:, 2:] - others[:, :2], 0, None), axis=1)
    smaller = intersection / np.maximum(np.minimum(area, areas), 1e-9)
    return smaller, intersection / np.maximum(area + areas - intersection, 1e-9)


def merge_detections(tiles: Sequence[dict[str, torch.Tensor]], max_det: int,
                     whole_frame: dict[str, torch.Tensor] | None = None,
                     match_ios: float = MERGE_IOS, whole_frame_iou: float = WHOLE_FRAME_IOU) -> dict[str, torch.Tensor]:
    """One frame's detections from its tiles and its whole-frame pass (boxes in frame pixels),
    best score first. A box of two tiles' that covers a kept one of its class by ``match_ios``
    (or is covered by it) joins it, and the kept box grows to their union. A whole-frame box and
    a tile box are one defect when their IoU is ``whole_frame_iou``; the better-scored box stands,
    as it is. At most ``max_det`` boxes, best first."""
    passes = ([whole_frame] if whole_frame is not None else []) + list(tiles)
    if not passes:
        raise ValueError("merge_detections needs at least one pass")
    device = passes[0]["boxes"].device
    boxes = torch.cat([p["boxes"].float() for p in passes]).cpu().numpy().astype(np.float64)
    scores = torch.cat([p["scores"].float() for p in passes]).cpu().numpy()
    labels = torch.cat([p["labels"] for p in passes]).cpu().numpy()
    first = 0 if whole_frame is None else 1  # source -1: the whole frame
    sources = np.concatenate([np.full(len(p["scores"]), index - first) for index, p in enumerate(passes)])
    kept: list[int] = []
    kept_boxes = np.zeros((len(scores), 4))
    kept_sources: list[set[int]] = []
    for index in np.argsort(-scores, kind="stable"):
        source = int(sources[index])
        host = -1
        if kept:
            candidates = np.flatnonzero((labels[kept] == labels[index])
                                        & np.array([source not in s for s in kept_sources]))
            if len(candidates):
                smaller, iou = _overlaps(boxes[index], kept_boxes[candidates])
                with_whole = np.array([source < 0 or -1 in kept_sources[c] for c in candidates])
                matches = np.where(with_whole, iou >= whole_frame_iou, smaller >= match_ios)
                if matches.any():
                    host = int(candidates[np.flatnonzero(matches)[np.argmax(smaller[matches])]])
        if host < 0:
            kept_boxes[len(kept)] = boxes[index]
            kept.append(int(index))
            kept_sources.append({source})
            continue
        if source >= 0 and -1 not in kept_sources[host]:
            union = kept_boxes[host]
            kept_boxes[host] = np.concatenate([np.minimum(union[:2], boxes[index][:2]),
                                               np.maximum(union[2:], boxes[index][2:])])
        kept_sources[host].add(source)
    count = min(len(kept), max_det)
    return {
        "boxes": torch.as_tensor(kept_boxes[:count], dtype=torch.float32, device=device).reshape(-1, 4),
        "labels": torch.as_tensor(labels[kept[:count]], dtype=torch.int64, device=device).reshape(-1),
        "scores": torch.as_tensor(scores[kept[:count]], dtype=torch.float32, device=device).reshape(-1),
    }

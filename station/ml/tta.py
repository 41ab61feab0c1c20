"""Test-time augmentation for detectors: the image's dihedral views, fused box by box.

A detector's ``predict`` runs on up to 8 views of the input (identity, flips, quarter turns),
each view's boxes are mapped back to the input, and the boxes of all views are merged with
weighted boxes fusion (Solovyev, Wang & Gabruseva, "Weighted boxes fusion: ensembling boxes from
different object detection models", Image and Vision Computing 107, 2021): same-class boxes that
overlap a fused box by more than ``fusion_iou`` join its cluster; the fused box is the
score-weighted mean of its members and its score their summed score per view, capped at 1, so a
box that only some views see is scored down. (The paper's "avg" confidence divides by
``max(members, views)`` instead: then the weak extra boxes a view can add to a cluster pull a
confident cluster down; on the DeepPCB validation split that gave F 98.02 against 98.28.)

Worth it where the defects have no preferred orientation (bare PCBs, steel surfaces) and each
frame may take ``views`` times longer; a card turns it on with ``test_time_views``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from station.ml.letterbox import LetterboxInfo, boxes_from_letterbox

VIEW_COUNTS = (1, 2, 4, 8)
FUSION_IOU = 0.55  # the WBF paper's default

# (quarter turns, horizontal flip) in the order views are added: identity first; 2 adds the
# mirror, 4 the half turn and its mirror (the map keeps its shape), 8 the quarter turns
DIHEDRAL_VIEWS: tuple[tuple[int, bool], ...] = (
    (0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True),
)


class Detector(Protocol):
    def predict(self, images: torch.Tensor, score_thresh: float = ..., nms_iou: float = ..., max_det: int = ...,
                letterbox: Sequence[LetterboxInfo] | None = ...) -> list[dict[str, torch.Tensor]]: ...


def view_images(images: torch.Tensor, view: tuple[int, bool]) -> torch.Tensor:
    """``images`` ``[..., H, W]`` as seen in ``view``: turned ``quarter_turns`` × 90° (counter-
    clockwise, ``torch.rot90``), then mirrored left–right."""
    quarter_turns, mirrored = view
    out = torch.rot90(images, quarter_turns, dims=(-2, -1)) if quarter_turns % 4 else images
    return out.flip(-1) if mirrored else out


def boxes_from_view(boxes: torch.Tensor, view: tuple[int, bool], height: int, width: int) -> torch.Tensor:
    """x1y1x2y2 ``boxes`` found in ``view`` of an ``height × width`` input, in the input's pixels."""
    quarter_turns, mirrored = view
    turns = quarter_turns % 4
    view_h, view_w = (width, height) if turns % 2 else (height, width)
    x1, y1, x2, y2 = boxes.unbind(-1)
    if mirrored:
        x1, x2 = view_w - x2, view_w - x1
    for _ in range(turns):  # undo one counter-clockwise quarter turn: (x, y) <- (H_before - y, x)
        x1, y1, x2, y2 = view_h - y2, x1, view_h - y1, x2
        view_h, view_w = view_w, view_h
    return torch.stack([x1, y1, x2, y2], dim=-1)


def _iou_one_to_many(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    left_top = np.maximum(box[:2], others[:, :2])
    right_bottom = np.minimum(box[2:], others[:, 2:])
    intersection = np.prod(np.clip(right_bottom - left_top, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    return intersection / np.maximum(area + areas - intersection, 1e-9)


def weighted_boxes_fusion(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, views: int, fusion_iou: float = FUSION_IOU
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused ``(boxes [M, 4], scores [M], labels [M])``, best score first, of the ``[N]`` boxes
    that ``views`` views found together (see the module docstring)."""
    fused_boxes, fused_scores, fused_labels = [], [], []
    box_array = boxes.detach().float().cpu().numpy().astype(np.float64)
    score_array = scores.detach().float().cpu().numpy().astype(np.float64)
    label_array = labels.detach().cpu().numpy()
    for label in np.unique(label_array):
        chosen = np.flatnonzero(label_array == label)
        chosen = chosen[np.argsort(-score_array[chosen], kind="stable")]
        weighted_sums = np.zeros((len(chosen), 4))  # Σ score·box per cluster
        score_sums = np.zeros(len(chosen))
        clusters = 0
        for index in chosen:
            box, score = box_array[index], score_array[index]
            target = -1
            if clusters:
                overlap = _iou_one_to_many(box, weighted_sums[:clusters] / score_sums[:clusters, None])
                best = int(overlap.argmax())
                if overlap[best] > fusion_iou:
                    target = best
            if target < 0:
                target, clusters = clusters, clusters + 1
            weighted_sums[target] += score * box
            score_sums[target] += score
        fused_boxes.append(weighted_sums[:clusters] / np.maximum(score_sums[:clusters, None], 1e-12))
        fused_scores.append(np.minimum(score_sums[:clusters] / views, 1.0))
        fused_labels.append(np.full(clusters, label))
    if not fused_boxes:
        return boxes.new_zeros((0, 4)), scores.new_zeros(0), labels.new_zeros(0)
    out_scores = torch.as_tensor(np.concatenate(fused_scores), dtype=torch.float32)
    order = out_scores.argsort(descending=True, stable=True)
    out_boxes = torch.as_tensor(np.concatenate(fused_boxes), dtype=torch.float32)[order]
    out_labels = torch.as_tensor(np.concatenate(fused_labels), dtype=torch.int64)[order]
    return out_boxes.to(boxes.device), out_scores[order].to(scores.device), out_labels.to(labels.device)


def predict_with_views(
    model: Detector,
    images: torch.Tensor,
    views: int = 1,
    *,
    score_thresh: float = 0.25,
    nms_iou: float = 0.5,
    max_det: int = 100,
    letterbox: Sequence[LetterboxInfo] | None = None,
    fusion_iou: float = FUSION_IOU,
) -> list[dict[str, torch.Tensor]]:
    """``model.predict`` over the first ``views`` dihedral views, fused; ``views=1`` is ``predict``.

    Each view keeps boxes down to ``score_thresh / views`` (a member below that adds less than
    ``score_thresh / views`` to a fused score); the fused boxes are cut at ``score_thresh`` and
    ``max_det``. The identity view runs last, so a hook that keeps the last forward pass's
    activations (``EigenCam``) sees the untransformed input.
    """
    if views not in VIEW_COUNTS:
        raise ValueError(f"test-time views must be one of {VIEW_COUNTS}, got {views}")
    if views == 1:
        return model.predict(images, score_thresh=score_thresh, nms_iou=nms_iou, max_det=max_det, letterbox=letterbox)
    if letterbox is not None and len(letterbox) != images.shape[0]:
        raise ValueError(f"got {len(letterbox)} letterbox infos for a batch of {images.shape[0]} images")
    height, width = images.shape[-2:]
    found_per_view = []
    for view in reversed(DIHEDRAL_VIEWS[:views]):
        found = model.predict(view_images(images, view), score_thresh=score_thresh / views, nms_iou=nms_iou,
                              max_det=max_det)
        found_per_view.append([dict(item, boxes=boxes_from_view(item["boxes"], view, height, width)) for item in found])
    detections = []
    for index in range(images.shape[0]):
        parts = [per_image[index] for per_image in found_per_view]
        boxes, scores, labels = weighted_boxes_fusion(
            torch.cat([p["boxes"] for p in parts]), torch.cat([p["scores"] for p in parts]),
            torch.cat([p["labels"] for p in parts]), views, fusion_iou,
        )
        kept = (scores >= score_thresh).nonzero().squeeze(1)[:max_det]
        boxes, scores, labels = boxes[kept], scores[kept], labels[kept]
        if letterbox is not None:
            boxes = boxes_from_letterbox(boxes, letterbox[index])
        detections.append({"boxes": boxes, "labels": labels, "scores": scores})
    return detections

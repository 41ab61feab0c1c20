"""A detector's boxes as the operator's defects: one box per place.

The detector suppresses overlapping boxes of the same class only (class-wise NMS, as the
metrics expect). Where it is unsure between two classes it reports the same place twice,
once per class; the bundled demo detector did so for a quarter of its boxes on its
validation images, almost all at IoU > 0.75. The operator then sees two boxes on one
defect. Here such a box is folded into the higher-scoring one, whose ``alternatives`` keep
the other classes and their scores, so the record loses nothing. Scores and boxes are the
detector's own; `station evaluate` scores the detector's output before this step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

from station.inference.results import Defect

SAME_PLACE_IOU = 0.6  # the demo detector's double calls overlap at IoU > 0.75; distinct defects rarely this much


def defects_from_detections(detections: dict[str, torch.Tensor], classes: Sequence[str],
                            same_place_iou: float = SAME_PLACE_IOU) -> list[Defect]:
    """``detections`` (boxes, labels, scores of one image) as defects, best first, with boxes
    of another class at the same place (IoU ≥ ``same_place_iou``) folded into the better one."""
    boxes = detections["boxes"].float().cpu()
    labels = detections["labels"].cpu().tolist()
    scores = detections["scores"].float().cpu()
    overlaps = box_iou(boxes, boxes)
    kept: list[int] = []  # best first
    alternatives: dict[int, list[tuple[str, float]]] = {}
    for index in torch.argsort(scores, descending=True, stable=True).tolist():
        host = next((k for k in kept if labels[k] != labels[index] and overlaps[k, index] >= same_place_iou), None)
        if host is None:
            kept.append(index)
            alternatives[index] = []
        elif all(label != classes[labels[index]] for label, _ in alternatives[host]):
            alternatives[host].append((classes[labels[index]], float(scores[index])))
    return [
        Defect(box=tuple(float(v) for v in boxes[k].tolist()), label=classes[labels[k]],  # type: ignore[arg-type]
               score=float(scores[k]), alternatives=tuple(alternatives[k]))
        for k in kept
    ]

"""The DeepPCB benchmark's scoring rule, as the dataset's own evaluation script applies it.

DeepPCB (Tang et al. 2019, github.com/tangsanli5201/DeepPCB) is scored by ``evaluation/script.py``,
the ICDAR 2015 "robust reading" localisation script (with ``rrc_evaluation_funcs``) in which the
transcription field carries the defect type and ``IOU_CONSTRAINT`` is 0.33. Per image:

1. the submitted lines are sorted by confidence, highest first (``rrc_evaluation_funcs`` sorts a
   file's lines when confidences are given); the ground-truth boxes keep their file order;
2. for each ground-truth box in that order, and for each detection in that order, the first
   ground-truth/detection pair with neither member paired yet and IoU > 0.33 is paired, *whatever
   the two types are*;
3. the pair is correct when the types agree. So a wrong-type detection can use up a ground-truth
   box, and the right-type detection beside it is then a false positive.

Over the whole set: precision = correct pairs / submitted detections, recall = correct pairs /
ground-truth boxes, F = 2PR / (P + R); AP = Σ (correct so far / rank) at every correct detection,
the detections of all images and types ranked together by confidence, divided by the number of
ground-truth boxes: one figure, pooled over the six types, which the dataset paper calls mAP.

The script is Python 2 and needs the Polygon2 package; it is not run here. This module is a port
of its loop. The boxes are axis-aligned rectangles, for which Polygon2's intersection and area are
the rectangles' overlap and area, so the IoU is torchvision's ``box_iou`` on the submitted integer
corners. Two things the script leaves to chance are pinned: detections of equal confidence keep
their submission order (the script's ``np.argsort`` is an unstable quicksort), and the corners are
rounded to whole pixels, since the script's parser accepts only integers (``write_script_inputs``
writes the same numbers). ``tests/test_deeppcb_protocol.py`` checks the port against a line-by-line
transcription of the script's loop, run on the files ``write_script_inputs`` writes for real DeepPCB
images.

A method submits its detections at its own operating threshold: the station's is the card's
score threshold, so the headline F-score is the one at the card's threshold. The pairing of the
detections above a threshold does not depend on the lower-scored ones (they come later in every
image's order), so one pairing of every detection gives the script's figures at any threshold.
The F-score at the threshold that maximises it on the scored images themselves is optimistic and
is reported only under that name.

``deeppcb_per_class_metrics`` is the lenient rule this project used before: each detection is
matched to the best free ground-truth box *of its own class* (``metrics.match_detections``), and
the mAP is the mean of per-class APs. It is kept under its own metric names (``deeppcb_per_class_…``)
for comparison; it is not the benchmark's figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from station.training.metrics import DEEPPCB_IOU, Detections, MatchTable, _cpu, match_detections

OFFICIAL = "deeppcb"
PER_CLASS = "deeppcb-per-class"
RULES = (OFFICIAL, PER_CLASS)


def submitted_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Corners as a submission file carries them: whole pixels (the script parses integers)."""
    return torch.round(boxes.float())


def submission_order(scores: torch.Tensor) -> torch.Tensor:
    """The order in which the script walks an image's detections: highest confidence first."""
    return torch.argsort(scores, descending=True, stable=True)


def match_official(
    predictions: Detections, targets: Detections, num_classes: int, iou_threshold: float = DEEPPCB_IOU
) -> MatchTable:
    """Every detection, in each image's submission order, marked correct as the script marks it."""
    scores, labels, correct = [], [], []
    ground_truth = np.zeros(num_classes, np.int64)
    for prediction, target in zip(_cpu(predictions, True), _cpu(targets, False), strict=True):
        gt_boxes, gt_labels = submitted_boxes(target["boxes"]), target["labels"]
        ground_truth += np.bincount(gt_labels.numpy(), minlength=num_classes)[:num_classes]
        order = submission_order(prediction["scores"])
        det_boxes = submitted_boxes(prediction["boxes"][order])
        det_labels, det_scores = prediction["labels"][order], prediction["scores"][order]
        is_correct = np.zeros(len(det_boxes), bool)
        if len(gt_boxes) and len(det_boxes):
            passes = (box_iou(gt_boxes, det_boxes) > iou_threshold).numpy()  # [G, D]
            det_taken = np.zeros(len(det_boxes), bool)
            for g in range(len(gt_boxes)):
                free = np.flatnonzero(passes[g] & ~det_taken)
                if len(free):
                    d = int(free[0])  # the first in submission order, whatever its type
                    det_taken[d] = True
                    is_correct[d] = bool(det_labels[d] == gt_labels[g])
        scores.append(det_scores.numpy())
        labels.append(det_labels.numpy())
        correct.append(is_correct)
    return MatchTable(
        scores=np.concatenate(scores) if scores else np.zeros(0, np.float32),
        labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        hits=np.concatenate(correct) if correct else np.zeros(0, bool),
        ground_truth=ground_truth,
    )


def pooled_average_precision(table: MatchTable, threshold: float | None = None) -> float:
    """The script's AP: every detection (at least ``threshold``) ranked by confidence, all types
    together, Σ precision at each correct one / the number of ground-truth boxes."""
    kept = np.ones(len(table.scores), bool) if threshold is None else table.scores >= threshold
    n_ground_truth = int(table.ground_truth.sum())
    if n_ground_truth == 0 or not kept.any():
        return 0.0
    hits = table.hits[kept][np.argsort(-table.scores[kept], kind="stable")]
    precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hits.sum() / n_ground_truth)


@dataclass
class DeepPCBMetrics:
    """DeepPCB AP and F-score under one rule: ``deeppcb`` (the benchmark's script) or
    ``deeppcb-per-class`` (the lenient per-class matching, named so in every key)."""

    rule: str
    map: float  # deeppcb: the script's pooled AP; per-class: the mean of the per-class APs
    per_class_ap: dict[str, float]  # each type's detections ranked alone, under the same pairing
    card_threshold: float | None
    card_precision: float | None
    card_recall: float | None
    card_fscore: float | None
    card_map: float | None  # the AP of the submission cut at the card's threshold
    optimistic_threshold: float  # the threshold with the best F on the scored images themselves
    optimistic_fscore: float

    @property
    def prefix(self) -> str:
        return "deeppcb" if self.rule == OFFICIAL else "deeppcb_per_class"

    def summary(self) -> dict[str, float]:
        p = self.prefix
        values: dict[str, float] = {f"{p}_map": self.map}
        if self.card_threshold is not None:
            values |= {
                f"{p}_fscore_at_card_threshold": self.card_fscore,  # type: ignore[dict-item]
                f"{p}_precision_at_card_threshold": self.card_precision,  # type: ignore[dict-item]
                f"{p}_recall_at_card_threshold": self.card_recall,  # type: ignore[dict-item]
                f"{p}_map_at_card_threshold": self.card_map,  # type: ignore[dict-item]
                "card_threshold": self.card_threshold,
            }
        values |= {f"{p}_fscore_best_threshold_optimistic": self.optimistic_fscore,
                   f"{p}_best_threshold_optimistic": self.optimistic_threshold}
        return values

    def to_json(self) -> dict:
        return self.summary() | {f"{self.prefix}_ap_by_class": self.per_class_ap}


def _metrics(rule: str, table: MatchTable, classes: Sequence[str], map_value: float,
             card_map: float | None, card_threshold: float | None) -> DeepPCBMetrics:
    per_class = {name: table.average_precision(i) for i, name in enumerate(classes)}
    per_class = {name: ap for name, ap in per_class.items() if ap >= 0}
    threshold, _, _, fscore = table.best_threshold()
    at_card = table.fscore_at(card_threshold) if card_threshold is not None else (None, None, None)
    return DeepPCBMetrics(
        rule=rule,
        map=map_value if rule == OFFICIAL else (float(np.mean(list(per_class.values()))) if per_class else 0.0),
        per_class_ap=per_class,
        card_threshold=card_threshold,
        card_precision=at_card[0],
        card_recall=at_card[1],
        card_fscore=at_card[2],
        card_map=card_map,
        optimistic_threshold=threshold,
        optimistic_fscore=fscore,
    )


def deeppcb_metrics(
    predictions: Detections, targets: Detections, classes: Sequence[str], card_threshold: float | None = None,
) -> DeepPCBMetrics:
    """The benchmark's figures (see the module docstring): AP over every detection given, and
    precision / recall / F (and AP) of the submission cut at ``card_threshold``."""
    table = match_official(predictions, targets, len(classes))
    card_map = pooled_average_precision(table, card_threshold) if card_threshold is not None else None
    return _metrics(OFFICIAL, table, classes, pooled_average_precision(table), card_map, card_threshold)


def deeppcb_per_class_metrics(
    predictions: Detections, targets: Detections, classes: Sequence[str], card_threshold: float | None = None,
) -> DeepPCBMetrics:
    """The lenient per-class rule (not the benchmark's): mean per-class AP, F at the card's threshold."""
    table = match_detections(predictions, targets, len(classes), DEEPPCB_IOU, strictly_above=True)
    card_map = None
    if card_threshold is not None:
        kept = table.scores >= card_threshold
        cut = MatchTable(table.scores[kept], table.labels[kept], table.hits[kept], table.ground_truth)
        aps = [ap for i in range(len(classes)) if (ap := cut.average_precision(i)) >= 0]
        card_map = float(np.mean(aps)) if aps else 0.0
    return _metrics(PER_CLASS, table, classes, 0.0, card_map, card_threshold)


def metrics_for_rule(rule: str, predictions: Detections, targets: Detections, classes: Sequence[str],
                     card_threshold: float | None = None) -> DeepPCBMetrics:
    if rule not in RULES:
        raise ValueError(f"unknown DeepPCB rule {rule!r}; choose from {RULES}")
    scorer = deeppcb_metrics if rule == OFFICIAL else deeppcb_per_class_metrics
    return scorer(predictions, targets, classes, card_threshold)


# --- files for the script itself -----------------------------------------------------------------


def sample_name(key: str) -> str:
    """The script's sample name for a dataset key: ``group00041/00041/00041000_test.jpg`` -> ``00041000``."""
    stem = Path(key).name.rsplit(".", 1)[0]
    return stem.removesuffix("_test")


def submission_lines(prediction: dict[str, torch.Tensor], classes: Sequence[str],
                     threshold: float | None = None) -> list[str]:
    """One image's ``x1,y1,x2,y2,confidence,type`` lines (the format the DeepPCB README asks for)."""
    boxes = submitted_boxes(torch.as_tensor(prediction["boxes"]).reshape(-1, 4)).long().tolist()
    scores = torch.as_tensor(prediction["scores"]).float().tolist()
    labels = torch.as_tensor(prediction["labels"]).long().tolist()
    return [f"{x1},{y1},{x2},{y2},{score:.8f},{classes[label]}"
            for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels, strict=True)
            if threshold is None or score >= threshold]


def ground_truth_lines(target: dict[str, torch.Tensor], classes: Sequence[str]) -> list[str]:
    """One image's ground truth as ``x1,y1,x2,y2,type`` lines, in file order."""
    boxes = submitted_boxes(torch.as_tensor(target["boxes"]).reshape(-1, 4)).long().tolist()
    labels = torch.as_tensor(target["labels"]).long().tolist()
    return [f"{x1},{y1},{x2},{y2},{classes[label]}" for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True)]


def write_script_inputs(folder: Path, keys: Sequence[str], predictions: Detections, targets: Detections,
                        classes: Sequence[str], card_threshold: float | None) -> Path:
    """The files the script itself reads, one ``<name>.txt`` per image: ``folder/gt/``, the ground
    truth; ``folder/res/``, the detections at least ``card_threshold`` (the station's submission:
    the script's precision, recall, F and AP at that threshold); ``folder/res-all/``, every
    detection (the script's AP). Zip a folder's files (no sub-folder) and run
    ``python script.py -g=gt.zip -s=res.zip`` with DeepPCB's ``evaluation/script.py``."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"gt": [ground_truth_lines(t, classes) for t in targets],
             "res-all": [submission_lines(p, classes) for p in predictions]}
    if card_threshold is not None:
        parts["res"] = [submission_lines(p, classes, card_threshold) for p in predictions]
    for part, per_image in parts.items():
        (folder / part).mkdir(exist_ok=True)
        for key, lines in zip(keys, per_image, strict=True):
            (folder / part / f"{sample_name(key)}.txt").write_text("".join(f"{line}\n" for line in lines),
                                                                   encoding="utf-8")
    return folder

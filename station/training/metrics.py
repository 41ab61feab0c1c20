"""Classification and detection metrics as typed results.

Classification and COCO detection metrics come from torchmetrics (COCO through the
``faster_coco_eval`` backend); mAP@0.9 and the per-class PR curves are read from the same COCO
precision table that gives mAP@0.5. The DeepPCB benchmark's own rule is in
``station.training.deeppcb``; ``match_detections`` here is the per-class greedy matching behind
F-score curves and the lenient ``deeppcb-per-class`` figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

COCO_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50:0.05:0.95, includes 0.9
DEEPPCB_IOU = 0.33


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return float(F.cross_entropy(logits.float() / temperature, labels.long()))


ECE_BINS = 15  # Guo et al. 2017's choice


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """ECE of the calibrated probabilities (softmax of logits / temperature): the mean gap between
    confidence and accuracy over 15 equal-width confidence bins, weighted by the bins' sizes."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    probabilities = torch.softmax(logits.float() / temperature, dim=1)
    return float(multiclass_calibration_error(probabilities, labels.long(), num_classes=logits.shape[1],
                                              n_bins=ECE_BINS, norm="l1"))


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int  # true instances


@dataclass
class ClassificationMetrics:
    classes: list[str]
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: np.ndarray  # [K, K] counts, rows = true class, columns = predicted
    n_images: int

    def summary(self) -> dict[str, float]:
        return {
            "accuracy": self.accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
        }

    def to_json(self) -> dict:
        return self.summary() | {
            "per_class": {name: vars(scores) for name, scores in self.per_class.items()},
            "confusion": self.confusion.tolist(),
            "classes": self.classes,
        }


def classification_metrics(
    labels: torch.Tensor | Sequence[int],
    predictions: torch.Tensor | Sequence[int],
    classes: Sequence[str],
) -> ClassificationMetrics:
    """Accuracy, macro and per-class precision/recall/F1 and the confusion matrix.

    Macro averages weigh every class with true or predicted instances equally; a class with
    no predictions has precision 0.
    """
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    target = torch.as_tensor(labels, dtype=torch.int64)
    preds = torch.as_tensor(predictions, dtype=torch.int64)
    if target.shape != preds.shape or target.ndim != 1:
        raise ValueError(f"labels {tuple(target.shape)} and predictions {tuple(preds.shape)} must be equal 1-D")
    k = len(classes)
    kwargs = dict(num_classes=k, validate_args=True)
    precision = multiclass_precision(preds, target, average=None, **kwargs)
    recall = multiclass_recall(preds, target, average=None, **kwargs)
    f1 = multiclass_f1_score(preds, target, average=None, **kwargs)
    confusion = multiclass_confusion_matrix(preds, target, **kwargs).numpy()
    support = confusion.sum(axis=1)
    present = torch.from_numpy((support + confusion.sum(axis=0)) > 0)
    per_class = {
        name: ClassScores(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
        for i, name in enumerate(classes)
    }
    return ClassificationMetrics(
        classes=list(classes),
        accuracy=float(multiclass_accuracy(preds, target, average="micro", **kwargs)) if len(target) else 0.0,
        macro_precision=float(precision[present].mean()) if present.any() else 0.0,
        macro_recall=float(recall[present].mean()) if present.any() else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class=per_class,
        confusion=confusion,
        n_images=len(target),
    )


# --- detection: COCO --------------------------------------------------------------------


@dataclass
class DetectionMetrics:
    classes: list[str]
    map50: float
    map75: float
    map90: float
    map50_95: float
    mar100: float
    per_class_ap50: dict[str, float]
    per_class_ap50_95: dict[str, float]
    # class -> precision at the 101 COCO recall points (IoU 0.5); -1 where undefined
    pr_curves: dict[str, np.ndarray] = field(repr=False)
    n_images: int = 0

    def summary(self) -> dict[str, float]:
        return {"map50": self.map50, "map75": self.map75, "map90": self.map90, "map50_95": self.map50_95,
                "mar100": self.mar100}

    def to_json(self) -> dict:
        return self.summary() | {"per_class_ap50": self.per_class_ap50, "per_class_ap50_95": self.per_class_ap50_95}


Detections = Sequence[dict[str, torch.Tensor]]  # per image: boxes [N, 4] xyxy, labels [N], scores [N] (predictions)


def _cpu(items: Detections, with_scores: bool) -> list[dict[str, torch.Tensor]]:
    keys = ("boxes", "labels", "scores") if with_scores else ("boxes", "labels")
    out = []
    for item in items:
        converted = {k: torch.as_tensor(item[k]).detach().cpu() for k in keys}
        converted["boxes"] = converted["boxes"].float().reshape(-1, 4)
        converted["labels"] = converted["labels"].long()
        if with_scores:
            converted["scores"] = converted["scores"].float()
        out.append(converted)
    return out


def _ap_at(precision: torch.Tensor, iou_index: int, class_index: int | None = None) -> float:
    """COCO AP from ``precision[T, R, K, A, M]`` at one IoU (area all, last max-det); -1 if undefined."""
    table = precision[iou_index, :, :, 0, -1]  # [R, K]
    if class_index is not None:
        table = table[:, class_index : class_index + 1]
    valid = table > -1
    if not valid.any():
        return -1.0
    return float(table[valid].mean())


def detection_metrics(predictions: Detections, targets: Detections, classes: Sequence[str]) -> DetectionMetrics:
    """COCO mAP@0.5, @0.75, @0.9, @0.5:0.95, mAR@100 and per-class AP (classes without ground
    truth are left out of the means, as COCO does)."""
    from torchmetrics.detection import MeanAveragePrecision

    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} images")
    metric = MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        iou_thresholds=list(COCO_IOUS),
        class_metrics=True,
        extended_summary=True,
        backend="faster_coco_eval",
    )
    metric.update(_cpu(predictions, True), _cpu(targets, False))
    result = metric.compute()
    precision = result["precision"]  # [T, R, K', A, M]; K' = class ids seen, sorted
    seen = [int(c) for c in torch.as_tensor(result["classes"]).flatten().tolist()]
    per_ap50: dict[str, float] = {}
    per_ap: dict[str, float] = {}
    curves: dict[str, np.ndarray] = {}
    iou90 = COCO_IOUS.index(0.9)
    for column, class_id in enumerate(seen):
        if not 0 <= class_id < len(classes):
            continue
        name = classes[class_id]
        ap50 = _ap_at(precision, 0, column)
        if ap50 < 0:  # predicted but never in the ground truth
            continue
        per_ap50[name] = ap50
        per_ap[name] = float(np.mean([_ap_at(precision, t, column) for t in range(len(COCO_IOUS))]))
        curves[name] = precision[0, :, column, 0, -1].numpy().copy()

    def clean(value: torch.Tensor | float) -> float:
        value = float(value)
        return max(value, 0.0)  # COCO writes -1 when nothing is defined

    return DetectionMetrics(
        classes=list(classes),
        map50=clean(result["map_50"]),
        map75=clean(result["map_75"]),
        map90=max(_ap_at(precision, iou90), 0.0),
        map50_95=clean(result["map"]),
        mar100=clean(result["mar_100"]),
        per_class_ap50=per_ap50,
        per_class_ap50_95=per_ap,
        pr_curves=curves,
        n_images=len(targets),
    )


# --- detection: matching, F-score, DeepPCB ------------------------------------------------


@dataclass
class MatchTable:
    """Every detection, scored against the ground truth: the basis of F-score curves and AP."""

    scores: np.ndarray  # [D]
    labels: np.ndarray  # [D]
    hits: np.ndarray  # [D] bool
    ground_truth: np.ndarray  # [K] ground-truth boxes per class

    def fscore_at(self, threshold: float) -> tuple[float, float, float]:
        """(precision, recall, F) of the detections scoring at least ``threshold``, all classes pooled."""
        kept = self.scores >= threshold
        true_positives = float(self.hits[kept].sum())
        precision = true_positives / kept.sum() if kept.any() else 0.0
        recall = true_positives / self.ground_truth.sum() if self.ground_truth.sum() else 0.0
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return float(precision), float(recall), float(f)

    def best_threshold(self) -> tuple[float, float, float, float]:
        """(threshold, precision, recall, F) at the threshold with the highest F-score."""
        if len(self.scores) == 0:
            return 0.5, 0.0, 0.0, 0.0
        order = np.argsort(-self.scores, kind="stable")
        hits = self.hits[order].astype(np.float64)
        true_positives = np.cumsum(hits)
        precision = true_positives / np.arange(1, len(hits) + 1)
        recall = true_positives / max(self.ground_truth.sum(), 1)
        f = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
        # only cut between distinct scores: a threshold keeps every detection of equal score
        scores = self.scores[order]
        last_of_run = np.append(scores[1:] != scores[:-1], True)
        f = np.where(last_of_run, f, -1.0)
        best = int(np.argmax(f))
        return float(scores[best]), float(precision[best]), float(recall[best]), float(f[best])

    def average_precision(self, class_index: int) -> float:
        """ICDAR 2015 / DeepPCB AP: sum of the precision at every hit, over the ground-truth count."""
        n_ground_truth = int(self.ground_truth[class_index])
        mine = self.labels == class_index
        if n_ground_truth == 0:
            return -1.0
        order = np.argsort(-self.scores[mine], kind="stable")
        hits = self.hits[mine][order]
        if not hits.any():
            return 0.0
        precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        return float(precision_at_hits.sum() / n_ground_truth)


def match_detections(
    predictions: Detections,
    targets: Detections,
    num_classes: int,
    iou_threshold: float = 0.5,
    strictly_above: bool = False,
) -> MatchTable:
    """Greedy one-to-one matching per image and class, highest score first; a detection takes the
    unmatched same-class ground truth it overlaps most, if the IoU passes the threshold."""
    scores, labels, hits = [], [], []
    ground_truth = np.zeros(num_classes, np.int64)
    for prediction, target in zip(_cpu(predictions, True), _cpu(targets, False), strict=True):
        ground_truth += np.bincount(target["labels"].numpy(), minlength=num_classes)[:num_classes]
        for class_index in prediction["labels"].unique().tolist():
            mine = prediction["labels"] == class_index
            det_boxes, det_scores = prediction["boxes"][mine], prediction["scores"][mine]
            order = torch.argsort(det_scores, descending=True, stable=True)
            det_boxes, det_scores = det_boxes[order], det_scores[order]
            gt_boxes = target["boxes"][target["labels"] == class_index]
            hit = np.zeros(len(det_boxes), bool)
            if len(gt_boxes):
                ious = box_iou(det_boxes, gt_boxes)  # [D, G]
                taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
                for d in range(len(det_boxes)):
                    candidate = ious[d].masked_fill(taken, -1.0)
                    best = int(torch.argmax(candidate))
                    passes = candidate[best] > iou_threshold if strictly_above else candidate[best] >= iou_threshold
                    if passes:
                        taken[best] = True
                        hit[d] = True
            scores.append(det_scores.numpy())
            labels.append(np.full(len(det_boxes), class_index, np.int64))
            hits.append(hit)
    return MatchTable(
        scores=np.concatenate(scores) if scores else np.zeros(0, np.float32),
        labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        hits=np.concatenate(hits) if hits else np.zeros(0, bool),
        ground_truth=ground_truth,
    )

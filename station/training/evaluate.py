"""Run a trained model over a dataset and score it: ``station evaluate``'s engine.

The images to score are picked with the split file the model was trained with (its ``val`` or
``test`` subset), or all of them when ``--data`` is a folder the model never saw. Inputs are
prepared from the card exactly as at inference.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from station.devices import resolve_device
from station.inference.networks import classifier_logits, detections, to_device
from station.ml.cards import ModelCard, load_model
from station.training import plots
from station.training.datasets import DatasetIndex, read_dataset
from station.training.deeppcb import RULES as DEEPPCB_RULES
from station.training.deeppcb import DeepPCBMetrics, metrics_for_rule, write_script_inputs
from station.training.loaders import ClassificationData, DetectionData, make_loader
from station.training.metrics import (
    ClassificationMetrics,
    DetectionMetrics,
    classification_metrics,
    detection_metrics,
    expected_calibration_error,
    negative_log_likelihood,
)
from station.training.splits import Split, SplitError

log = logging.getLogger(__name__)

SUBSET_CHOICES = ("auto", "val", "test", "all", "unseen")
PROTOCOLS = ("coco", *DEEPPCB_RULES)  # deeppcb: the benchmark's script; deeppcb-per-class: lenient
EVAL_SCORE_THRESHOLD = 0.001  # keep (almost) every detection: AP integrates over all thresholds
COCO_MAX_DETECTIONS = 100


@dataclass
class ClassifierOutputs:
    logits: torch.Tensor  # [N, K] float32, CPU
    labels: torch.Tensor  # [N]


@dataclass
class DetectorOutputs:
    predictions: list[dict[str, torch.Tensor]]  # image pixels, CPU
    targets: list[dict[str, torch.Tensor]]
    keys: list[str]


@torch.inference_mode()
def run_classifier(model: nn.Module, loader, device: torch.device, amp: str = "auto",
                   progress: bool = False) -> ClassifierOutputs:
    model.eval()
    logits, labels = [], []
    for images, batch_labels in tqdm(loader, desc="classify", disable=not progress, leave=False):
        logits.append(classifier_logits(model, to_device(images, device), device, amp).cpu())
        labels.append(torch.as_tensor(batch_labels))
    if not logits:
        return ClassifierOutputs(torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64))
    return ClassifierOutputs(torch.cat(logits), torch.cat(labels))


@torch.inference_mode()
def run_detector(model: nn.Module, loader, device: torch.device, *, nms_iou: float = 0.5,
                 max_det: int = COCO_MAX_DETECTIONS, score_thresh: float = EVAL_SCORE_THRESHOLD,
                 amp: str = "auto", progress: bool = False, views: int = 1) -> DetectorOutputs:
    """Every image's detections; ``views`` > 1: dihedral test-time views fused (``station.ml.tta``)."""
    model.eval()
    predictions, targets, keys = [], [], []
    for batch in tqdm(loader, desc="detect", disable=not progress, leave=False):
        found = detections(model, to_device(batch.images, device), device, views=views, score_thresh=score_thresh,
                           nms_iou=nms_iou, max_det=max_det, letterboxes=batch.letterboxes, amp=amp)
        predictions += [{k: v.float().cpu() if k != "labels" else v.cpu() for k, v in item.items()} for item in found]
        targets += batch.targets
        keys += batch.keys
    return DetectorOutputs(predictions, targets, keys)


@dataclass
class EvaluationResult:
    task: str
    model_name: str
    data_root: str
    subset: str
    n_images: int
    classification: ClassificationMetrics | None = None
    detection: DetectionMetrics | None = None
    deeppcb: DeepPCBMetrics | None = None
    calibration: dict[str, float] = field(default_factory=dict)  # NLL and ECE with the card's temperature
    views: int = 1  # detectors: test-time views fused per image
    files: list[Path] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "path: reason" of each file or box the dataset lost

    def metrics(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for part in (self.classification, self.detection, self.deeppcb):
            if part is not None:
                values |= part.summary()
        return values

    def to_json(self) -> dict:
        details: dict = {}
        for part in (self.classification, self.detection, self.deeppcb):
            if part is not None:
                details |= part.to_json()
        return {
            "task": self.task,
            "n_images": self.n_images,
            "metrics": self.metrics(),
            "model": self.model_name,
            "data": self.data_root,
            "subset": self.subset,
            "test_time_views": self.views,
            "details": details | ({"calibration": self.calibration} if self.calibration else {}),
            "left_out": self.left_out,
        }


def card_split_file(model_dir: Path, card: ModelCard) -> Path | None:
    if not card.data.split_file:
        return None
    path = Path(card.data.split_file)
    return path if path.is_absolute() else model_dir / path


def select_subset(index: DatasetIndex, split: Split | None, subset: str) -> tuple[DatasetIndex, str]:
    """The images to evaluate and what they are ("val", "test", "all", "unseen")."""
    if subset not in SUBSET_CHOICES:
        raise SplitError(f"unknown subset {subset!r}; choose from {SUBSET_CHOICES}")
    present = {sample.key for sample in index.samples}
    known = split.known_keys(index) if split is not None else set()
    if subset == "all":
        return index, "all"
    if subset == "auto":
        if not known:
            return index, "all"  # a dataset the model never saw
        subset = "test" if split is not None and split.subsets.get("test") else "val"
        if len(known) < len(present):
            log.info("%d images of %s are not in the split (see --split unseen)", len(present - known), index.root)
    if split is None:
        raise SplitError(f"--split {subset} needs a split file (the card names none; pass --split-file)")
    if subset == "unseen":
        return index.subset(present - known), "unseen"
    keys = set(split.keys(subset)) & known
    if not keys:
        raise SplitError(f"none of the split's {subset!r} images is in {index.root}; this is not the split's "
                         "dataset (use --split all)")
    return index.subset(keys), subset


def evaluate(
    model_dir: str | Path,
    data: str | Path,
    fmt: str | None = None,
    *,
    subset: str = "auto",
    split_file: str | Path | None = None,
    protocol: str = "coco",
    device: str = "auto",
    batch: int = 16,
    workers: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = True,
    views: int | None = None,
) -> EvaluationResult:
    """Score the model in ``model_dir``; ``views`` overrides the card's test-time views (detectors)."""
    model_dir = Path(model_dir)
    torch_device = resolve_device(device)
    model, card = load_model(model_dir, torch_device)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
    if protocol in DEEPPCB_RULES and card.task != "detection":
        raise ValueError(f"--protocol {protocol} scores detectors; this card is a classifier")
    index = read_dataset(data, fmt or card.data.format, classes=card.classes)
    split_path = Path(split_file) if split_file else card_split_file(model_dir, card)
    split = Split.load(split_path) if split_path is not None and split_path.is_file() else None
    if split_file and split is None:
        raise SplitError(f"split file {split_file} does not exist")
    chosen, subset_name = select_subset(index, split, subset)
    log.info("%s", chosen.summary(f"evaluating {card.name} on {chosen.root} [{subset_name}]"))
    for problem in index.problems[:20]:
        log.warning("%s", problem)
    result = EvaluationResult(card.task, card.name, str(chosen.root), subset_name, len(chosen.samples),
                              left_out=[str(problem) for problem in index.problems])
    if card.task == "classification":
        dataset = ClassificationData(chosen.samples, card)  # type: ignore[arg-type]
        outputs = run_classifier(model, make_loader(dataset, batch, shuffle=False, workers=workers), torch_device,
                                 progress=progress)
        result.classification = classification_metrics(outputs.labels, outputs.logits.argmax(1), card.classes)
        if len(outputs.labels):
            result.calibration["nll"] = negative_log_likelihood(outputs.logits, outputs.labels, card.temperature)
            result.calibration["ece"] = expected_calibration_error(outputs.logits, outputs.labels, card.temperature)
    else:
        dataset = DetectionData(chosen.samples, card)  # type: ignore[arg-type]
        result.views = views or card.test_time_views
        outputs = run_detector(model, make_loader(dataset, batch, shuffle=False, workers=workers), torch_device,
                               nms_iou=card.thresholds.nms_iou, progress=progress, views=result.views)
        result.detection = detection_metrics(outputs.predictions, outputs.targets, card.classes)
        if protocol in DEEPPCB_RULES:
            result.deeppcb = metrics_for_rule(protocol, outputs.predictions, outputs.targets, card.classes,
                                              card_threshold=card.thresholds.score)
    if out_dir is not None:
        result.files = write_reports(result, Path(out_dir))
        if result.deeppcb is not None:
            result.files.append(write_script_inputs(Path(out_dir) / "deeppcb-script", outputs.keys,
                                                    outputs.predictions, outputs.targets, card.classes,
                                                    card.thresholds.score))
    return result


def write_reports(result: EvaluationResult, out_dir: Path) -> list[Path]:
    """metrics.json, plus confusion matrix CSV + PNG (classification) or PR curves PNG and per-class
    AP CSV (detection)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "metrics.json"]
    files[0].write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    if result.classification is not None:
        metrics = result.classification
        confusion_csv = out_dir / "confusion.csv"
        with open(confusion_csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["true \\ predicted", *metrics.classes])
            for name, row in zip(metrics.classes, metrics.confusion.tolist(), strict=True):
                writer.writerow([name, *row])
        files += [confusion_csv, plots.confusion_matrix(metrics.confusion, metrics.classes, out_dir / "confusion.png")]
        per_class = out_dir / "per_class.csv"
        with open(per_class, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", "precision", "recall", "f1", "support"])
            for name, scores in metrics.per_class.items():
                writer.writerow([name, f"{scores.precision:.6f}", f"{scores.recall:.6f}", f"{scores.f1:.6f}",
                                 scores.support])
        files.append(per_class)
    if result.detection is not None:
        metrics_det = result.detection
        files.append(plots.pr_curves(metrics_det.pr_curves, metrics_det.per_class_ap50, out_dir / "pr_curves.png"))
        per_class = out_dir / "per_class.csv"
        with open(per_class, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            header = ["class", "ap50", "ap50_95"] + ([f"{result.deeppcb.prefix}_ap"] if result.deeppcb else [])
            writer.writerow(header)
            for name in metrics_det.classes:
                row = [name, _fmt(metrics_det.per_class_ap50.get(name)), _fmt(metrics_det.per_class_ap50_95.get(name))]
                if result.deeppcb:
                    row.append(_fmt(result.deeppcb.per_class_ap.get(name)))
                writer.writerow(row)
        files.append(per_class)
    return files


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


_DEEPPCB_AP_LABEL = {"deeppcb": "DeepPCB AP", "deeppcb-per-class": "DeepPCB AP (lenient per-class rule)"}


def format_report(result: EvaluationResult) -> str:
    """The human-readable summary printed by ``station evaluate``."""
    lines = [f"{result.model_name} on {result.data_root} [{result.subset}], {result.n_images} images"
             + (f", {result.views} test-time views" if result.views > 1 else "")]
    for key, value in (result.metrics() | result.calibration).items():
        lines.append(f"  {key:<38} {value:.4f}")
    per_class: Sequence[tuple[str, str]] = []
    if result.classification is not None:
        per_class = [(n, f"P {s.precision:.3f}  R {s.recall:.3f}  F1 {s.f1:.3f}  n {s.support}")
                     for n, s in result.classification.per_class.items()]
    elif result.detection is not None:
        per_class = [(n, f"AP50 {result.detection.per_class_ap50[n]:.3f}  AP50:95 "
                      f"{result.detection.per_class_ap50_95[n]:.3f}"
                      + (f"  {_DEEPPCB_AP_LABEL[result.deeppcb.rule]} {result.deeppcb.per_class_ap.get(n, 0):.3f}"
                         if result.deeppcb else ""))
                     for n in result.detection.per_class_ap50]
    if per_class:
        lines.append("  per class:")
        width = max(len(n) for n, _ in per_class)
        lines += [f"    {name:<{width}}  {text}" for name, text in per_class]
    if result.left_out:
        lines.append(f"  left out ({len(result.left_out)}):")
        lines += [f"    {problem}" for problem in result.left_out]
    for path in result.files:
        lines.append(f"  wrote {path}")
    return "\n".join(lines)

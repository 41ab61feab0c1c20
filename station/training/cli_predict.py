"""``station predict DIR --model M --out OUT --format coco|yolo|voc|labelme|folder``: a model's
predictions written as a dataset, for correction in an annotation tool.

Detectors write their boxes at the card's score threshold (``--score`` overrides it) with each
box's score (COCO ``score``, LabelMe/X-AnyLabeling ``score``, VOC ``<score>``; YOLO label files
have no room for it); classifiers write class folders (``folder``) named by the predicted class.
The output folder holds the images beside their labels, so after correcting it in
X-AnyLabeling, AnyLabeling or CVAT, ``station train … --data OUT --format FMT`` reads it back.
Inputs are prepared from the card and run through the same network calls as evaluation.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from station.capture.images import ImageReadError, read_image
from station.devices import resolve_device
from station.inference.networks import classifier_logits, detections, to_device
from station.ml.cards import ModelLoadError, load_model, prepare_input
from station.training.datasets import IMAGE_SUFFIXES
from station.training.interchange import INTERCHANGE_FORMATS, LabelledImage, write_labelled

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder of images (subfolders included)")
    parser.add_argument("--model", required=True, type=Path, help="a model folder (card.json + weights)")
    parser.add_argument("--out", required=True, type=Path, help="output dataset folder")
    parser.add_argument("--format", required=True, choices=INTERCHANGE_FORMATS,
                        help="coco, yolo, voc or labelme for a detector; folder for a classifier")
    parser.add_argument("--score", type=float, help="detectors: keep boxes scoring at least this "
                        "(default: the card's threshold)")
    parser.add_argument("--reference", type=Path, help="defect-free template, for detectors that compare against one")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def predict_folder(folder: Path, model_dir: Path, *, score: float | None = None, reference: np.ndarray | None = None,
                   device: str = "auto") -> tuple[list[LabelledImage], list[str], list[str]]:
    """(labelled images, the model's classes, "path: reason" of each image left out)."""
    torch_device = resolve_device(device)
    model, card = load_model(model_dir, torch_device)
    if card.uses_reference and reference is None:
        raise ValueError(f"{card.name} compares against a template: give it with --reference")
    threshold = card.thresholds.score if score is None else score
    labelled, skipped = [], []
    for path in _images(folder):
        try:
            image = read_image(path)
            prepared = prepare_input(image, card, reference)
        except (ImageReadError, ValueError) as exc:
            skipped.append(f"{path}: {exc}")
            continue
        height, width = image.shape[:2]
        batch = to_device([prepared.tensor], torch_device)
        if card.task == "classification":
            probabilities = torch.softmax(classifier_logits(model, batch, torch_device) / card.temperature, 1)[0]
            best = int(probabilities.argmax())
            labelled.append(LabelledImage(path, width, height, image_label=card.classes[best],
                                          attributes={"confidence": float(probabilities[best])}))
            continue
        found = detections(model, batch, torch_device, views=card.test_time_views, score_thresh=threshold,
                           nms_iou=card.thresholds.nms_iou, max_det=card.thresholds.max_det,
                           letterboxes=[prepared.letterbox])[0]
        boxes = found["boxes"].float().cpu().numpy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        labelled.append(LabelledImage(path, width, height, boxes=boxes,
                                      labels=[card.classes[i] for i in found["labels"].tolist()],
                                      scores=found["scores"].float().cpu().tolist()))
    return labelled, list(card.classes), skipped


def run(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        print(f"station predict: {args.folder} is not a folder", file=sys.stderr)
        return 1
    try:
        reference = read_image(args.reference) if args.reference else None
        labelled, classes, skipped = predict_folder(args.folder, args.model, score=args.score, reference=reference,
                                                    device=args.device)
        if args.format == "folder" and labelled and labelled[0].image_label is None:
            raise ValueError("a detector's predictions need coco, yolo, voc or labelme, not folder")
        if args.format != "folder" and labelled and labelled[0].image_label is not None:
            raise ValueError("a classifier's predictions are class folders: use --format folder")
        write_labelled(labelled, classes, args.out, args.format)
    except (ModelLoadError, ImageReadError, ValueError) as exc:
        print(f"station predict: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"station predict: cannot write {args.out} ({exc.strerror or exc})", file=sys.stderr)
        return 1
    for line in skipped:
        print(f"left out: {line}", file=sys.stderr)
    boxes = sum(len(item.labels) for item in labelled)
    what = f"{boxes} boxes" if labelled and labelled[0].image_label is None else "one class each"
    print(f"wrote {len(labelled)} images ({what}) to {args.out} as {args.format}"
          + (f"; {len(skipped)} left out" if skipped else ""))
    return 0

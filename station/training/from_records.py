"""``station dataset from-audit|from-batch``: the lab's reviewed decisions as a training set.

From the audit log: every accepted or overridden inspection (VERDICT, OVERRIDE, BATCH_VERDICT) with its archived
lossless image, labelled with the *final* decision: an accept keeps the call, an override the
expert's material; a later CORRECTION that names a material replaces it. Held chips
(REJECT_HOLD), inspections without a verdict, and entries whose archived image is missing or no
longer hashes to the record are left out, each with its reason. The defect boxes are the ones on
the record at the decision (the operator accepts or overrides the material; boxes are not
edited one by one on the station, so correct them in an annotation tool before training a
detector on them). An override of the findings alone (a recipe without a classifier) disputes
the boxes without saying which are wrong, so box formats leave such an image out.

From a batch-review store: every item accepted or overridden in batch review, the image from the
reviewed folder (left out when it changed since its review). With ``--predictions``, every item
the batch run finished, reviewed or not, with the models' own calls and each box's score: the
batch results in an annotation tool's format, to correct there and train on.

``manifest.jsonl`` beside the dataset names each image's source: audit entry id and hash (or the
batch item and its audit entry), chip ID, verdict, station, time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from station.training.interchange import INTERCHANGE_FORMATS, LabelledImage, write_labelled

DECISIONS = ("VERDICT", "OVERRIDE", "BATCH_VERDICT")
# an override without a material (a recipe with a detector only) says the boxes are wrong, not
# which are: such an image is no box dataset's truth
FINDINGS_OVERRIDDEN = "findings_overridden"


@dataclass
class RecordSet:
    """What a dataset is made of: the images, their classes, and what was left out and why."""

    items: list[LabelledImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    material_classes: set[str] = field(default_factory=set)
    defect_classes: set[str] = field(default_factory=set)


def _boxes(defects: Iterable[dict]) -> tuple[np.ndarray, list[str]]:
    """Boxes and classes of the audit record's defects (``{"class", "score", "box"}``)."""
    defects = list(defects)
    boxes = np.asarray([d["box"] for d in defects], dtype=np.float32).reshape(-1, 4)
    return boxes, [str(d["class"]) for d in defects]


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def records_from_audit(log, *, since: date | str | None = None, recipe: str | None = None) -> RecordSet:
    """The decided inspections of ``log`` (an open ``AuditLog``), newest decision per chip image."""
    entries = log.query(from_=since)
    corrections = {e.refers_to: e for e in entries if e.action == "CORRECTION" and e.refers_to is not None}
    found = RecordSet()
    for entry in entries:
        if recipe is not None and entry.recipe != recipe:
            continue
        if entry.action == "REJECT_HOLD":
            found.skipped.append(f"entry {entry.id}: held ({entry.reason or 'no reason'}), not a decision to learn from")
            continue
        if entry.action not in DECISIONS:
            continue
        material = entry.material
        correction = corrections.get(entry.id)
        if correction is not None:
            if not correction.material:
                found.skipped.append(f"entry {entry.id}: corrected by entry {correction.id} without a material")
                continue
            material = correction.material
        image = log.image_file(entry.image_path)
        status = log.image_status(entry)
        if status != "ok":
            found.skipped.append(f"entry {entry.id}: archived image {status or 'not recorded'} ({entry.image_path})")
            continue
        width, height = _image_size(image)
        boxes, labels = _boxes(entry.defects)
        found.items.append(LabelledImage(
            image, width, height, boxes=boxes, labels=labels, image_label=material,
            attributes={"audit_entry": entry.id, "audit_hash": entry.hash, "chip_id": entry.chip_id,
                        "verdict": entry.verdict, "corrected_by": correction.id if correction else None,
                        "station_id": entry.station_id, "time_utc": entry.time_utc, "recipe": entry.recipe,
                        FINDINGS_OVERRIDDEN: entry.verdict == "override" and not material},
        ))
        if material:
            found.material_classes.add(material)
        found.defect_classes.update(labels)
    return found


def records_from_batch(folder: Path, recipe: str, *, predictions: bool = False) -> RecordSet:
    """The reviewed items of the batch-review store of ``folder`` under ``recipe`` (a name or a
    recipe file, as ``station batch`` takes it); with ``predictions``, every finished item with the
    models' calls and box scores (reviewed or not)."""
    from station.review.store import BatchStore

    found = RecordSet()
    recipe_name, detector_classes = _recipe_name_and_detector_classes(recipe)
    if predictions:
        found.defect_classes.update(detector_classes)
    with BatchStore.for_folder(folder, recipe_name) as store:
        for record in store.iter_records():
            row = record.row
            if row.review is None and not (predictions and row.is_done):
                if row.is_done:
                    found.skipped.append(f"{row.relative_path}: not reviewed")
                continue
            image = folder / row.relative_path
            try:
                digest = hashlib.sha256(image.read_bytes()).hexdigest()
            except OSError as exc:
                found.skipped.append(f"{row.relative_path}: cannot read ({exc.strerror or exc})")
                continue
            if digest != row.sha256:
                found.skipped.append(f"{row.relative_path}: changed since it was {'reviewed' if row.review else 'inspected'}")
                continue
            material = row.reviewed_material or row.material
            defects = record.result.defects if record.result is not None else []
            boxes = np.asarray([d.box for d in defects], dtype=np.float32).reshape(-1, 4)
            labels = [d.label for d in defects]
            attributes = {"batch_item": row.relative_path, "review": row.review, "audit_entry": row.audit_entry_id,
                          "reviewed_by": record.reviewed_by, "reviewed_at": record.reviewed_at,
                          FINDINGS_OVERRIDDEN: not predictions and row.review == "overridden" and not material}
            if predictions:
                attributes |= {"predicted_material": row.material, "confidence": row.confidence,
                               "uncertain": row.uncertain}
            found.items.append(LabelledImage(
                image, record.width or 0, record.height or 0, boxes=boxes, labels=labels, image_label=material,
                scores=[d.score for d in defects] if predictions else None, attributes=attributes,
            ))
            if material:
                found.material_classes.add(material)
            found.defect_classes.update(labels)
    return found


def _recipe_name_and_detector_classes(recipe: str) -> tuple[str, list[str]]:
    """The recipe's name and its detector's classes (so that an annotator can draw a box of a
    class the model did not find); the name as given and no classes when the recipe or its
    detector cannot be read (the classes found are written then)."""
    from station.inference import RecipeError
    from station.ml.cards import ModelLoadError, load_card
    from station.review.cli import resolve_recipe

    try:
        resolved = resolve_recipe(recipe)
    except (RecipeError, OSError):
        return recipe, []
    try:
        return resolved.name, list(load_card(resolved.model_dir(resolved.detector)).classes) if resolved.detector else []
    except (ModelLoadError, OSError):
        return resolved.name, []


def write_record_set(found: RecordSet, out: Path, fmt: str) -> int:
    """Write the dataset and its manifest; the number of images written."""
    if fmt == "folder":
        items = [item for item in found.items if item.image_label]
        classes = sorted(found.material_classes)
    else:
        items, classes = [], sorted(found.defect_classes)
        for item in found.items:
            if item.attributes.get(FINDINGS_OVERRIDDEN):
                source = item.attributes.get("batch_item") or f"entry {item.attributes.get('audit_entry')}"
                found.skipped.append(f"{source}: its findings were overridden (boxes disputed; correct them "
                                     "in an annotation tool, e.g. from station predict)")
            else:
                items.append(item)
    written = write_labelled(items, classes, out, fmt)
    with (out / "manifest.jsonl").open("w", encoding="utf-8") as manifest:
        for item, path in zip(items, written):
            line = {"image": path.relative_to(out).as_posix(), "label": item.image_label, **item.attributes}
            manifest.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(written)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="SOURCE")
    audit = sub.add_parser("from-audit", help="the audit log's accepted and overridden inspections")
    audit.add_argument("--db", metavar="FILE|URL", help="audit database (default: the station's own log)")
    audit.add_argument("--since", help="only decisions on or after this date (YYYY-MM-DD, station time)")
    audit.add_argument("--recipe", help="only this recipe's inspections")
    batch = sub.add_parser("from-batch", help="a batch-review store's accepted and overridden items")
    batch.add_argument("folder", type=Path, metavar="DIR", help="the reviewed folder")
    batch.add_argument("--recipe", required=True, help="the recipe it was reviewed with (a name or a recipe .json file)")
    batch.add_argument("--predictions", action="store_true",
                       help="every item the batch run finished, reviewed or not, with the models' calls and box "
                       "scores (the batch results, for correction in an annotation tool)")
    for source in (audit, batch):
        source.add_argument("--out", type=Path, required=True, help="output dataset folder")
        source.add_argument("--format", default="folder", choices=INTERCHANGE_FORMATS,
                            help="folder: material classes (default); coco, yolo, voc, labelme: the defect boxes")


def run(args: argparse.Namespace) -> int:
    from station.audit.entry import AuditError
    from station.review.store import StoreError

    command = getattr(args, "dataset_command", None)
    if command not in ("from-audit", "from-batch"):
        print("station dataset: choose from-audit or from-batch (see station dataset -h)", file=sys.stderr)
        return 2
    try:
        if command == "from-audit":
            from station.audit import AuditLog
            from station.audit.backend import configured_location, is_url

            location = (args.db if is_url(args.db) else Path(args.db)) if args.db else configured_location()
            with AuditLog(location, readonly=True) as log:
                found = records_from_audit(log, since=args.since, recipe=args.recipe)
        else:
            found = records_from_batch(args.folder, args.recipe, predictions=args.predictions)
        count = write_record_set(found, args.out, args.format)
    except (OSError, ValueError, AuditError, StoreError) as exc:
        print(f"station dataset {command}: {exc}", file=sys.stderr)
        return 1
    for line in found.skipped:
        print(f"left out: {line}", file=sys.stderr)
    print(f"wrote {count} images to {args.out} as {args.format} ({len(found.skipped)} left out; see manifest.jsonl)")
    return 0

"""Writing labelled images in the formats annotation tools read: COCO, YOLO, Pascal VOC, LabelMe,
and class folders.

Used by ``station predict`` (a model's detections, for correction in X-AnyLabeling, AnyLabeling or
CVAT) and by ``station dataset from-audit|from-batch`` (the reviewed decisions). What is written
reads back with ``station.training.datasets.read_dataset`` (same boxes, same classes): the
images are copied beside their labels, so the output folder is a dataset ``station train``
takes as it is.

Box conventions on disk (``datasets.py`` reads them back the same way): COCO ``[x, y, w, h]``
floats; YOLO ``class cx cy w h`` normalised floats; VOC 1-based inclusive integer corners
(``xmin = x1 + 1`` rounded, the only lossy format: whole pixels); LabelMe a rectangle's two
corner points in pixels.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

INTERCHANGE_FORMATS = ("coco", "yolo", "voc", "labelme", "folder")


@dataclass(frozen=True)
class LabelledImage:
    """One image and what is known about it: boxes (detection) or one class (classification)."""

    image: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # [N, 4] x1y1x2y2 pixels
    labels: Sequence[str] = ()
    scores: Sequence[float] | None = None  # a model's confidences (predictions); None for reviewed labels
    image_label: str | None = None  # classification
    attributes: dict = field(default_factory=dict)  # provenance written beside it (e.g. the audit entry)


def _without_empty_boxes(item: LabelledImage) -> LabelledImage:
    """``item`` without boxes of no area (a box clipped to the image edge): no reader keeps them."""
    keep = (item.boxes[:, 2] > item.boxes[:, 0]) & (item.boxes[:, 3] > item.boxes[:, 1])
    if keep.all():
        return item
    scores = None if item.scores is None else [s for s, k in zip(item.scores, keep) if k]
    return replace(item, boxes=item.boxes[keep], labels=[label for label, k in zip(item.labels, keep) if k],
                   scores=scores)


def _place_image(source: Path, target: Path) -> None:
    # a copy, never a hard link: a tool that rewrote the dataset's image would rewrite the
    # audit archive's file with it
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _unique_names(items: Sequence[LabelledImage]) -> list[str]:
    """File names for the images, unique within the output (two folders' img1.png both survive)."""
    names, seen = [], set()
    for item in items:
        stem, suffix = item.image.stem, item.image.suffix.lower()
        name, number = f"{stem}{suffix}", 1
        while name.lower() in seen:
            number += 1
            name = f"{stem}-{number}{suffix}"
        seen.add(name.lower())
        names.append(name)
    return names


def write_labelled(items: Iterable[LabelledImage], classes: Sequence[str], out: Path, fmt: str) -> list[Path]:
    """Write ``items`` under ``out`` in ``fmt``; returns the written image paths, in order."""
    if fmt not in INTERCHANGE_FORMATS:
        raise ValueError(f"format must be one of {INTERCHANGE_FORMATS}, got {fmt!r}")
    items = list(items)
    classes = list(classes)
    for item in items:
        named = [item.image_label] if fmt == "folder" else item.labels  # class folders carry no boxes
        unknown = sorted({label for label in named if label and label not in classes})
        if unknown:
            raise ValueError(f"{item.image}: labels {unknown} are not among the classes {classes}")
    items = [_without_empty_boxes(item) for item in items]
    out.mkdir(parents=True, exist_ok=True)
    names = _unique_names(items)
    writer = {"coco": _write_coco, "yolo": _write_yolo, "voc": _write_voc, "labelme": _write_labelme,
              "folder": _write_folder}[fmt]
    return writer(items, names, classes, out)


def _write_folder(items, names, classes, out: Path) -> list[Path]:
    written = []
    for item, name in zip(items, names):
        if item.image_label is None:
            raise ValueError(f"{item.image}: the folder format needs an image label (a classification)")
        _place_image(item.image, target := out / item.image_label / name)
        written.append(target)
    return written


def _write_coco(items, names, classes, out: Path) -> list[Path]:
    images, annotations, written = [], [], []
    for image_id, (item, name) in enumerate(zip(items, names), start=1):
        _place_image(item.image, target := out / "images" / name)
        written.append(target)
        images.append({"id": image_id, "file_name": name, "width": item.width, "height": item.height,
                       **({"station": item.attributes} if item.attributes else {})})
        for index, (box, label) in enumerate(zip(item.boxes.tolist(), item.labels)):
            x1, y1, x2, y2 = box
            annotation = {"id": len(annotations) + 1, "image_id": image_id, "category_id": classes.index(label) + 1,
                          "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            if item.scores is not None:
                annotation["score"] = float(item.scores[index])
            annotations.append(annotation)
    categories = [{"id": i + 1, "name": name, "supercategory": "defect"} for i, name in enumerate(classes)]
    document = {"images": images, "annotations": annotations, "categories": categories}
    (out / "annotations.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return written


def _write_yolo(items, names, classes, out: Path) -> list[Path]:
    written = []
    for item, name in zip(items, names):
        _place_image(item.image, target := out / "images" / name)
        written.append(target)
        lines = []
        for box, label in zip(item.boxes.tolist(), item.labels):
            x1, y1, x2, y2 = box
            lines.append(f"{classes.index(label)} {(x1 + x2) / 2 / item.width:.6f} {(y1 + y2) / 2 / item.height:.6f} "
                         f"{(x2 - x1) / item.width:.6f} {(y2 - y1) / item.height:.6f}")
        label_path = out / "labels" / Path(name).with_suffix(".txt")
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (out / "classes.txt").write_text("".join(name + "\n" for name in classes), encoding="utf-8")
    (out / "data.yaml").write_text(
        "# written by station; train/val are the same folder until the lab splits it\n"
        f"path: .\ntrain: images\nval: images\nnc: {len(classes)}\nnames: {json.dumps(classes)}\n",
        encoding="utf-8",
    )
    return written


def _write_voc(items, names, classes, out: Path) -> list[Path]:
    written = []
    for item, name in zip(items, names):
        _place_image(item.image, target := out / "JPEGImages" / name)
        written.append(target)
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = name
        size = ET.SubElement(root, "size")
        for key, value in (("width", item.width), ("height", item.height), ("depth", 3)):
            ET.SubElement(size, key).text = str(value)
        for index, (box, label) in enumerate(zip(item.boxes.tolist(), item.labels)):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = label
            ET.SubElement(obj, "difficult").text = "0"
            if item.scores is not None:
                ET.SubElement(obj, "score").text = f"{item.scores[index]:.4f}"
            bndbox = ET.SubElement(obj, "bndbox")
            x1, y1, x2, y2 = (round(v) for v in box)
            for key, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
                ET.SubElement(bndbox, key).text = str(value)
        annotation = out / "Annotations" / Path(name).with_suffix(".xml")
        annotation.parent.mkdir(parents=True, exist_ok=True)
        ET.indent(root)
        ET.ElementTree(root).write(annotation, encoding="utf-8", xml_declaration=True)
    return written


def _write_labelme(items, names, classes, out: Path) -> list[Path]:
    written = []
    for item, name in zip(items, names):
        _place_image(item.image, target := out / name)
        written.append(target)
        shapes = []
        for index, (box, label) in enumerate(zip(item.boxes.tolist(), item.labels)):
            x1, y1, x2, y2 = box
            shape = {"label": label, "points": [[x1, y1], [x2, y2]], "group_id": None, "description": "",
                     "shape_type": "rectangle", "flags": {}}
            if item.scores is not None:
                shape["score"] = float(item.scores[index])  # X-AnyLabeling shows it
            shapes.append(shape)
        document = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": name, "imageData": None,
                    "imageHeight": item.height, "imageWidth": item.width,
                    **({"station": item.attributes} if item.attributes else {})}
        (out / Path(name).with_suffix(".json")).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return written

"""Writing synthetic samples as datasets (class folders, Pascal VOC, YOLO) and contact sheets.

Box conventions on disk:

* Pascal VOC: integer, 1-based, inclusive pixel indices, as the VOC devkit has them: a box
  covering pixel columns 10..19 (0-based) is ``xmin=11, xmax=20``. Our float boxes are
  widened to whole pixels when written; :func:`read_voc` converts back to x1y1x2y2 with
  pixel column i spanning [i, i + 1) (``x1 = xmin - 1, x2 = xmax``).
* YOLO: ``class cx cy w h`` normalised to 0..1, exact (no rounding to pixels).

Every format also gets ``manifest.jsonl``: one line per image with its path (relative to
the dataset folder), seed, material, package type, float boxes and labels, so that any
image can be re-rendered with ``render_package(seed, material, defects, size)``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from station.synth.defects import DEFECT_CLASSES
from station.synth.packages import MATERIALS
from station.synth.render import SynthSample

FORMATS = ("folder", "voc", "yolo")


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image; raises OSError naming the file when OpenCV cannot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write image '{path}'")


# -- Pascal VOC ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VocAnnotation:
    filename: str
    width: int
    height: int
    material: str | None
    package_type: str | None
    boxes: np.ndarray  # [N, 4] float32 x1y1x2y2, pixel column i spans [i, i + 1)
    labels: list[str]


def voc_xml(sample: SynthSample, filename: str, folder: str = "images") -> ET.ElementTree:
    height, width = sample.image.shape[:2]
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = filename
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "station synth"
    ET.SubElement(source, "seed").text = str(sample.seed)
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    ET.SubElement(root, "material").text = sample.material
    ET.SubElement(root, "package_type").text = sample.package_type
    for box, label in zip(sample.boxes, sample.labels):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = label
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bndbox = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = (float(v) for v in box)
        ET.SubElement(bndbox, "xmin").text = str(math.floor(x1) + 1)
        ET.SubElement(bndbox, "ymin").text = str(math.floor(y1) + 1)
        ET.SubElement(bndbox, "xmax").text = str(max(math.ceil(x2), math.floor(x1) + 1))
        ET.SubElement(bndbox, "ymax").text = str(max(math.ceil(y2), math.floor(y1) + 1))
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def read_voc(path: Path | str) -> VocAnnotation:
    """Parse a VOC XML file (ours or any other); raises ValueError naming the file if malformed."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        width = int(size.findtext("width"))  # type: ignore[union-attr, arg-type]
        height = int(size.findtext("height"))  # type: ignore[union-attr, arg-type]
        boxes, labels = [], []
        for obj in root.iter("object"):
            bndbox = obj.find("bndbox")
            corners = ("xmin", "ymin", "xmax", "ymax")
            xmin, ymin, xmax, ymax = (float(bndbox.findtext(k)) for k in corners)  # type: ignore[union-attr, arg-type]
            boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])
            labels.append(obj.findtext("name", "").strip())
    except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed VOC annotation '{path}': {exc}") from exc
    return VocAnnotation(
        filename=root.findtext("filename", ""),
        width=width,
        height=height,
        material=root.findtext("material"),
        package_type=root.findtext("package_type"),
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        labels=labels,
    )


# -- YOLO --------------------------------------------------------------------------------


def yolo_lines(sample: SynthSample) -> list[str]:
    height, width = sample.image.shape[:2]
    lines = []
    for (x1, y1, x2, y2), label in zip(sample.boxes.tolist(), sample.labels):
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        w, h = (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{DEFECT_CLASSES.index(label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


# -- datasets ------------------------------------------------------------------------------


class DatasetWriter:
    """Writes samples one by one in ``fmt``; ``close()`` writes the index files."""

    def __init__(self, out: Path, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown dataset format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.out = Path(out)
        self.format = fmt
        self.out.mkdir(parents=True, exist_ok=True)
        self.counts = {material: 0 for material in MATERIALS}
        self.defect_count = 0
        self._manifest = (self.out / "manifest.jsonl").open("w", encoding="utf-8")

    def add(self, index: int, sample: SynthSample) -> Path:
        stem = f"{index:06d}_{sample.material}"
        if self.format == "folder":
            image_path = self.out / sample.material / f"{stem}.png"
        else:
            image_path = self.out / "images" / f"{stem}.png"
        write_png(image_path, sample.image)
        if self.format == "voc":
            xml_path = self.out / "annotations" / f"{stem}.xml"
            xml_path.parent.mkdir(exist_ok=True)
            voc_xml(sample, image_path.name).write(xml_path, encoding="utf-8", xml_declaration=True)
        elif self.format == "yolo":
            label_path = self.out / "labels" / f"{stem}.txt"
            label_path.parent.mkdir(exist_ok=True)
            lines = yolo_lines(sample)
            label_path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        record = {
            "file": image_path.relative_to(self.out).as_posix(),
            "seed": sample.seed,
            "material": sample.material,
            "package_type": sample.package_type,
            "boxes": [[round(float(v), 3) for v in box] for box in sample.boxes],
            "labels": sample.labels,
        }
        self._manifest.write(json.dumps(record) + "\n")
        self.counts[sample.material] += 1
        self.defect_count += len(sample.labels)
        return image_path

    def close(self) -> None:
        self._manifest.close()
        if self.format == "yolo":
            (self.out / "classes.txt").write_text("\n".join(DEFECT_CLASSES) + "\n", encoding="utf-8")
            names = ", ".join(DEFECT_CLASSES)
            (self.out / "data.yaml").write_text(
                "# written by `station synth`; split images/ into train and val before real use\n"
                f"path: {self.out.resolve().as_posix()}\n"
                "train: images\n"
                "val: images\n"
                f"nc: {len(DEFECT_CLASSES)}\n"
                f"names: [{names}]\n",
                encoding="utf-8",
            )

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- contact sheet -----------------------------------------------------------------------


def contact_sheet(samples: list[SynthSample], columns: int = 6, tile_width: int = 320) -> np.ndarray:
    """RGB sheet: one row per material (in MATERIALS order), each image captioned above, with
    its defect boxes and labels drawn in red."""
    rows = [[s for s in samples if s.material == material][:columns] for material in MATERIALS]
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError("no samples for the contact sheet")
    height, width = samples[0].image.shape[:2]
    tile_height = int(round(tile_width * height / width))
    gap, caption = 4, 16
    cell_height = caption + tile_height + gap
    sheet = np.full((len(rows) * cell_height + gap, columns * (tile_width + gap) + gap, 3), 32, np.uint8)
    for r, row in enumerate(rows):
        for c, sample in enumerate(row):
            y, x = gap + r * cell_height, gap + c * (tile_width + gap)
            text = f"{sample.material} {sample.package_type}  seed {sample.seed}"
            cv2.putText(sheet, text, (x + 2, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (235, 235, 235), 1, cv2.LINE_AA)
            sheet[y + caption : y + caption + tile_height, x : x + tile_width] = _tile(sample, tile_width, tile_height)
    return sheet


def _tile(sample: SynthSample, tile_width: int, tile_height: int) -> np.ndarray:
    height, width = sample.image.shape[:2]
    tile = cv2.resize(sample.image, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
    sx, sy = tile_width / width, tile_height / height
    for (x1, y1, x2, y2), label in zip(sample.boxes.tolist(), sample.labels):
        p1 = (int(x1 * sx), int(y1 * sy))
        p2 = (max(p1[0] + 1, int(math.ceil(x2 * sx))), max(p1[1] + 1, int(math.ceil(y2 * sy))))
        cv2.rectangle(tile, p1, p2, (255, 40, 40), 1)
        cv2.putText(tile, label, (p1[0], max(8, p1[1] - 2)), cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 80, 80), 1, cv2.LINE_AA)
    return tile

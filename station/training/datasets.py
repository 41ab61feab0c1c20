"""Dataset readers and validation: every on-disk format becomes one typed index.

Classification: ``folder`` (one sub-folder per class) and ``neu-cls`` (``<class>_<n>.jpg``).
Detection: ``voc`` (Pascal VOC XML), ``yolo`` (normalised ``cls cx cy w h`` txt), ``coco``
(one JSON file) and ``deeppcb`` (tested + template pairs with ``x1 y1 x2 y2 type`` txt files,
space- or comma-separated).

Reading never stops at the first bad file: every problem (missing or unreadable image,
malformed annotation, unknown class, degenerate or out-of-image box) becomes a
:class:`DataProblem` naming the file and line, the bad sample or box is left out (a box that
only overhangs the image is clipped), and the caller decides whether problems are fatal.
Boxes are ``x1 y1 x2 y2`` pixels of the image as decoded (EXIF applied), float32, pixel
column i spanning [i, i + 1) (VOC's 1-based inclusive corners are converted: ``x1 = xmin - 1``);
labels index :attr:`DatasetIndex.classes`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.parsers import expat

import numpy as np
from PIL import Image, ImageOps

from station.capture.images import ImageReadError, file_problem, read_image

CLASSIFICATION_FORMATS = ("folder", "neu-cls")
DETECTION_FORMATS = ("voc", "yolo", "coco", "deeppcb", "labelme")
FORMATS = CLASSIFICATION_FORMATS + DETECTION_FORMATS
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# DeepPCB's type ids 1..6, in order (github.com/tangsanli5201/DeepPCB README).
DEEPPCB_CLASSES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")
# Boxes may overhang the image by this much (VOC's 1-based corners) before it is reported.
_EDGE_TOLERANCE_PX = 1.0


class DatasetError(ValueError):
    """The dataset as a whole cannot be used (no images, unknown format, no classes)."""


@dataclass(frozen=True)
class DataProblem:
    """One thing wrong in a dataset; the sample or box it concerns was left out or clipped."""

    path: Path
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ClassificationSample:
    key: str  # image path relative to the dataset root (posix): the id used in split files
    image_path: Path
    label: int

    @property
    def stratum(self) -> int:
        return self.label


@dataclass(frozen=True)
class DetectionSample:
    key: str
    image_path: Path
    boxes: np.ndarray  # [N, 4] float32 x1 y1 x2 y2, image pixels
    labels: np.ndarray  # [N] int64 indices into the dataset's classes
    reference_path: Path | None = None  # defect-free template aligned with the image (DeepPCB)
    image_size: tuple[int, int] | None = None  # (height, width) when known

    @property
    def stratum(self) -> int:
        """The most frequent class in the image (-1: no boxes), for stratified splits."""
        if len(self.labels) == 0:
            return -1
        return int(np.argmax(np.bincount(self.labels)))


Sample = ClassificationSample | DetectionSample


@dataclass
class DatasetIndex:
    """Everything read from one dataset folder."""

    root: Path
    format: str
    task: str  # "classification" | "detection"
    classes: tuple[str, ...]
    samples: list[Sample]
    problems: list[DataProblem] = field(default_factory=list)
    content_sha256: str | None = None  # over every image/annotation file used; None when unchecked
    image_sha256: dict[str, str] = field(default_factory=dict)  # sample key -> its image file's sha256 (checked)

    @property
    def has_reference(self) -> bool:
        return any(getattr(sample, "reference_path", None) is not None for sample in self.samples)

    def subset(self, keys: Iterable[str]) -> DatasetIndex:
        wanted = set(keys)
        return replace(self, samples=[s for s in self.samples if s.key in wanted],
                       image_sha256={k: v for k, v in self.image_sha256.items() if k in wanted})

    def in_class_order(self, classes: Sequence[str]) -> DatasetIndex:
        """The same samples with the class indices of ``classes`` (the same names, another order):
        a fine-tuned model keeps its parent's head rows only when index i names the same class."""
        if sorted(classes) != sorted(self.classes):
            raise ValueError(f"{list(classes)} are not the dataset's classes {list(self.classes)} in another order")
        index_of = np.array([list(classes).index(name) for name in self.classes], dtype=np.int64)
        samples = [
            replace(sample, label=int(index_of[sample.label])) if isinstance(sample, ClassificationSample)
            else replace(sample, labels=index_of[sample.labels])
            for sample in self.samples
        ]
        return replace(self, classes=tuple(classes), samples=samples)

    def class_counts(self) -> dict[str, tuple[int, int]]:
        """class -> (images containing it, instances); for classification both count images."""
        images: Counter[int] = Counter()
        instances: Counter[int] = Counter()
        for sample in self.samples:
            if isinstance(sample, ClassificationSample):
                images[sample.label] += 1
                instances[sample.label] += 1
            else:
                instances.update(sample.labels.tolist())
                images.update(set(sample.labels.tolist()))
        return {name: (images[i], instances[i]) for i, name in enumerate(self.classes)}

    def summary(self, title: str | None = None) -> str:
        """A per-class count table, printed before training and evaluation."""
        counts = self.class_counts()
        width = max([len(name) for name in self.classes] + [10])
        head = title or f"{self.root} ({self.format})"
        lines = [f"{head}: {len(self.samples)} images, {len(self.problems)} problems"]
        if self.task == "classification":
            lines.append(f"  {'class':<{width}}  images")
            lines += [f"  {name:<{width}}  {n_img:>6}" for name, (n_img, _) in counts.items()]
        else:
            lines.append(f"  {'class':<{width}}  images  boxes")
            lines += [f"  {name:<{width}}  {n_img:>6}  {n_box:>5}" for name, (n_img, n_box) in counts.items()]
            empty = sum(1 for s in self.samples if len(s.labels) == 0)
            if empty:
                lines.append(f"  {'(no boxes)':<{width}}  {empty:>6}")
        return "\n".join(lines)


def task_of(fmt: str) -> str:
    if fmt in CLASSIFICATION_FORMATS:
        return "classification"
    if fmt in DETECTION_FORMATS:
        return "detection"
    raise DatasetError(f"unknown dataset format {fmt!r}; known: {', '.join(FORMATS)}")


def load_image(path: Path) -> np.ndarray:
    """HxWx3 RGB uint8, EXIF applied: the same decoding as the station's live path."""
    return read_image(path)


def read_dataset(
    root: str | Path,
    fmt: str,
    *,
    classes: Sequence[str] | None = None,
    check_images: bool = True,
) -> DatasetIndex:
    """Read the dataset at ``root`` in format ``fmt``.

    ``classes`` fixes the class list (a trained model's); names in the data that are not in
    it are reported and left out. Without it the classes are discovered and sorted (DeepPCB
    and COCO keep their dataset's order). ``check_images`` decodes every image once, so that
    unreadable files become problems and boxes are checked against the decoded size, and
    fills in :attr:`DatasetIndex.content_sha256`; without it only image headers are read.
    """
    root = Path(root).expanduser()
    task = task_of(fmt)
    if not root.exists():
        raise DatasetError(f"dataset {root} does not exist")
    wanted = tuple(classes) if classes is not None else None
    problems: list[DataProblem] = []
    if task == "classification":
        names, items = _CLASSIFICATION_READERS[fmt](root, wanted, problems)
    else:
        names, items = _DETECTION_READERS[fmt](root, wanted, problems)
    data_root = root if root.is_dir() else root.parent
    checks = _check_files(items, decode=check_images)
    samples: list[Sample] = []
    claimed: dict[str, _RawItem] = {}
    for item in items:
        failure = _failure(item, checks)
        if failure is not None:
            problems.append(failure)
            continue
        key = _key(data_root, item.image_path)
        if key in claimed:
            first, second = (getattr(i, "annotation_path", None) or i.image_path for i in (claimed[key], item))
            problems.append(DataProblem(second, f"annotates {key} again (first: {first}); left out"))
            continue
        claimed[key] = item
        if isinstance(item, _RawClassification):
            samples.append(ClassificationSample(key, item.image_path, names.index(item.name)))
        else:
            sample = _detection_sample(key, item, names, checks, problems)
            if sample is not None:
                samples.append(sample)
    digest = _content_digest(data_root, checks) if check_images else None
    image_digests = {s.key: digest for s in samples if (digest := checks[s.image_path].digest) is not None}
    index = DatasetIndex(data_root, fmt, task, names, samples, problems, digest, image_digests)
    if not samples:
        details = "; ".join(str(p) for p in problems[:3])
        raise DatasetError(f"no usable images in {root} as {fmt!r}" + (f" ({details})" if details else ""))
    return index


# --- raw items: what a reader found, before the image files are checked ---------------


@dataclass
class _RawClassification:
    image_path: Path
    name: str

    def files(self) -> tuple[Path, ...]:
        return (self.image_path,)


@dataclass
class _RawBox:
    coords: tuple[float, float, float, float]  # x1 y1 x2 y2 (fractions of the image when normalised)
    name: str
    line: int | None = None
    where: str = ""  # COCO has no useful line numbers: the annotation's number and id instead
    written: str | None = None  # the coordinates as the file writes them, for messages (VOC)


@dataclass
class _RawDetection:
    image_path: Path
    annotation_path: Path | None
    boxes: list[_RawBox]
    reference_path: Path | None = None
    normalised: bool = False  # YOLO: coordinates are fractions of the image size

    def files(self) -> tuple[Path, ...]:
        paths = (self.image_path, self.reference_path, self.annotation_path)
        return tuple(p for p in paths if p is not None)


_RawItem = _RawClassification | _RawDetection
_Reader = Callable[[Path, tuple[str, ...] | None, list[DataProblem]], tuple[tuple[str, ...], list]]


def _is_image(path: Path) -> bool:
    # not is_file(): a dangling or looping link or a pipe named like an image is reported, not skipped unseen
    return not path.is_dir() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p))


def _key(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _known_names(found: Iterable[str], classes: tuple[str, ...] | None) -> tuple[str, ...]:
    return classes if classes is not None else tuple(sorted(set(found)))


# --- classification -------------------------------------------------------------------


def _read_folder(root: Path, classes: tuple[str, ...] | None, problems: list[DataProblem]):
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"{root}: no class sub-folders (format 'folder' wants <root>/<class>/<image>)")
    names = _known_names((d.name for d in class_dirs), classes)
    items: list[_RawItem] = []
    for class_dir in class_dirs:
        images = _images_under(class_dir)
        if class_dir.name not in names:
            problems.append(DataProblem(class_dir, f"unknown class {class_dir.name!r} (known: {list(names)}); "
                                        f"its {len(images)} images are left out"))
            continue
        items += [_RawClassification(path, class_dir.name) for path in images]
    return names, items


_NEU_NAME = re.compile(r"^(?P<cls>.+)_(?P<n>\d+)$")


def _read_neu_cls(root: Path, classes: tuple[str, ...] | None, problems: list[DataProblem]):
    folder = root / "images" if (root / "images").is_dir() else root
    found: list[_RawClassification] = []
    for path in sorted(p for p in folder.iterdir() if _is_image(p)):
        match = _NEU_NAME.match(path.stem)
        if match is None:
            problems.append(DataProblem(path, "name is not <class>_<n>.<ext>; left out"))
            continue
        found.append(_RawClassification(path, match["cls"]))
    names = _known_names((item.name for item in found), classes)
    items: list[_RawItem] = []
    for item in found:
        if item.name not in names:
            problems.append(DataProblem(item.image_path, f"unknown class {item.name!r} (known: {list(names)}); "
                                        "left out"))
            continue
        items.append(item)
    return names, items


# --- detection: Pascal VOC ------------------------------------------------------------


def _find_dir(root: Path, *names: str) -> Path | None:
    return next((root / name for name in names if (root / name).is_dir()), None)


def _element_lines(data: bytes, tag: str) -> list[int]:
    """Line numbers of every ``<tag>`` start, in document order (ElementTree keeps none)."""
    lines: list[int] = []
    parser = expat.ParserCreate()

    def start(name: str, _attrs: dict) -> None:
        if name == tag:
            lines.append(parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.Parse(data, True)
    return lines


def _image_named(stem: str, folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        for suffix in IMAGE_SUFFIXES:
            for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
    return None


def _voc_image(tree: ET.Element, xml_path: Path, folders: Sequence[Path]) -> Path | None:
    filename = (tree.findtext("filename") or "").strip()
    if filename:
        for folder in folders:
            if (folder / filename).is_file():
                return folder / filename
        # NEU-DET writes some <filename>s without their extension
        stem = Path(filename).stem if Path(filename).suffix.lower() in IMAGE_SUFFIXES else filename
        found = _image_named(stem, folders)
        if found is not None:
            return found
    return _image_named(xml_path.stem, folders)


def _read_voc(root: Path, classes: tuple[str, ...] | None, problems: list[DataProblem]):
    annotation_dir = _find_dir(root, "Annotations", "annotations") or root
    image_dir = _find_dir(root, "JPEGImages", "images", "Images") or annotation_dir
    xml_files = sorted(annotation_dir.rglob("*.xml"))
    if not xml_files:
        raise DatasetError(f"{root}: no Pascal VOC .xml files (looked in {annotation_dir})")
    items: list[_RawDetection] = []
    for xml_path in xml_files:
        data = xml_path.read_bytes()
        try:
            tree = ET.fromstring(data)
            object_lines = _element_lines(data, "object")
        except ET.ParseError as exc:
            problems.append(DataProblem(xml_path, f"malformed XML ({exc}); image left out", exc.position[0]))
            continue
        image_path = _voc_image(tree, xml_path, [image_dir, xml_path.parent, root])
        if image_path is None:
            problems.append(DataProblem(xml_path, f"missing image: no {tree.findtext('filename')!r} or "
                                        f"{xml_path.stem}.<jpg|png|...> in {image_dir}; left out"))
            continue
        boxes: list[_RawBox] = []
        for obj, line in zip(tree.iter("object"), object_lines, strict=True):
            name = (obj.findtext("name") or "").strip()
            try:
                bndbox = obj.find("bndbox")
                xmin, ymin, xmax, ymax = (float(bndbox.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                problems.append(DataProblem(xml_path, f"object {name!r} has no numeric <bndbox>; box left out",
                                            line))
                continue
            # VOC corners are 1-based inclusive pixel indices: pixel i spans [i - 1, i) (as detectron2 reads them)
            written = f"(xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g})"
            boxes.append(_RawBox((xmin - 1, ymin - 1, xmax, ymax), name, line, written=written))
        items.append(_RawDetection(image_path, xml_path, boxes))
    return _known_names((b.name for item in items for b in item.boxes), classes), items


# --- detection: YOLO ------------------------------------------------------------------


def _yolo_names(root: Path) -> tuple[str, ...] | None:
    for name in ("classes.txt", "obj.names", "classes.names"):
        if (root / name).is_file():
            return tuple(line.strip() for line in (root / name).read_text(encoding="utf-8-sig").splitlines() if line.strip())
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            return _names_from_yaml(root / name)
    return None


def read_data_yaml(path: Path) -> dict:
    """An Ultralytics ``data.yaml`` as a mapping (PyYAML ``safe_load``; a BOM is allowed)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise DatasetError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with 'names:', got {type(data).__name__}")
    return data


def _names_from_yaml(path: Path) -> tuple[str, ...]:
    """The ``names:`` entry of an Ultralytics data.yaml: a list, or a map of class id -> name."""
    data = read_data_yaml(path)
    names = data.get("names")
    if isinstance(names, dict):
        try:
            ids = sorted(int(key) for key in names)
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: 'names:' map keys must be class ids 0, 1, ... (got {list(names)})") from None
        if ids != list(range(len(ids))):
            raise DatasetError(f"{path}: 'names:' class ids must be 0..{len(ids) - 1} without gaps (got {ids})")
        names = [names[key] for key in sorted(names, key=int)]
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{path}: no 'names:' list or id map")
    names = [str(name) for name in names]
    count = data.get("nc")
    if count is not None and count != len(names):
        raise DatasetError(f"{path}: nc: {count} but 'names:' lists {len(names)} classes")
    return tuple(names)


def _yolo_label_path(image_path: Path) -> Path:
    parts = list(image_path.parts)
    # Ultralytics layout: .../images/<split>/x.jpg -> .../labels/<split>/x.txt
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        candidate = Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
        if candidate.is_file():
            return candidate
    return image_path.with_suffix(".txt")


def _box_rows(path: Path, lines: list[str], layout: str, problems: list[DataProblem]):
    """(line number, class id, four numbers) of each ``layout`` line: five fields, spaces or commas.

    The class id is the field named ``class`` or ``type`` in ``layout``; a malformed line is
    reported against ``path`` and left out.
    """
    class_index = layout.split().index("class" if "class" in layout.split() else "type")
    for line_no, line in enumerate(lines, start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        try:
            if len(fields) != 5:
                raise ValueError
            class_id = int(fields[class_index])
            numbers = tuple(float(v) for i, v in enumerate(fields) if i != class_index)
        except ValueError:
            problems.append(DataProblem(path, f"expected {layout!r}, got {line!r}; box left out", line_no))
            continue
        yield line_no, class_id, numbers


def _read_yolo(root: Path, classes: tuple[str, ...] | None, problems: list[DataProblem]):
    file_names = _yolo_names(root)
    id_names = file_names if file_names is not None else classes  # the names of class ids 0, 1, ...
    if id_names is None:
        raise DatasetError(f"{root}: YOLO data needs its class names in classes.txt or data.yaml (names:)")
    images = _images_under(root)
    if not images:
        raise DatasetError(f"{root}: no images")
    items: list[_RawDetection] = []
    for image_path in images:
        label_path = _yolo_label_path(image_path)
        boxes: list[_RawBox] = []
        # no label file: an image without objects (the YOLO convention)
        lines = label_path.read_text(encoding="utf-8-sig").splitlines() if label_path.is_file() else []
        for line_no, class_id, (cx, cy, w, h) in _box_rows(label_path, lines, "class cx cy w h", problems):
            if not 0 <= class_id < len(id_names):
                problems.append(DataProblem(label_path, f"unknown class id {class_id} (0..{len(id_names) - 1}); "
                                            "box left out", line_no))
                continue
            corners = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            boxes.append(_RawBox(corners, id_names[class_id], line_no))
        items.append(_RawDetection(image_path, label_path if label_path.is_file() else None, boxes, normalised=True))
    return (classes if classes is not None else id_names), items


# --- detection: COCO ------------------------------------------------------------------


def _coco_file(root: Path) -> Path:
    if root.is_file():
        return root
    candidates = [root / "annotations.json", root / "_annotations.coco.json", root / "instances.json"]
    candidates += sorted(root.glob("annotations/*.json")) + sorted(root.glob("*.json"))
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DatasetError(f"{root}: no COCO annotation JSON (annotations.json, annotations/*.json or *.json)")
    return found


COCO_SUBSET_WORDS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def coco_split_files(root: Path) -> dict[str, Path]:
    """subset -> annotation file, for a COCO dataset shipped as one file per split: the COCO layout
    (``annotations/instances_train2017.json``, ``instances_val2017.json`` with images in
    ``train2017/``, ``val2017/``) or Roboflow's (``train/_annotations.coco.json``,
    ``valid/_annotations.coco.json``, ``test/...``). Empty for a single-file dataset."""
    if not root.is_dir():
        return {}
    found: dict[str, Path] = {}
    for folder_name, subset in COCO_SUBSET_WORDS.items():
        candidate = root / folder_name / "_annotations.coco.json"
        if candidate.is_file():
            found.setdefault(subset, candidate)
    for candidate in sorted(root.glob("annotations/*.json")):
        words = re.split(r"[_\-.]", candidate.stem.lower())
        subsets = {COCO_SUBSET_WORDS[w.rstrip("0123456789")] for w in words if w.rstrip("0123456789") in COCO_SUBSET_WORDS}
        if len(subsets) == 1:
            found.setdefault(subsets.pop(), candidate)
    return found if "train" in found else {}


def _load_coco_json(json_path: Path) -> dict:
    try:
        return json.loads(json_path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{json_path}:{exc.lineno}: malformed JSON ({exc.msg})") from exc


def coco_image_paths(json_path: Path, base: Path, coco: dict | None = None) -> dict[int, Path]:
    """image id -> the image file of one COCO annotation file (looked for where the usual layouts
    put it: beside the dataset root, in images/, beside the JSON, in the split's folder)."""
    coco = coco if coco is not None else _load_coco_json(json_path)
    split_folder = json_path.parent.parent / json_path.stem.split("_", 1)[-1]  # instances_train2017 -> train2017
    folders = (base, base / "images", json_path.parent, json_path.parent.parent / "images", split_folder)
    paths = {}
    for image in coco.get("images", []):
        file_name = image.get("file_name", "")
        paths[image["id"]] = next((f / file_name for f in folders if (f / file_name).is_file()), base / file_name)
    return paths


def _read_coco(root: Path, classes: tuple[str, ...] | None, problems: list[DataProblem]):
    split_files = coco_split_files(root)
    if split_files:  # one file per split: the classes are the union, in the training file's order
        names: list[str] = list(classes or ())
        items: list[_RawDetection] = []
        for json_path in split_files.values():
            file_names, file_items = _read_coco_file(json_path, root, None, problems)
            names += [name for name in file_names if name not in names and classes is None]
            items += file_items
        return tuple(names), items
    return _read_coco_file(_coco_file(root), root if root.is_dir() else root.parent, classes, problems)


def _read_coco_file(json_path: Path, base: Path, classes: tuple[str, ...] | None, problems: list[DataProblem]):
    coco = _load_coco_json(json_path)
    categories = sorted(coco.get("categories", []), key=lambda c: c["id"])
    category_names = {c["id"]: c["name"] for c in categories}
    by_id = {image_id: _RawDetection(path, json_path, [])
             for image_id, path in coco_image_paths(json_path, base, coco).items()}
    for number, ann in enumerate(coco.get("annotations", [])):
        where = f"annotation #{number} (id {ann.get('id')})"
        if ann.get("iscrowd"):
            continue  # crowd regions are ignored by COCO's own evaluation too
        target = by_id.get(ann.get("image_id"))
        if target is None:
            problems.append(DataProblem(json_path, f"{where}: unknown image_id {ann.get('image_id')}; left out"))
            continue
        name = category_names.get(ann.get("category_id"))
        if name is None:
            problems.append(DataProblem(json_path, f"{where}: unknown category_id {ann.get('category_id')}; "
                                        "left out"))
            continue
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            problems.append(DataProblem(json_path, f"{where}: bbox is not [x, y, w, h]; left out"))
            continue
        target.boxes.append(_RawBox((x, y, x + w, y + h), name, where=where))
    names = classes if classes is not None else tuple(c["name"] for c in categories)
    return names, list(by_id.values())


# --- detection: DeepPCB ---------------------------------------------------------------


def _read_deeppcb(root: Path, classes: tuple[str, ...] | None, problems: list[DataProblem]):
    tested = sorted(root.rglob("*_test.jpg"))
    if not tested:
        raise DatasetError(f"{root}: no DeepPCB pairs (<group>/<n>/<id>_test.jpg with <id>_temp.jpg)")
    items: list[_RawDetection] = []
    for test_path in tested:
        image_id = test_path.name[: -len("_test.jpg")]
        template = test_path.with_name(f"{image_id}_temp.jpg")
        annotation = test_path.parent.parent / f"{test_path.parent.name}_not" / f"{image_id}.txt"
        if not annotation.is_file():
            problems.append(DataProblem(test_path, f"missing annotation {annotation}; pair left out"))
            continue
        boxes: list[_RawBox] = []
        lines = annotation.read_text(encoding="utf-8-sig").splitlines()
        rows = _box_rows(annotation, lines, "x1 y1 x2 y2 type", problems)
        for line_no, type_id, coords in rows:
            if not 1 <= type_id <= len(DEEPPCB_CLASSES):
                problems.append(DataProblem(annotation, f"unknown defect type {type_id} (1..6); box left out",
                                            line_no))
                continue
            boxes.append(_RawBox(coords, DEEPPCB_CLASSES[type_id - 1], line_no))  # type: ignore[arg-type]
        items.append(_RawDetection(test_path, annotation, boxes, reference_path=template))
    return (classes if classes is not None else DEEPPCB_CLASSES), items


# --- detection: LabelMe / X-AnyLabeling JSON -------------------------------------------


def _read_labelme(root: Path, classes: tuple[str, ...] | None, problems: list[DataProblem]):
    """One ``<image>.json`` per image with ``shapes``: rectangles (two corners) and polygons (their
    bounding box) are boxes; points, lines and circles are reported and left out."""
    documents = sorted(p for p in root.rglob("*.json") if not p.name.startswith("."))
    items: list[_RawDetection] = []
    for json_path in documents:
        try:
            document = json.loads(json_path.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(DataProblem(json_path, f"not a LabelMe JSON file ({exc}); left out"))
            continue
        if not isinstance(document, dict) or not isinstance(document.get("shapes"), list):
            continue  # another JSON file in the folder (a manifest, a COCO file): not an annotation
        image_path = json_path.parent / str(document.get("imagePath") or "")
        if not image_path.is_file():
            image_path = next((p for p in (json_path.with_suffix(s) for s in IMAGE_SUFFIXES) if p.is_file()), image_path)
        if not image_path.is_file():
            problems.append(DataProblem(json_path, f"missing image {document.get('imagePath')!r}; left out"))
            continue
        boxes: list[_RawBox] = []
        for number, shape in enumerate(document["shapes"], start=1):
            where = f"shape #{number}"
            kind = shape.get("shape_type") or "polygon"
            try:
                points = np.asarray(shape["points"], dtype=np.float64).reshape(-1, 2)
            except (KeyError, TypeError, ValueError):
                problems.append(DataProblem(json_path, f"{where}: no points; left out"))
                continue
            if kind not in ("rectangle", "polygon", "rotation") or len(points) < 2:
                problems.append(DataProblem(json_path, f"{where}: a {kind} is not a box; left out"))
                continue
            (x1, y1), (x2, y2) = points.min(0), points.max(0)
            boxes.append(_RawBox((float(x1), float(y1), float(x2), float(y2)), str(shape.get("label", "")).strip(),
                                 where=where))
        items.append(_RawDetection(image_path, json_path, boxes))
    if not items:
        raise DatasetError(f"{root}: no LabelMe JSON files (<image>.json with 'shapes')")
    return _known_names((b.name for item in items for b in item.boxes), classes), items


# --- file checks and box validation ---------------------------------------------------


@dataclass(frozen=True)
class _FileCheck:
    digest: str | None
    size: tuple[int, int] | None  # (height, width)
    error: str | None


def _check_file(path: Path, decode: bool, want_size: bool) -> _FileCheck:
    problem = file_problem(path)
    if problem:
        return _FileCheck(None, None, "missing file" if problem == "no such file" else problem)
    if not decode:
        if not want_size:
            return _FileCheck(None, None, None)
        try:
            with Image.open(path) as image:  # header only: no pixel decoding
                width, height = ImageOps.exif_transpose(image).size if _has_rotation(image) else image.size
            return _FileCheck(None, (height, width), None)
        except OSError as exc:
            return _FileCheck(None, None, f"unreadable image ({exc})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _FileCheck(None, None, f"cannot read ({exc.strerror or exc})")
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return _FileCheck(digest, None, None)
    try:
        image = read_image(path)
    except ImageReadError as exc:
        return _FileCheck(digest, None, f"unreadable image ({exc})")
    return _FileCheck(digest, image.shape[:2], None)


def _has_rotation(image: Image.Image) -> bool:
    return image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _check_files(items: Sequence[_RawItem], decode: bool) -> dict[Path, _FileCheck]:
    """Hash and decode every file once; threads, since decoding and hashing release the GIL."""
    files = sorted({path for item in items for path in item.files()})
    sized = {item.image_path for item in items if isinstance(item, _RawDetection) and item.normalised}
    workers = min(8, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda p: _check_file(p, decode, p in sized), files)
        return dict(zip(files, results, strict=True))


def _failure(item: _RawItem, checks: dict[Path, _FileCheck]) -> DataProblem | None:
    for path in item.files():
        check = checks[path]
        if check.error is not None:
            what = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "file"
            message = f"missing {what}" if check.error == "missing file" else check.error
            return DataProblem(path, f"{message}; left out")
    if isinstance(item, _RawDetection) and item.reference_path is not None:
        size, ref_size = checks[item.image_path].size, checks[item.reference_path].size
        if size is not None and ref_size is not None and size != ref_size:
            return DataProblem(item.reference_path, f"template is {ref_size[1]}x{ref_size[0]} but the tested image "
                               f"is {size[1]}x{size[0]}; pair left out")
    return None


def _detection_sample(
    key: str,
    item: _RawDetection,
    names: tuple[str, ...],
    checks: dict[Path, _FileCheck],
    problems: list[DataProblem],
) -> DetectionSample | None:
    """Validate ``item``'s boxes against ``names`` and the image size (when known)."""
    size = checks[item.image_path].size
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    path = item.annotation_path or item.image_path
    for box in item.boxes:
        prefix = f"{box.where}: " if box.where else ""
        if box.name not in names:
            problems.append(DataProblem(path, f"{prefix}unknown class {box.name!r} (known: {list(names)}); "
                                        "box left out", box.line))
            continue
        x1, y1, x2, y2 = box.coords
        if item.normalised:
            if size is None:
                return None  # unreadable image: already reported
            height, width = size
            x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
        shown = box.written or f"({x1:g}, {y1:g}, {x2:g}, {y2:g})"
        if not np.all(np.isfinite([x1, y1, x2, y2])) or x2 <= x1 or y2 <= y1:
            problems.append(DataProblem(path, f"{prefix}degenerate box {shown}; box left out", box.line))
            continue
        if size is not None:
            height, width = size
            tol = _EDGE_TOLERANCE_PX
            if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
                inside = x1 < width and y1 < height and x2 > 0 and y2 > 0
                fate = "clipped" if inside else "box left out"
                problems.append(DataProblem(path, f"{prefix}box {shown} "
                                            f"{'overhangs' if inside else 'lies outside'} the {width}x{height} "
                                            f"image; {fate}", box.line))
                if not inside:
                    continue
            x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
        boxes.append((x1, y1, x2, y2))
        labels.append(names.index(box.name))
    return DetectionSample(
        key=key,
        image_path=item.image_path,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        reference_path=item.reference_path,
        image_size=size,
    )


def _content_digest(root: Path, checks: dict[Path, _FileCheck]) -> str:
    """sha256 over (relative path, file sha256) of every file used, in path order."""
    digest = hashlib.sha256()
    for path in sorted(checks, key=lambda p: _key(root, p)):
        if checks[path].digest is not None:
            digest.update(f"{_key(root, path)}\t{checks[path].digest}\n".encode())
    return digest.hexdigest()


_CLASSIFICATION_READERS: dict[str, _Reader] = {"folder": _read_folder, "neu-cls": _read_neu_cls}
_DETECTION_READERS: dict[str, _Reader] = {
    "voc": _read_voc,
    "yolo": _read_yolo,
    "coco": _read_coco,
    "deeppcb": _read_deeppcb,
    "labelme": _read_labelme,
}

"""Annotation-tool interchange: what station writes (predictions, reviewed labels) reads back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures.training_data import make_folder_dataset, make_voc_dataset
from helpers_models import make_tiny_classifier, make_tiny_detector
from station.cli import main
from station.training.datasets import read_dataset
from station.training.interchange import LabelledImage, write_labelled

# the formats' precision on disk: VOC whole pixels, YOLO six decimals of the image size
TOLERANCE = {"coco": 1e-4, "labelme": 1e-4, "yolo": 1e-3, "voc": 0.0}


@pytest.fixture(scope="module")
def voc_source(tmp_path_factory):
    root = make_voc_dataset(tmp_path_factory.mktemp("voc") / "voc", count=5, size=64)
    return read_dataset(root, "voc")


def _labelled(index) -> list[LabelledImage]:
    return [LabelledImage(s.image_path, 64, 64, boxes=s.boxes.astype(np.float32),
                          labels=[index.classes[i] for i in s.labels.tolist()]) for s in index.samples]


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "labelme"])
def test_write_then_read_gives_the_same_boxes_and_classes(voc_source, tmp_path, fmt):
    items = _labelled(voc_source)
    write_labelled(items, voc_source.classes, tmp_path / fmt, fmt)
    back = read_dataset(tmp_path / fmt, fmt, classes=voc_source.classes)
    assert not back.problems
    by_name = {s.image_path.name: s for s in back.samples}
    assert len(by_name) == len(items)
    for item in items:
        sample = by_name[item.image.name]
        assert [back.classes[i] for i in sample.labels.tolist()] == list(item.labels)
        np.testing.assert_allclose(sample.boxes, item.boxes, atol=TOLERANCE[fmt] * 64 + 1e-6)


def test_same_file_names_from_two_folders_both_survive(tmp_path):
    index = read_dataset(make_voc_dataset(tmp_path / "voc", count=1, size=64), "voc")
    sample = index.samples[0]
    copy = tmp_path / "other" / sample.image_path.name
    copy.parent.mkdir()
    copy.write_bytes(sample.image_path.read_bytes())
    items = [LabelledImage(path, 64, 64) for path in (sample.image_path, copy)]
    written = write_labelled(items, index.classes, tmp_path / "out", "coco")
    assert len({p.name for p in written}) == 2


def test_unknown_labels_are_refused(tmp_path, voc_source):
    item = LabelledImage(voc_source.samples[0].image_path, 64, 64, boxes=np.zeros((1, 4), np.float32), labels=["ufo"])
    with pytest.raises(ValueError, match="'ufo'"):
        write_labelled([item], voc_source.classes, tmp_path / "out", "coco")


def test_predict_cli_writes_labelme_that_train_reads_back(tmp_path, voc_source):
    card = make_tiny_detector(tmp_path / "det", size=64, score=0.002, max_det=5)
    out = tmp_path / "predictions"
    folder = voc_source.root / "JPEGImages"
    assert main(["predict", str(folder), "--model", str(tmp_path / "det"), "--out", str(out),
                 "--format", "labelme", "--device", "cpu"]) == 0
    documents = sorted(out.glob("*.json"))
    assert len(documents) == len(voc_source.samples)
    shapes = [shape for doc in documents for shape in json.loads(doc.read_text(encoding="utf-8"))["shapes"]]
    assert shapes and all(0 < shape["score"] <= 1 and shape["shape_type"] == "rectangle" for shape in shapes)
    back = read_dataset(out, "labelme", classes=card.classes)
    assert sum(len(s.labels) for s in back.samples) == len(shapes)


def test_predict_cli_classifier_writes_class_folders(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=2, size=48)
    card = make_tiny_classifier(tmp_path / "cls", size=48)
    out = tmp_path / "predictions"
    assert main(["predict", str(data), "--model", str(tmp_path / "cls"), "--out", str(out), "--format", "folder",
                 "--device", "cpu"]) == 0
    back = read_dataset(out, "folder")
    assert len(back.samples) == len(read_dataset(data, "folder").samples)
    assert set(back.classes) <= set(card.classes)
    assert main(["predict", str(data), "--model", str(tmp_path / "cls"), "--out", str(out), "--format", "coco",
                 "--device", "cpu"]) == 1

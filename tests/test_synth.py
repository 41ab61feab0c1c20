"""Synthetic IC packages: determinism, exact defect boxes, and the `station synth` formats."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

from station.capture.images import read_image
from station.cli import main
from station.synth import DEFECT_CLASSES, MATERIALS, PACKAGE_TYPES, SynthSample, render_package
from station.synth.formats import read_voc

BOX_SEEDS = range(30)


@pytest.fixture(scope="module")
def render_pairs() -> list[tuple[SynthSample, SynthSample]]:
    """(without defects, with defects) for the same seeds: they share everything else."""
    return [(render_package(seed), render_package(seed, defects=True)) for seed in BOX_SEEDS]


def test_same_seed_gives_identical_bytes():
    first = render_package(11, defects=True)
    second = render_package(11, defects=True)
    assert first.image.tobytes() == second.image.tobytes()
    assert np.array_equal(first.boxes, second.boxes) and first.labels == second.labels
    assert (first.material, first.package_type, first.seed) == (second.material, second.package_type, 11)
    assert render_package(12).image.tobytes() != first.image.tobytes()


def test_sample_contract():
    sample = render_package(3, material="ceramic", size=(240, 320))
    assert sample.image.shape == (240, 320, 3) and sample.image.dtype == np.uint8
    assert sample.material == "ceramic" and sample.package_type in PACKAGE_TYPES["ceramic"]
    assert sample.boxes.shape == (0, 4) and sample.boxes.dtype == np.float32 and sample.labels == []
    with pytest.raises(ValueError, match="unknown material 'wood'"):
        render_package(3, material="wood")


def test_materials_and_package_types_vary_with_the_seed():
    samples = [render_package(seed, size=(120, 160)) for seed in range(40)]
    assert {s.material for s in samples} == set(MATERIALS)
    assert len({s.package_type for s in samples}) >= 7
    for material in MATERIALS:
        assert render_package(5, material=material, size=(120, 160)).material == material


def test_boxes_are_inside_and_not_degenerate(render_pairs):
    for _, sample in render_pairs:
        height, width = sample.image.shape[:2]
        assert sample.boxes.dtype == np.float32 and sample.boxes.shape == (len(sample.labels), 4)
        assert set(sample.labels) <= set(DEFECT_CLASSES)
        for x1, y1, x2, y2 in sample.boxes:
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert x2 - x1 >= 2 and y2 - y1 >= 2


def test_every_box_covers_a_real_change_and_nothing_changes_outside(render_pairs):
    for clean, defective in render_pairs:
        assert clean.material == defective.material and clean.package_type == defective.package_type
        difference = np.abs(clean.image.astype(np.int16) - defective.image.astype(np.int16)).max(axis=2)
        covered = np.zeros(difference.shape, bool)
        for (x1, y1, x2, y2), label in zip(defective.boxes, defective.labels):
            x1, y1 = int(np.floor(x1)), int(np.floor(y1))
            x2, y2 = int(np.ceil(x2)), int(np.ceil(y2))
            assert difference[y1:y2, x1:x2].max() >= 10, f"seed {defective.seed}: {label} box shows no change"
            covered[max(0, y1 - 4) : y2 + 4, max(0, x1 - 4) : x2 + 4] = True  # blur spreads a little
        outside = difference[~covered]
        assert outside.size == 0 or outside.max() <= 16, f"seed {defective.seed}: change outside the boxes"
        if not defective.labels:
            assert difference.max() == 0


def test_defect_counts_and_classes_vary(render_pairs):
    counts = Counter(len(sample.labels) for _, sample in render_pairs)
    assert counts[0] >= 1 and max(counts) >= 3  # sometimes none, sometimes several
    labels = Counter(label for _, sample in render_pairs for label in sample.labels)
    assert set(labels) == set(DEFECT_CLASSES)


# -- station synth ---------------------------------------------------------------------------


def test_cli_folder_format_is_balanced_and_reproducible(tmp_path, capsys):
    out = tmp_path / "cls"
    assert main(["synth", "--out", str(out), "--count", "6", "--seed", "40", "--size", "96", "128"]) == 0
    assert "wrote 6 images" in capsys.readouterr().out
    for material in MATERIALS:
        assert len(list((out / material).glob("*.png"))) == 2
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in records] == list(range(40, 46))
    for record in records:
        expected = render_package(record["seed"], material=record["material"], size=(96, 128))
        assert np.array_equal(read_image(out / record["file"]), expected.image)  # PNG is lossless


def test_cli_voc_format_parses_back(tmp_path):
    out = tmp_path / "voc"
    assert main(["synth", "--out", str(out), "--count", "6", "--defects", "--format", "voc",
                 "--seed", "7", "--size", "240", "320"]) == 0
    records = {r["file"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    xml_files = sorted((out / "annotations").glob("*.xml"))
    assert len(xml_files) == 6
    objects = 0
    for xml_path in xml_files:
        root = ET.parse(xml_path).getroot()
        filename = root.findtext("filename")
        assert (out / "images" / filename).is_file()
        assert root.findtext("size/width") == "320" and root.findtext("size/height") == "240"
        record = records[f"images/{filename}"]
        assert root.findtext("material") == record["material"] and record["material"] in filename
        names = [obj.findtext("name") for obj in root.iter("object")]
        assert names == record["labels"]
        for obj in root.iter("object"):
            xmin, ymin, xmax, ymax = (int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert 1 <= xmin <= xmax <= 320 and 1 <= ymin <= ymax <= 240
        annotation = read_voc(xml_path)
        expected = np.array(record["boxes"], np.float32).reshape(-1, 4)
        assert annotation.labels == record["labels"]
        assert np.abs(annotation.boxes - expected).max(initial=0) <= 1.0  # widened to whole pixels
        objects += len(names)
    assert objects > 0


def test_cli_yolo_format(tmp_path):
    out = tmp_path / "yolo"
    assert main(["synth", "--out", str(out), "--count", "4", "--defects", "--format", "yolo",
                 "--seed", "21", "--size", "240", "320"]) == 0
    assert (out / "classes.txt").read_text().split() == list(DEFECT_CLASSES)
    assert f"nc: {len(DEFECT_CLASSES)}" in (out / "data.yaml").read_text()
    images = sorted((out / "images").glob("*.png"))
    labels = sorted((out / "labels").glob("*.txt"))
    assert [p.stem for p in images] == [p.stem for p in labels] and len(images) == 4
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for label_path, record in zip(labels, records):
        rows = [line.split() for line in label_path.read_text().splitlines()]
        assert [DEFECT_CLASSES[int(row[0])] for row in rows] == record["labels"]
        for row, (x1, y1, x2, y2) in zip(rows, record["boxes"]):
            cx, cy, w, h = map(float, row[1:])
            assert 0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1
            assert cx * 320 == pytest.approx((x1 + x2) / 2, abs=0.01) and w * 320 == pytest.approx(x2 - x1, abs=0.01)


def test_cli_contact_sheet_and_usage_errors(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert main(["synth", "--contact-sheet", str(sheet), "--columns", "2", "--defects", "--size", "96", "128"]) == 0
    image = read_image(sheet)
    assert image.shape[0] > 3 * 96 and image.shape[1] > 2 * 128  # three rows of two 320 px tiles
    assert main(["synth"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "x"), "--count", "0"]) == 2

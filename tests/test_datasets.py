"""Dataset readers, validation and split files (station.training.datasets / splits)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fixtures.training_data import (
    DETECTION_CLASSES,
    SHAPES,
    make_coco_dataset,
    make_deeppcb_dataset,
    make_folder_dataset,
    make_neu_cls_dataset,
    make_voc_dataset,
    make_yolo_dataset,
    voc_xml,
)
from station.training.datasets import DEEPPCB_CLASSES, DatasetError, read_dataset
from station.training.splits import Split, SplitError, make_split

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def messages(index) -> list[str]:
    return [str(problem) for problem in index.problems]


# --- classification ----------------------------------------------------------------------


def test_folder_per_class(tmp_path):
    index = read_dataset(make_folder_dataset(tmp_path / "cls", per_class=3), "folder")
    assert index.task == "classification"
    assert index.classes == tuple(sorted(SHAPES))
    assert len(index.samples) == 9 and not index.problems
    assert {s.key.split("/")[0] for s in index.samples if s.label == index.classes.index("disc")} == {"disc"}
    assert index.class_counts()["bar"] == (3, 3)
    assert "disc" in index.summary() and index.content_sha256 and len(index.content_sha256) == 64


def test_neu_cls_names(tmp_path):
    root = make_neu_cls_dataset(tmp_path / "neu", per_class=2)
    (root / "images" / "README.jpg").write_bytes(b"")  # not <class>_<n>: reported
    index = read_dataset(root, "neu-cls")
    assert index.classes == ("crazing", "rolled-in_scale")
    assert sorted(s.key for s in index.samples)[0] == "images/crazing_1.jpg"
    assert len(index.samples) == 4
    assert any("README.jpg" in m and "<class>_<n>" in m for m in messages(index))


def test_fixed_classes_report_unknown_ones(tmp_path):
    root = make_folder_dataset(tmp_path / "cls", per_class=2)
    index = read_dataset(root, "folder", classes=["bar", "disc"])
    assert index.classes == ("bar", "disc") and len(index.samples) == 4
    assert any("unknown class 'square'" in m for m in messages(index))


def test_corrupt_and_empty_images_are_reported_not_fatal(tmp_path):
    root = make_folder_dataset(tmp_path / "cls", per_class=3)
    (root / "disc" / "disc_0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "bar" / "bar_1.png").write_bytes(b"")
    index = read_dataset(root, "folder")
    assert len(index.samples) == 7
    assert any("disc_0.png" in m and "left out" in m for m in messages(index))
    assert any("bar_1.png" in m for m in messages(index))


# --- detection ---------------------------------------------------------------------------


def test_voc_boxes_and_problems_name_file_and_line(tmp_path):
    root = make_voc_dataset(tmp_path / "voc", count=3, size=96)
    boxes = np.array([[10, 10, 30, 30], [40, 40, 40, 60], [50, 50, 120, 90], [200, 200, 220, 220], [1, 2, 3, 4]],
                     np.float32)
    shutil.copy(root / "JPEGImages" / "img000.png", root / "JPEGImages" / "bad.png")
    (root / "Annotations" / "bad.xml").write_text(voc_xml("bad.png", 96, boxes,
                                                          ["blob", "blob", "hole", "hole", "scratch"]))
    (root / "Annotations" / "orphan.xml").write_text(voc_xml("nothing.png", 96, boxes[:1], ["blob"]))
    (root / "Annotations" / "broken.xml").write_text("<annotation><object>\n</annotation>")
    (root / "Annotations" / "twice.xml").write_text(voc_xml("img001.png", 96, boxes[:1], ["blob"]))
    index = read_dataset(root, "voc", classes=DETECTION_CLASSES)
    assert len(index.samples) == 4
    bad = next(s for s in index.samples if s.key.endswith("bad.png"))
    np.testing.assert_allclose(bad.boxes, [[10, 10, 30, 30], [50, 50, 96, 90]])  # overhang clipped
    text = "\n".join(messages(index))
    # the problems name the line of their <object>: 3 header lines, 9 lines per object
    assert "bad.xml:13: degenerate box (xmin 41, ymin 41, xmax 40, ymax 60)" in text
    assert "bad.xml:22: box (xmin 51, ymin 51, xmax 120, ymax 90) overhangs the 96x96 image; clipped" in text
    assert ("bad.xml:31: box (xmin 201, ymin 201, xmax 220, ymax 220) lies outside the 96x96 image; "
            "box left out") in text
    assert "bad.xml:40: unknown class 'scratch'" in text
    assert "orphan.xml: missing image" in text
    assert "broken.xml:2: malformed XML" in text
    assert "twice.xml: annotates JPEGImages/img001.png again (first: " in text


def test_yolo_ultralytics_layout(tmp_path):
    root = make_yolo_dataset(tmp_path / "yolo", count=3, size=64)
    (root / "images" / "train" / "empty.png").write_bytes((root / "images" / "train" / "img0.png").read_bytes())
    with open(root / "labels" / "train" / "img1.txt", "a") as handle:
        handle.write("7 0.5 0.5 0.1 0.1\n0 0.5 0.5\n")
    index = read_dataset(root, "yolo")
    assert index.classes == DETECTION_CLASSES and len(index.samples) == 4
    empty = next(s for s in index.samples if s.key.endswith("empty.png"))
    assert empty.boxes.shape == (0, 4) and empty.stratum == -1
    text = "\n".join(messages(index))
    assert "img1.txt:3: unknown class id 7" in text and "img1.txt:4: expected 'class cx cy w h'" in text
    sample = next(s for s in index.samples if s.key.endswith("img0.png"))
    lines = (root / "labels" / "train" / "img0.txt").read_text().split()
    cx, w = float(lines[1]) * 64, float(lines[3]) * 64
    assert sample.boxes[0, 0] == pytest.approx(cx - w / 2, abs=1e-3)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("path: .\nnames:\n  0: blob\n  1: hole\nnc: 2\n", ("blob", "hole")),
        ("names: {0: scratch, 1: void}\n", ("scratch", "void")),
        ("names:\n- scratch\n- void\n", ("scratch", "void")),  # a block list under an unindented key
        ("names: ['scratch', 'void']  # two classes\n", ("scratch", "void")),
        ("names: ['a, b', 'c']\n", ("a, b", "c")),
        ("\ufeffnames: [blob, hole]\n", ("blob", "hole")),  # saved by Notepad
    ],
)
def test_yolo_data_yaml_names(tmp_path, text, names):
    root = make_yolo_dataset(tmp_path / "yolo", count=1)
    (root / "classes.txt").unlink()
    (root / "data.yaml").write_text(text, encoding="utf-8")
    assert read_dataset(root, "yolo").classes == names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("names: [a, b\n", "data.yaml:2: not valid YAML"),
        ("names: {0: a, 2: b}\n", "class ids must be 0..1"),
        ("nc: 3\nnames: [a, b]\n", "nc: 3 but 'names:' lists 2"),
        ("train: images\n", "no 'names:'"),
    ],
)
def test_yolo_data_yaml_errors_name_the_file(tmp_path, text, message):
    root = make_yolo_dataset(tmp_path / "yolo", count=1)
    (root / "classes.txt").unlink()
    (root / "data.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=message.replace("[", r"\[")):
        read_dataset(root, "yolo")


def test_coco_json(tmp_path):
    root = make_coco_dataset(tmp_path / "coco", count=3)
    data = json.loads((root / "annotations.json").read_text())
    data["annotations"].append({"id": 99, "image_id": 100, "category_id": 42, "bbox": [1, 1, 5, 5]})
    (root / "annotations.json").write_text(json.dumps(data))
    index = read_dataset(root, "coco")
    assert index.classes == DETECTION_CLASSES
    assert sum(len(s.labels) for s in index.samples) == 6
    assert any("annotation #6 (id 99): unknown category_id 42" in m for m in messages(index))
    first = data["annotations"][0]
    x, y, w, h = first["bbox"]
    sample = next(s for s in index.samples if s.key == "images/img0.png")
    np.testing.assert_allclose(sample.boxes[0], [x, y, x + w, y + h])


@pytest.mark.parametrize("commas", [False, True])
def test_deeppcb_pairs_space_or_comma(tmp_path, commas):
    root = make_deeppcb_dataset(tmp_path / "pcb", count=2, commas=commas)
    index = read_dataset(root, "deeppcb")
    assert index.classes == DEEPPCB_CLASSES and index.has_reference
    sample = index.samples[0]
    assert sample.reference_path.name.endswith("_temp.jpg") and sample.image_size == (64, 64)
    annotation = sample.image_path.parent.parent / "12000_not" / f"{sample.image_path.name[:-9]}.txt"
    first = annotation.read_text().splitlines()[0].replace(",", " ").split()
    np.testing.assert_allclose(sample.boxes[0], [float(v) for v in first[:4]])
    assert sample.labels[0] == int(first[4]) - 1


def test_deeppcb_missing_template_and_bad_type(tmp_path):
    root = make_deeppcb_dataset(tmp_path / "pcb", count=3)
    folder = root / "group12000" / "12000"
    (folder / "12000000_temp.jpg").unlink()
    with open(root / "group12000" / "12000_not" / "12000001.txt", "a") as handle:
        handle.write("1 2 3 4 9\n")
    index = read_dataset(root, "deeppcb")
    assert len(index.samples) == 2
    text = "\n".join(messages(index))
    assert "12000000_temp.jpg: missing image" in text
    assert "12000001.txt:3: unknown defect type 9" in text


def test_unknown_format_and_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset format"):
        read_dataset(tmp_path, "kitti")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no Pascal VOC"):
        read_dataset(tmp_path / "empty", "voc")


# --- real files from ../shared/data --------------------------------------------------------


needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not here")


@needs_shared
def test_real_neu_det_voc_and_cls(tmp_path):
    source = SHARED_DATA / "neu-det"
    # patches_104.xml (among others) names its image without the extension
    stems = [sorted((source / "annotations").glob(f"{name}_*.xml"))[0].stem for name in ("crazing", "scratches")]
    stems.append("patches_104" if (source / "annotations" / "patches_104.xml").is_file() else
                 sorted((source / "annotations").glob("patches_*.xml"))[0].stem)
    for stem in stems:
        for sub, suffix in (("images", ".jpg"), ("annotations", ".xml")):
            (tmp_path / sub).mkdir(exist_ok=True)
            shutil.copy(source / sub / f"{stem}{suffix}", tmp_path / sub)
    voc = read_dataset(tmp_path, "voc")
    assert not voc.problems and len(voc.samples) == 3
    assert set(voc.classes) == {"crazing", "patches", "scratches"}
    assert all(s.image_size == (200, 200) and len(s.boxes) >= 1 for s in voc.samples)
    cls = read_dataset(tmp_path, "neu-cls")
    assert sorted(cls.classes[s.label] for s in cls.samples) == ["crazing", "patches", "scratches"]


@needs_shared
def test_real_deeppcb_pairs(tmp_path):
    source = SHARED_DATA / "deeppcb"
    group = sorted(p for p in source.iterdir() if p.name.startswith("group"))[0]
    number = group.name[len("group"):]
    tested = sorted((group / number).glob("*_test.jpg"))[:2]
    (tmp_path / group.name / number).mkdir(parents=True)
    (tmp_path / group.name / f"{number}_not").mkdir()
    for path in tested:
        image_id = path.name[:-len("_test.jpg")]
        for name in (path.name, f"{image_id}_temp.jpg"):
            shutil.copy(group / number / name, tmp_path / group.name / number)
        shutil.copy(group / f"{number}_not" / f"{image_id}.txt", tmp_path / group.name / f"{number}_not")
    index = read_dataset(tmp_path, "deeppcb")
    assert not index.problems and len(index.samples) == 2
    for sample in index.samples:
        annotation = group / f"{number}_not" / f"{sample.image_path.name[:-len('_test.jpg')]}.txt"
        lines = [line for line in annotation.read_text().splitlines() if line.strip()]
        assert len(sample.boxes) == len(lines) and sample.image_size == (640, 640)


# --- splits ------------------------------------------------------------------------------


def test_split_is_stratified_deterministic_and_round_trips(tmp_path):
    index = read_dataset(make_folder_dataset(tmp_path / "cls", per_class=10), "folder", check_images=False)
    split = make_split(index, seed=3, val=0.2, test=0.1)
    assert split == make_split(index, seed=3, val=0.2, test=0.1)
    assert split.subsets != make_split(index, seed=4, val=0.2, test=0.1).subsets
    for name in index.classes:
        counts = {subset: sum(1 for key in keys if key.startswith(name)) for subset, keys in split.subsets.items()}
        assert counts == {"train": 7, "val": 2, "test": 1}
    assert not split.all_keys() ^ {s.key for s in index.samples}
    loaded = Split.load(split.save(tmp_path / "split.json"))
    assert loaded == split and loaded.check(index) == []
    assert "images" in split.describe(index)


def test_split_keeps_a_training_image_per_stratum_and_checks_the_file(tmp_path):
    root = make_voc_dataset(tmp_path / "voc", count=4)
    index = read_dataset(root, "voc", check_images=False)
    split = make_split(index, seed=0, val=0.5)
    assert split.subsets["train"]
    (tmp_path / "bad.json").write_text("{\n  oops")
    with pytest.raises(SplitError, match="bad.json:2"):
        Split.load(tmp_path / "bad.json")
    with pytest.raises(SplitError):
        make_split(index, val=1.2)
    smaller = index.subset([s.key for s in index.samples[:2]])
    assert any("not in the dataset" in warning for warning in split.check(smaller))


# --- what `station synth` writes ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["voc", "yolo"])
def test_reads_station_synth_datasets(tmp_path, fmt):
    from station.cli import main

    out = tmp_path / fmt
    assert main(["synth", "--out", str(out), "--count", "3", "--defects", "--format", fmt, "--size", "96", "128"]) == 0
    index = read_dataset(out, fmt)
    assert not index.problems and len(index.samples) == 3
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    manifest = {record["file"]: record for record in records}
    for sample in index.samples:
        record = manifest[sample.key]
        assert [index.classes[k] for k in sample.labels] == record["labels"]
        expected = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
        if fmt == "yolo":
            np.testing.assert_allclose(sample.boxes, expected, atol=0.01)
        else:  # VOC widens to whole pixels: the read box holds the drawn one, within a pixel
            assert (sample.boxes[:, :2] <= expected[:, :2] + 1e-3).all()
            assert (sample.boxes[:, 2:] >= expected[:, 2:] - 1e-3).all()
            np.testing.assert_allclose(sample.boxes, expected, atol=1.0)


def test_reads_station_synth_material_folders(tmp_path):
    from station.cli import main

    out = tmp_path / "m"
    assert main(["synth", "--out", str(out), "--count", "3", "--format", "folder", "--size", "96", "128"]) == 0
    index = read_dataset(out, "folder")
    assert index.classes == ("ceramic", "metallic", "plastic") and len(index.samples) == 3

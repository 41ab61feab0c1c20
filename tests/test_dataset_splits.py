"""The dataset's own split (``--split-from dataset|auto``) in each format's real layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.training_data import make_deeppcb_dataset, make_voc_dataset, make_yolo_dataset
from station.training.datasets import read_dataset
from station.training.splits import Split, SplitError, dataset_split, make_split

SHARED_DEEPPCB = Path(__file__).resolve().parents[2] / "shared" / "data" / "deeppcb"


def test_voc_imagesets_main_train_val_test(tmp_path):
    root = make_voc_dataset(tmp_path / "voc", count=12, size=64)
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("\n".join(f"img{i:03d}" for i in range(0, 8)) + "\n")
    (main / "val.txt").write_text("img008\nimg009\n")
    (main / "test.txt").write_text("img010\nimg011\n")
    index = read_dataset(root, "voc")
    split = dataset_split(index)
    assert split.source == "dataset: ImageSets/Main"
    assert split.subsets["val"] == ["JPEGImages/img008.png", "JPEGImages/img009.png"]
    assert split.subsets["test"] == ["JPEGImages/img010.png", "JPEGImages/img011.png"]
    assert len(split.subsets["train"]) == 8 and not split.check(index)


def test_voc_trainval_only_gets_a_carved_validation_part(tmp_path):
    root = make_voc_dataset(tmp_path / "voc", count=12, size=64)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(f"img{i:03d}" for i in range(10)) + "\n")
    (root / "ImageSets" / "Main" / "test.txt").write_text("img010\nimg011\n")
    split = dataset_split(read_dataset(root, "voc"), seed=3, val=0.2)
    assert "val carved from its training part (fraction 0.2, seed 3)" in split.source
    assert len(split.subsets["train"]) + len(split.subsets["val"]) == 10
    assert split.subsets["test"] == ["JPEGImages/img010.png", "JPEGImages/img011.png"]
    assert not set(split.subsets["train"]) & set(split.subsets["val"])


def test_yolo_data_yaml_folders_and_image_lists(tmp_path):
    root = make_yolo_dataset(tmp_path / "yolo", count=6, size=64)
    for i in (4, 5):  # Ultralytics layout: images/val with labels/val
        for kind, suffix in (("images", ".png"), ("labels", ".txt")):
            (root / kind / "val").mkdir(parents=True, exist_ok=True)
            (root / kind / "train" / f"img{i}{suffix}").rename(root / kind / "val" / f"img{i}{suffix}")
    (root / "images" / "test").mkdir()
    (root / "images" / "train" / "img3.png").rename(root / "images" / "test" / "img3.png")
    (root / "test.txt").write_text("images/test/img3.png\n")
    (root / "data.yaml").write_text("path: /nowhere/else\ntrain: images/train\nval: images/val\ntest: test.txt\n"
                                    "names: [blob, hole, line]\n")
    split = dataset_split(read_dataset(root, "yolo"))
    assert split.source == "dataset: data.yaml"
    assert split.subsets["val"] == ["images/val/img4.png", "images/val/img5.png"]
    assert split.subsets["test"] == ["images/test/img3.png"]
    assert split.subsets["train"] == [f"images/train/img{i}.png" for i in range(3)]


def test_overlapping_lists_are_refused(tmp_path):
    root = make_voc_dataset(tmp_path / "voc", count=6, size=64)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("img000\nimg001\nimg002\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("img002\nimg003\n")
    with pytest.raises(SplitError, match="puts 1 images in two subsets"):
        dataset_split(read_dataset(root, "voc"))


def test_a_synth_yolo_set_with_train_equal_val_has_no_split_of_its_own(tmp_path):
    root = make_yolo_dataset(tmp_path / "yolo", count=3, size=64)
    (root / "data.yaml").write_text("train: images\nval: images\nnames: [blob, hole, line]\n")
    assert dataset_split(read_dataset(root, "yolo")) is None


def test_deeppcb_trainval_and_test_lists(tmp_path):
    root = make_deeppcb_dataset(tmp_path / "pcb", count=6, size=64)
    (root / "trainval.txt").write_text("".join(f"group12000/12000/12000{i:03d}.jpg group12000/12000_not/12000{i:03d}.txt\n"
                                               for i in range(4)))
    (root / "test.txt").write_text("group12000/12000/12000004.jpg group12000/12000_not/12000004.txt\n")
    split = dataset_split(read_dataset(root, "deeppcb"), val=0.25)
    assert split.source.startswith("dataset: trainval.txt + test.txt; val carved")
    assert split.subsets["test"] == ["group12000/12000/12000004_test.jpg"]
    assert len(split.subsets["train"]) + len(split.subsets["val"]) == 4
    assert split.check(read_dataset(root, "deeppcb")) == [
        "1 images in the dataset are in no subset of the split, e.g. group12000/12000/12000005_test.jpg"]


@pytest.mark.skipif(not (SHARED_DEEPPCB / "trainval.txt").is_file(), reason="needs ../shared/data/deeppcb")
def test_the_shared_deeppcb_copy_uses_the_official_trainval_list():
    index = read_dataset(SHARED_DEEPPCB, "deeppcb", check_images=False)
    split = dataset_split(index)
    assert len(split.subsets["train"]) + len(split.subsets["val"]) == len(index.samples) == 1000
    assert "test" not in split.subsets  # the official test half is kept aside


def test_source_round_trips_and_old_files_read_as_random(tmp_path):
    root = make_voc_dataset(tmp_path / "voc", count=6, size=64)
    split = make_split(read_dataset(root, "voc"))
    path = split.save(tmp_path / "split.json")
    assert Split.load(path).source == "random"
    text = path.read_text(encoding="utf-8").replace('"source": "random",', "")
    (tmp_path / "old.json").write_text(text, encoding="utf-8")
    assert Split.load(tmp_path / "old.json").source == "random"


def test_train_cli_refuses_split_from_dataset_without_one(tmp_path):
    import subprocess
    import sys

    root = make_voc_dataset(tmp_path / "voc", count=6, size=64)
    result = subprocess.run(
        [sys.executable, "-m", "station", "train", "detector", "--data", str(root), "--format", "voc",
         "--split-from", "dataset", "--epochs", "1", "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "ships no split of its own" in result.stderr and "Traceback" not in result.stderr


def _split_coco_files(root, files):
    """``make_coco_dataset``'s one annotations.json cut into one file per split; each split's
    images moved to the folder the layout keeps them in."""
    import json
    import shutil

    whole = json.loads((root / "annotations.json").read_text())
    (root / "annotations.json").unlink()
    for json_path, image_folder, ids in files:
        image_folder.mkdir(parents=True, exist_ok=True)
        images = [image for image in whole["images"] if image["id"] in ids]
        for image in images:
            shutil.move(root / "images" / image["file_name"], image_folder / image["file_name"])
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"images": images, "categories": whole["categories"],
                                         "annotations": [a for a in whole["annotations"] if a["image_id"] in ids]}))


def test_coco_2017_layout_one_file_per_split(tmp_path):
    from fixtures.training_data import make_coco_dataset

    root = make_coco_dataset(tmp_path / "coco", count=6, size=64)
    boxes = sum(len(s.boxes) for s in read_dataset(root, "coco").samples)
    _split_coco_files(root, [(root / "annotations" / "instances_train2017.json", root / "train2017", {100, 101, 102, 103}),
                             (root / "annotations" / "instances_val2017.json", root / "val2017", {104, 105})])
    index = read_dataset(root, "coco")
    assert len(index.samples) == 6 and sum(len(s.boxes) for s in index.samples) == boxes and not index.problems
    split = dataset_split(index)
    assert split.source == "dataset: annotations/instances_train2017.json + annotations/instances_val2017.json"
    assert split.subsets["val"] == ["val2017/img4.png", "val2017/img5.png"] and len(split.subsets["train"]) == 4


def test_roboflow_coco_export_train_valid_test(tmp_path):
    from fixtures.training_data import make_coco_dataset

    root = make_coco_dataset(tmp_path / "roboflow", count=6, size=64)
    _split_coco_files(root, [(root / name / "_annotations.coco.json", root / name, ids)
                             for name, ids in (("train", {100, 101, 102}), ("valid", {103, 104}), ("test", {105}))])
    split = dataset_split(read_dataset(root, "coco"))
    assert split.subsets["val"] == ["valid/img3.png", "valid/img4.png"]
    assert split.subsets["test"] == ["test/img5.png"] and len(split.subsets["train"]) == 3

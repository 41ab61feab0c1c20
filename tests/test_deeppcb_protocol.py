"""The DeepPCB benchmark's rule (station.training.deeppcb): hand-computed cases where it differs
from per-class matching, and the port against a transcription of the script's loop on the
bundled detector's boxes for real DeepPCB images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from fixtures import deeppcb_script

from station.training.deeppcb import (
    deeppcb_metrics,
    deeppcb_per_class_metrics,
    match_official,
    write_script_inputs,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STATION_SHARED_DATA", REPO.parent / "shared" / "data"))
CLASSES = ["open", "short", "mousebite", "spur", "copper", "pin-hole"]
OPEN, SHORT = 0, 1


def det(boxes, labels, scores=None):
    item = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}
    if scores is not None:
        item["scores"] = torch.tensor(scores, dtype=torch.float32)
    return item


# image 1: a wrong-type box scored higher than the right-type box beside it, both over one open
# defect; image 2: two open defects in file order g1, g2 competing for one detection
TARGETS = [det([[0, 0, 100, 10]], [OPEN]), det([[0, 0, 10, 10], [5, 0, 15, 10]], [OPEN, OPEN])]
PREDICTIONS = [
    det([[0, 0, 100, 10], [2, 0, 100, 10]], [SHORT, OPEN], [0.9, 0.8]),
    # IoU with g1 / g2: d 0.43 / 0.82, d2 0.90 / 0.27
    det([[4, 0, 14, 10], [0, 0, 9, 10]], [OPEN, OPEN], [0.7, 0.5]),
]


def test_a_wrong_type_box_uses_up_the_ground_truth():
    table = match_official(PREDICTIONS[:1], TARGETS[:1], len(CLASSES))
    # the 0.9 short box pairs with the open defect (IoU 1) and is wrong; the open box is left over
    assert table.hits.tolist() == [False, False]
    official = deeppcb_metrics(PREDICTIONS[:1], TARGETS[:1], CLASSES, card_threshold=0.5)
    assert (official.map, official.card_precision, official.card_recall, official.card_fscore) == (0, 0, 0, 0)
    lenient = deeppcb_per_class_metrics(PREDICTIONS[:1], TARGETS[:1], CLASSES, card_threshold=0.5)
    assert (lenient.card_precision, lenient.card_recall) == pytest.approx((1 / 2, 1.0))
    assert lenient.map == pytest.approx(1.0)


def test_ground_truth_order_decides_which_box_a_detection_takes():
    table = match_official(PREDICTIONS[1:], TARGETS[1:], len(CLASSES))
    # g1 comes first and takes d (IoU 0.43 > 0.33) though d overlaps g2 more; g2 has only d2 left,
    # at IoU 0.27: unpaired. Per-class matching gives d to g2 and d2 to g1: two hits
    assert table.hits.tolist() == [True, False]
    official = deeppcb_metrics(PREDICTIONS[1:], TARGETS[1:], CLASSES, card_threshold=0.4)
    assert (official.card_precision, official.card_recall) == pytest.approx((1 / 2, 1 / 2))
    assert official.map == pytest.approx((1 / 1) / 2)  # the correct box ranks first, of 2 defects
    lenient = deeppcb_per_class_metrics(PREDICTIONS[1:], TARGETS[1:], CLASSES, card_threshold=0.4)
    assert (lenient.card_precision, lenient.card_recall) == pytest.approx((1.0, 1.0))


def test_official_figures_by_hand():
    official = deeppcb_metrics(PREDICTIONS, TARGETS, CLASSES, card_threshold=0.6)
    # ranked over both images: 0.9 wrong, 0.8 unpaired, 0.7 correct, 0.5 unpaired; 3 defects
    assert official.map == pytest.approx((1 / 3) / 3)
    # the card's 0.6 submits 0.9, 0.8 and 0.7: one correct of 3 submitted, of 3 defects
    assert (official.card_precision, official.card_recall, official.card_fscore) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert official.card_map == pytest.approx((1 / 3) / 3)
    assert official.per_class_ap == pytest.approx({"open": (1 / 2) / 3})  # open boxes: wrong, right, wrong
    assert (official.optimistic_threshold, official.optimistic_fscore) == pytest.approx((0.7, 1 / 3))
    summary = official.summary()
    assert summary["deeppcb_map"] == official.map
    assert summary["deeppcb_fscore_at_card_threshold"] == official.card_fscore
    assert summary["deeppcb_fscore_best_threshold_optimistic"] == official.optimistic_fscore
    assert not any(key.startswith("deeppcb_per_class") for key in summary)


def test_per_class_figures_by_hand_are_named_apart():
    lenient = deeppcb_per_class_metrics(PREDICTIONS, TARGETS, CLASSES, card_threshold=0.6)
    # 0.9 short: no short defect (miss); 0.8, 0.7, 0.5 open: all hits
    assert lenient.map == pytest.approx(1.0)
    assert (lenient.card_precision, lenient.card_recall, lenient.card_fscore) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    summary = lenient.summary()
    assert summary["deeppcb_per_class_map"] == pytest.approx(1.0)
    assert "deeppcb_map" not in summary and "deeppcb_fscore_at_card_threshold" not in summary


def test_the_pairing_above_a_threshold_ignores_the_boxes_below_it():
    cut = [{k: v[item["scores"] >= 0.6] for k, v in item.items()} for item in PREDICTIONS]
    full = deeppcb_metrics(PREDICTIONS, TARGETS, CLASSES, card_threshold=0.6)
    submitted = deeppcb_metrics(cut, TARGETS, CLASSES)
    assert full.card_map == pytest.approx(submitted.map)


def test_port_matches_the_script_transcription_on_hand_cases(tmp_path):
    keys = ["g/1/00000001_test.jpg", "g/1/00000002_test.jpg"]
    folder = write_script_inputs(tmp_path, keys, PREDICTIONS, TARGETS, CLASSES, card_threshold=0.6)
    script = deeppcb_script.evaluate(folder / "gt", folder / "res")
    official = deeppcb_metrics(PREDICTIONS, TARGETS, CLASSES, card_threshold=0.6)
    assert (script["precision"], script["recall"], script["hmean"]) == pytest.approx(
        (official.card_precision, official.card_recall, official.card_fscore))
    assert script["AP"] == pytest.approx(official.card_map)
    assert deeppcb_script.evaluate(folder / "gt", folder / "res-all")["AP"] == pytest.approx(official.map)


def _read_submission(folder: Path, names: list[str]) -> list[dict[str, torch.Tensor]]:
    items = []
    for name in names:
        rows = [line.split(",") for line in (folder / f"{name}.txt").read_text().splitlines() if line]
        items.append(det([[float(v) for v in row[:4]] for row in rows], [CLASSES.index(row[5]) for row in rows],
                         [float(row[4]) for row in rows]))
    return items


def _assert_same_as_script(folder: Path, metrics) -> None:
    at_card = deeppcb_script.evaluate(folder / "gt", folder / "res")
    every = deeppcb_script.evaluate(folder / "gt", folder / "res-all")
    assert at_card["precision"] == pytest.approx(metrics.card_precision, rel=1e-12)
    assert at_card["recall"] == pytest.approx(metrics.card_recall, rel=1e-12)
    assert at_card["hmean"] == pytest.approx(metrics.card_fscore, rel=1e-12)
    assert at_card["AP"] == pytest.approx(metrics.card_map, rel=1e-9)
    assert every["AP"] == pytest.approx(metrics.map, rel=1e-9)


@pytest.mark.skipif(not (SHARED_DATA / "deeppcb").is_dir(), reason="../shared/data/deeppcb is not here")
def test_port_matches_the_script_transcription_on_real_images(tmp_path):
    from station.training.evaluate import evaluate

    source = SHARED_DATA / "deeppcb"
    group = sorted(p for p in source.iterdir() if p.name.startswith("group"))[0]
    number = group.name[len("group"):]
    data = tmp_path / "data"
    (data / group.name / number).mkdir(parents=True)
    (data / group.name / f"{number}_not").mkdir()
    names = []
    for path in sorted((group / number).glob("*_test.jpg"))[:6]:
        image_id = path.name[: -len("_test.jpg")]
        names.append(image_id)
        for name in (path.name, f"{image_id}_temp.jpg"):
            shutil.copy(group / number / name, data / group.name / number)
        shutil.copy(group / f"{number}_not" / f"{image_id}.txt", data / group.name / f"{number}_not")
    result = evaluate(REPO / "models" / "wbam-ffem-deeppcb", data, subset="all", protocol="deeppcb",
                      device="cpu", views=1, out_dir=tmp_path / "out", progress=False)
    folder = tmp_path / "out" / "deeppcb-script"
    assert sorted(p.stem for p in (folder / "gt").glob("*.txt")) == names
    # the script's ground truth is the annotation file, line for line
    for name in names:
        rows = [line.split() for line in (group / f"{number}_not" / f"{name}.txt").read_text().splitlines() if line]
        written = [line.split(",") for line in (folder / "gt" / f"{name}.txt").read_text().splitlines()]
        assert [row[:4] + [CLASSES[int(row[4]) - 1]] for row in rows] == written
    assert result.deeppcb is not None and result.deeppcb.card_threshold is not None
    _assert_same_as_script(folder, result.deeppcb)

    # the same boxes with every other one given the next type: many wrong-type pairs
    detections = _read_submission(folder / "res-all", names)
    for item in detections:
        item["labels"][::2] = (item["labels"][::2] + 1) % len(CLASSES)
    truth = []
    for name in names:
        rows = [line.split(",") for line in (folder / "gt" / f"{name}.txt").read_text().splitlines()]
        truth.append(det([[float(v) for v in row[:4]] for row in rows], [CLASSES.index(row[4]) for row in rows]))
    relabelled = write_script_inputs(tmp_path / "relabelled", [f"{n}.jpg" for n in names], detections, truth,
                                     CLASSES, result.deeppcb.card_threshold)
    official = deeppcb_metrics(detections, truth, CLASSES, card_threshold=result.deeppcb.card_threshold)
    _assert_same_as_script(relabelled, official)
    lenient = deeppcb_per_class_metrics(detections, truth, CLASSES, card_threshold=result.deeppcb.card_threshold)
    assert lenient.per_class_ap["open"] > official.per_class_ap["open"]  # the rules differ on these boxes


def test_the_bundled_card_carries_the_benchmark_figures_evaluate_reports():
    from station.ml.cards import load_card
    from station.training.metrics import detection_metrics

    card = load_card(REPO / "models" / "wbam-ffem-deeppcb")
    reported = (set(detection_metrics(PREDICTIONS, TARGETS, CLASSES).summary())
                | set(deeppcb_metrics(PREDICTIONS, TARGETS, CLASSES, card_threshold=card.thresholds.score).summary()))
    assert set(card.metrics) == reported
    assert card.metrics["card_threshold"] == card.thresholds.score

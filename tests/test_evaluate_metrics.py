"""Metrics against hand-computed values on tiny cases (station.training.metrics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from station.training.deeppcb import deeppcb_per_class_metrics
from station.training.metrics import classification_metrics, detection_metrics, match_detections


def det(boxes, labels, scores=None):
    item = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}
    if scores is not None:
        item["scores"] = torch.tensor(scores, dtype=torch.float32)
    return item


def test_classification_by_hand():
    labels = [0, 0, 1, 1, 2, 2, 2]
    predictions = [0, 1, 1, 1, 2, 0, 2]
    metrics = classification_metrics(labels, predictions, ["a", "b", "c"])
    # a: TP 1, FP 1, FN 1; b: TP 2, FP 1; c: TP 2, FN 1
    assert metrics.accuracy == pytest.approx(5 / 7)
    assert metrics.per_class["a"].precision == pytest.approx(1 / 2)
    assert metrics.per_class["b"].precision == pytest.approx(2 / 3)
    assert metrics.per_class["b"].recall == pytest.approx(1.0)
    assert metrics.per_class["c"].recall == pytest.approx(2 / 3)
    assert [metrics.per_class[n].f1 for n in "abc"] == pytest.approx([0.5, 0.8, 0.8])
    assert metrics.macro_precision == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics.macro_recall == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert metrics.macro_f1 == pytest.approx(0.7)
    np.testing.assert_array_equal(metrics.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    assert metrics.per_class["c"].support == 3


def test_coco_map_by_hand():
    targets = [det([[0, 0, 10, 10]], [0]), det([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0])]
    predictions = [
        det([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0], [0.9, 0.8]),
        det([[50, 50, 60, 60]], [0], [0.7]),
    ]
    metrics = detection_metrics(predictions, targets, ["defect"])
    # ranked: hit, miss, hit of 3 boxes -> precision 1 up to recall 1/3 (34 of COCO's 101 recall
    # points), 2/3 up to recall 2/3 (33 points), nothing beyond
    expected = (34 * 1.0 + 33 * 2 / 3) / 101
    for value in (metrics.map50, metrics.map75, metrics.map90, metrics.map50_95):
        assert value == pytest.approx(expected, abs=1e-6)
    assert metrics.per_class_ap50["defect"] == pytest.approx(expected, abs=1e-6)
    assert metrics.mar100 == pytest.approx(2 / 3, abs=1e-6)
    assert metrics.pr_curves["defect"].shape == (101,)


def test_coco_iou_thresholds_by_hand():
    # IoU 0.8: a hit at 0.50 ... 0.80 (7 of the 10 COCO thresholds), a miss at 0.85, 0.9, 0.95
    targets = [det([[0, 0, 10, 10]], [1])]
    predictions = [det([[0, 0, 10, 8]], [1], [0.9])]
    metrics = detection_metrics(predictions, targets, ["a", "b"])
    assert (metrics.map50, metrics.map75, metrics.map90) == pytest.approx((1.0, 1.0, 0.0))
    assert metrics.map50_95 == pytest.approx(0.7)
    assert set(metrics.per_class_ap50) == {"b"}  # no ground truth of "a": not averaged


def test_deeppcb_per_class_rule_by_hand():
    targets = [det([[0, 0, 100, 10], [200, 200, 220, 220]], [0, 0]), det([[0, 0, 10, 10]], [1])]
    predictions = [
        det([[0, 0, 100, 10], [68, 0, 100, 10], [200, 200, 220, 220]], [0, 0, 0], [0.9, 0.8, 0.6]),
        det([[0, 0, 10, 10], [66, 0, 100, 10]], [1, 0], [0.7, 0.5]),
    ]
    # [68, 0, 100, 10] overlaps the first box with IoU 0.32 (a miss even though that box is free);
    # the 0.5 detection of class 0 in image 2 has no class-0 box there: a miss
    metrics = deeppcb_per_class_metrics(predictions, targets, ["open", "short"], card_threshold=0.75)
    assert metrics.per_class_ap["open"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # hits at ranks 1 and 3
    assert metrics.per_class_ap["short"] == pytest.approx(1.0)
    assert metrics.map == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    # thresholds 0.9 / 0.8 / 0.7 / 0.6 / 0.5 keep 1/2/3/4/5 detections with 1/1/2/3/3 hits of 3
    assert metrics.optimistic_threshold == pytest.approx(0.6)
    assert metrics.optimistic_fscore == pytest.approx(2 * 0.75 / 1.75)
    assert (metrics.card_precision, metrics.card_recall, metrics.card_fscore) == pytest.approx((0.5, 1 / 3, 0.4))
    # the card's 0.75 keeps 0.9 (open, hit) and 0.8 (open, miss): open AP 1/2, short AP 0
    assert metrics.card_map == pytest.approx((1 / 2 + 0) / 2)


def test_iou_above_the_threshold_is_a_hit_and_each_box_is_matched_once():
    targets = [det([[0, 0, 100, 10]], [0])]
    close = det([[66, 0, 100, 10]], [0], [0.9])  # IoU 0.34
    assert match_detections([close], targets, 1, 0.33, strictly_above=True).hits.tolist() == [True]
    twice = det([[0, 0, 100, 10], [1, 0, 100, 10]], [0, 0], [0.9, 0.8])
    assert match_detections([twice], targets, 1, 0.5).hits.tolist() == [True, False]


def test_expected_calibration_error_by_hand():
    import math

    from station.training.metrics import expected_calibration_error

    # both calls 90 % sure of class 0; one is right, one wrong: one bin, |0.9 - 0.5| = 0.4
    logits = torch.tensor([[math.log(0.9), math.log(0.1)]] * 2)
    assert expected_calibration_error(logits, torch.tensor([0, 1])) == pytest.approx(0.4, abs=1e-6)
    # temperature 2 softens 0.9/0.1 to 0.75/0.25: |0.75 - 0.5|
    assert expected_calibration_error(logits, torch.tensor([0, 1]), temperature=2.0) == pytest.approx(0.25, abs=1e-6)

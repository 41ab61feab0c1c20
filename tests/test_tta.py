"""Test-time views: boxes found in a turned or mirrored view map back exactly, weighted boxes
fusion merges what the views agree on, and cards carry the setting."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from station.ml.cards import ModelCard
from station.ml.letterbox import LetterboxInfo
from station.ml.tta import DIHEDRAL_VIEWS, boxes_from_view, predict_with_views, view_images, weighted_boxes_fusion

BOX = (5.0, 3.0, 17.0, 9.0)  # x1, y1, x2, y2 of a bright block in a 20 (high) x 32 (wide) input


def _image_with_block(height: int = 20, width: int = 32) -> torch.Tensor:
    image = torch.zeros(1, 1, height, width)
    x1, y1, x2, y2 = (int(v) for v in BOX)
    image[..., y1:y2, x1:x2] = 1.0
    return image


def _bright_box(image: torch.Tensor) -> torch.Tensor:
    """The bounding box (pixel edges) of the pixels above 0.5 in ``image [..., H, W]``."""
    rows, cols = torch.nonzero(image.reshape(image.shape[-2:]) > 0.5, as_tuple=True)
    return torch.tensor([[cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]], dtype=torch.float32)


class BlockDetector:
    """Reports the bright block as class 1 at a fixed score; counts its calls and input shapes."""

    def __init__(self, score: float = 0.9) -> None:
        self.score = score
        self.shapes: list[tuple[int, ...]] = []

    def predict(self, images, score_thresh=0.25, nms_iou=0.5, max_det=100, letterbox=None):
        self.shapes.append(tuple(images.shape))
        found = []
        for image in images:
            boxes = _bright_box(image)
            if letterbox is not None:
                raise AssertionError("views are predicted in input pixels")
            found.append({"boxes": boxes, "labels": torch.tensor([1]), "scores": torch.tensor([self.score])})
        return found


@pytest.mark.parametrize("view", DIHEDRAL_VIEWS)
def test_a_box_found_in_any_view_maps_back_to_the_input(view):
    image = _image_with_block()
    seen = view_images(image, view)
    assert seen.shape[-2:] == ((32, 20) if view[0] % 2 else (20, 32))
    back = boxes_from_view(_bright_box(seen), view, 20, 32)
    torch.testing.assert_close(back, torch.tensor([BOX]))


def test_the_eight_views_are_the_eight_distinct_symmetries():
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    seen = {tuple(view_images(image, view).flatten().tolist()) for view in DIHEDRAL_VIEWS}
    assert len(seen) == 8 and DIHEDRAL_VIEWS[0] == (0, False)


def test_fusion_averages_agreeing_boxes_and_scores_down_what_few_views_saw():
    boxes = torch.tensor([[0.0, 0, 10, 10], [2.0, 0, 12, 10], [50.0, 50, 60, 60], [0.0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.3, 0.8, 0.7])
    labels = torch.tensor([0, 0, 0, 1])
    fused, fused_scores, fused_labels = weighted_boxes_fusion(boxes, scores, labels, views=2)
    assert sorted(fused_labels.tolist()) == [0, 0, 1]
    by_score = {round(float(s), 4): (b.tolist(), int(l)) for b, s, l in zip(fused, fused_scores, fused_labels)}
    # the two overlapping class-0 boxes: score-weighted mean box, (0.9 + 0.3) / 2 views
    assert by_score[0.6] == (pytest.approx([0.5, 0, 10.5, 10]), 0)
    assert by_score[0.4] == ([50.0, 50, 60, 60], 0)  # one view of two saw it
    assert by_score[0.35] == ([0.0, 0, 10, 10], 1)  # another class is never merged in
    assert fused_scores.tolist() == sorted(fused_scores.tolist(), reverse=True)


def test_a_cluster_scores_its_evidence_per_view_at_most_one():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 11], [0.0, 1, 10, 10]])
    _, scores, _ = weighted_boxes_fusion(boxes, torch.tensor([0.9, 0.8, 0.6]), torch.zeros(3, dtype=torch.int64), 2)
    assert scores.tolist() == [1.0]


def test_fusion_of_nothing_is_empty():
    boxes, scores, labels = weighted_boxes_fusion(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 8)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)


def test_predict_with_views_fuses_every_view_back_onto_the_input():
    detector = BlockDetector(score=0.9)
    images = torch.cat([_image_with_block(), _image_with_block()])
    found = predict_with_views(detector, images, 8, score_thresh=0.5)
    assert len(detector.shapes) == 8 and detector.shapes[-1] == (2, 1, 20, 32)  # the identity view runs last
    for item in found:
        torch.testing.assert_close(item["boxes"], torch.tensor([BOX]))
        assert item["labels"].tolist() == [1] and item["scores"].tolist() == pytest.approx([0.9])


def test_predict_with_views_maps_through_the_letterbox_and_cuts_at_the_threshold():
    info = LetterboxInfo(scale=0.5, pad_x=2, pad_y=0, orig_h=40, orig_w=56, out_h=20, out_w=32)
    found = predict_with_views(BlockDetector(0.9), _image_with_block(), 4, score_thresh=0.5, letterbox=[info])
    torch.testing.assert_close(found[0]["boxes"], torch.tensor([[6.0, 6.0, 30.0, 18.0]]))
    assert predict_with_views(BlockDetector(0.4), _image_with_block(), 4, score_thresh=0.5)[0]["boxes"].shape == (0, 4)


def test_one_view_is_the_plain_predict_and_odd_counts_are_refused():
    detector = BlockDetector()
    predict_with_views(detector, _image_with_block(), 1)
    assert len(detector.shapes) == 1
    with pytest.raises(ValueError, match="views must be one of"):
        predict_with_views(detector, _image_with_block(), 3)


def _card(**changes) -> ModelCard:
    card = ModelCard(name="d", task="detection", architecture="wbam-ffem-nano", build_kwargs={}, classes=["a"],
                     input_size=(3, 64, 64))
    return dataclasses.replace(card, **changes)


def test_cards_carry_test_time_views_for_detectors_only():
    assert _card().test_time_views == 1
    assert ModelCard.from_dict({k: v for k, v in _card().to_dict().items() if k != "test_time_views"}).test_time_views == 1
    assert ModelCard.from_dict(_card(test_time_views=8).to_dict()).test_time_views == 8
    with pytest.raises(ValueError, match="test_time_views"):
        _card(test_time_views=3)
    with pytest.raises(ValueError, match="detectors only"):
        _card(task="classification", test_time_views=2)

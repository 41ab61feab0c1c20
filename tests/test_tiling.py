"""Full-resolution detection: tile layout, boxes back in the frame, merging across tiles, and the
engine tiling a large frame (and only a large one)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers_models import make_tiny_detector
from station.inference import Engine, InspectionRequest, InspectionResult, Recipe, RecipeError
from station.inference.tiling import (
    cut_tiles,
    merge_detections,
    prepare_tiles,
    shift_to_frame,
    tile_layout,
    tile_size,
    tile_starts,
    wants_tiles,
)
from station.ml.cards import load_card
from station.workflow import result_audit_fields


def _covered(grid) -> np.ndarray:
    covered = np.zeros(grid.frame_hw, dtype=np.int32)
    for x, y in grid.origins:
        covered[y : y + grid.tile_hw[0], x : x + grid.tile_hw[1]] += 1
    return covered


@pytest.mark.parametrize("frame_hw", [(1920, 1920), (1944, 2592), (700, 333), (320, 320), (100, 900)])
def test_tiles_cover_the_frame_overlap_and_end_at_its_edges(frame_hw):
    grid = tile_layout(frame_hw, (320, 320), overlap=0.2)
    assert (_covered(grid) > 0).all()
    for axis, length in enumerate(frame_hw):
        starts = sorted({origin[1 - axis] for origin in grid.origins})
        assert starts[0] == 0
        assert starts[-1] + 320 == length or (length <= 320 and starts == [0])
        assert all(previous + 320 - start >= 0.2 * 320 for previous, start in zip(starts, starts[1:]))


def test_tile_counts():
    assert tile_starts(1920, 320) == [0, 229, 457, 686, 914, 1143, 1371, 1600]  # 8 tiles, >= 64 px overlap
    assert tile_starts(1920, 640) == [0, 427, 853, 1280]
    assert tile_starts(640, 640) == [0] and tile_starts(500, 640) == [0]
    assert len(tile_layout((1944, 2592), (320, 320))) == 8 * 10


def test_cut_tiles_pads_where_the_frame_ends():
    frame = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7, 1)
    grid = tile_layout((5, 7), (4, 4), overlap=0.25)
    tiles = cut_tiles(frame, grid, pad_value=200)
    for tile, (x, y) in zip(tiles, grid.origins):
        np.testing.assert_array_equal(tile, frame[y : y + 4, x : x + 4])
    small = cut_tiles(frame, tile_layout((5, 7), (8, 8)), pad_value=200)
    assert small.shape == (1, 8, 8, 1) and (small[0, 5:] == 200).all() and (small[0, :, 7:] == 200).all()
    np.testing.assert_array_equal(small[0, :5, :7], frame)


def _found(boxes, scores, labels) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}


def test_boxes_come_back_in_frame_pixels_clipped_to_the_frame():
    shifted = shift_to_frame(_found([[10, 20, 30, 40], [300, 300, 330, 340]], [0.9, 0.8], [1, 2]), (600, 400),
                             (720, 920))
    assert shifted["boxes"].tolist() == [[610, 420, 630, 440], [900, 700, 920, 720]]
    assert shifted["labels"].tolist() == [1, 2]


def test_a_box_split_across_two_tiles_comes_out_as_one():
    # a defect at x 280..360 in the frame; tile A (x 0..320) sees x 280..320, tile B (x 240..560) all of it
    left = _found([[280, 100, 320, 130]], [0.6], [3])
    right = _found([[290, 101, 360, 129]], [0.8], [3])
    merged = merge_detections([left, right], max_det=10)
    assert merged["boxes"].tolist() == [[280, 100, 360, 130]] and merged["scores"].tolist() == [pytest.approx(0.8)]


def test_a_tile_box_and_the_whole_frame_box_of_one_defect_leave_the_better_one_as_it_is():
    tile_box = _found([[281, 100, 359, 130]], [0.8], [3])
    coarse = _found([[276, 96, 364, 134]], [0.5], [3])  # IoU 0.70
    merged = merge_detections([tile_box], max_det=10, whole_frame=coarse)
    assert merged["boxes"].tolist() == [[281, 100, 359, 130]] and merged["scores"].tolist() == [pytest.approx(0.8)]
    confident = _found([[276, 96, 364, 134]], [0.9], [3])
    assert merge_detections([tile_box], max_det=10, whole_frame=confident)["boxes"].tolist() == [[276, 96, 364, 134]]


def test_a_tile_piece_of_a_large_defect_does_not_swallow_the_whole_frame_box():
    # a defect larger than the tiles' view of it: the whole frame's box survives a better-scored piece
    whole = _found([[200, 90, 400, 190]], [0.6], [2])
    pieces = [_found([[300, 100, 320, 140]], [0.7], [2]), _found([[330, 100, 350, 140]], [0.3], [2])]
    merged = merge_detections(pieces, max_det=10, whole_frame=whole)
    assert [200, 90, 400, 190] in merged["boxes"].tolist() and len(merged["boxes"]) == 3


def test_merge_keeps_other_classes_far_boxes_and_one_pass_own_choices():
    one_pass = _found([[0, 0, 40, 40], [5, 5, 30, 30]], [0.9, 0.5], [0, 0])  # its own NMS kept both
    other_class = _found([[0, 0, 40, 40]], [0.7], [1])
    far = _found([[200, 200, 220, 220]], [0.4], [0])
    merged = merge_detections([one_pass, other_class, far], max_det=10)
    assert merged["labels"].tolist() == [0, 1, 0, 0]
    assert merged["scores"].tolist() == pytest.approx([0.9, 0.7, 0.5, 0.4])
    assert len(merge_detections([one_pass, other_class, far], max_det=2)["boxes"]) == 2
    empty = merge_detections([_found([], [], [])], max_det=10, whole_frame=_found([], [], []))
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)


def test_when_to_tile(tmp_path):
    card = make_tiny_detector(tmp_path / "d", size=64)
    assert tile_size(card) == (64, 64)
    assert tile_size(dataclasses.replace(card, training=dataclasses.replace(card.training, options={"crop": 32}))) \
        == (32, 32)
    assert not wants_tiles("auto", (96, 96), card) and wants_tiles("auto", (97, 64), card)
    assert wants_tiles("on", (64, 64), card) and not wants_tiles("off", (4000, 4000), card)
    with pytest.raises(RecipeError, match="tiling"):
        Recipe(name="r", detector="d", tiling="always")


def test_bundled_cards_tile_at_their_training_crop():
    from station.paths import models_dir

    assert tile_size(load_card(models_dir() / "wbam-ffem-ic")) == (320, 320)
    assert tile_size(load_card(models_dir() / "wbam-ffem-neu")) == (224, 224)


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiling")
    card = make_tiny_detector(root / "defects", size=64, score=0.001, max_det=10)
    card = dataclasses.replace(card, training=dataclasses.replace(card.training, options={"crop": 32}))
    from station.ml.cards import save_card

    save_card(root / "defects", card)
    return root / "defects"


def test_the_engine_tiles_a_large_frame_and_not_a_small_one(tiny_detector):
    rng = np.random.default_rng(0)
    large = rng.integers(0, 256, (200, 150, 3), dtype=np.uint8)
    small = large[:64, :64].copy()
    with Engine(Recipe(name="tiles", detector=str(tiny_detector)), device="cpu", warm_up=False) as engine:
        prepared_large, prepared_small = engine.prepare(large), engine.prepare(small)
        assert prepared_small.detector_tiles is None
        tiles = prepared_large.detector_tiles
        assert len(tiles.grid) == len(tile_layout((200, 150), (32, 32))) and tiles.pixels.shape[1:] == (3, 32, 32)
        results = engine.run_batch([prepared_large, prepared_small], want_attention=True)
        assert results[0].detector_tiles == len(tiles.grid) and results[1].detector_tiles == 0
        assert results[0].to_dict()["detector_tiles"] == len(tiles.grid)
        assert InspectionResult.from_dict(results[0].to_dict()).detector_tiles == len(tiles.grid)
        assert result_audit_fields(results[0])["details"]["detector_tiles"] == len(tiles.grid)
        assert "detector_tiles" not in result_audit_fields(results[1])["details"]
        # boxes in the frame's pixels; the attention map is the whole frame's
        for result, (height, width) in zip(results, [(200, 150), (64, 64)]):
            assert result.defects and all(0 <= d.box[0] <= d.box[2] <= width and 0 <= d.box[1] <= d.box[3] <= height
                                          for d in result.defects)
            assert result.attention.defects.shape == (height, width)
        again = engine.run(InspectionRequest(1, large, None))
        assert [d.box for d in again.defects] == [d.box for d in results[0].defects]  # deterministic
    with Engine(Recipe(name="no tiles", detector=str(tiny_detector), tiling="off"), device="cpu",
                warm_up=False) as engine:
        assert engine.prepare(large).detector_tiles is None
        assert engine.run(InspectionRequest(1, large, None)).detector_tiles == 0


def test_tiles_of_a_frame_and_its_reference(tmp_path):
    card = make_tiny_detector(tmp_path / "ref", size=64, input_mode="gray+ref")
    image = np.zeros((100, 130, 3), np.uint8)
    reference = np.full((100, 130, 3), 255, np.uint8)
    tiles = prepare_tiles(image, card, reference)
    assert tiles.pixels.shape == (len(tiles.grid), 2, 64, 64)
    x, y = tiles.grid.origins[-1]
    assert (x + 64, y + 64) == (130, 100)
    assert (tiles.pixels[:, 0] == 0).all() and (tiles.pixels[:, 1] == 255).all()

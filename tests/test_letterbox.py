"""Letterboxing images of any channel count and mapping boxes both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from station.ml.letterbox import LetterboxInfo, boxes_from_letterbox, boxes_to_letterbox, letterbox


@pytest.mark.parametrize(
    ("shape", "size", "expected_shape"),
    [
        ((480, 640, 3), 320, (320, 320, 3)),  # wide RGB, shrunk
        ((640, 480), 320, (320, 320)),  # tall grayscale keeps its 2-D layout
        ((100, 50, 1), 128, (128, 128, 1)),  # enlarged, trailing channel axis kept
        ((300, 200, 2), (160, 256), (160, 256, 2)),  # tested + template stack, (height, width)
        ((200, 200, 6), 96, (96, 96, 6)),  # rgb + reference
    ],
)
def test_output_shape_dtype_and_layout(shape, size, expected_shape) -> None:
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    out, info = letterbox(image, size)
    assert out.shape == expected_shape and out.dtype == np.uint8
    assert (info.orig_h, info.orig_w) == shape[:2]
    assert (info.out_h, info.out_w) == expected_shape[:2]


def test_keeps_aspect_ratio_and_centres_the_image() -> None:
    image = np.full((480, 640, 3), 200, np.uint8)
    out, info = letterbox(image, 320, pad_value=114)
    assert info == LetterboxInfo(scale=0.5, pad_x=0, pad_y=40, orig_h=480, orig_w=640, out_h=320, out_w=320)
    assert (out[:40] == 114).all() and (out[280:] == 114).all()
    assert (out[40:280] == 200).all()


def test_enlarges_small_images() -> None:
    image = np.zeros((50, 100), np.uint8)
    _, info = letterbox(image, 200)
    assert info.scale == 2.0 and info.pad_x == 0 and info.pad_y == 50


def test_same_size_is_a_copy() -> None:
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 2), dtype=np.uint8)
    out, info = letterbox(image, 64)
    assert np.array_equal(out, image) and out is not image
    assert info.scale == 1.0 and info.pad_x == info.pad_y == 0


def test_every_channel_of_a_stack_is_resized_alike() -> None:
    gray = np.random.default_rng(2).integers(0, 255, (120, 90), dtype=np.uint8)
    stack = np.stack([gray] * 6, axis=-1)
    single, _ = letterbox(gray, 64)
    stacked, _ = letterbox(stack, 64)
    for channel in range(6):
        assert np.array_equal(stacked[..., channel], single)


def test_a_drawn_box_lands_where_boxes_to_letterbox_puts_it() -> None:
    image = np.zeros((300, 500), np.uint8)
    image[100:160, 200:300] = 255
    out, info = letterbox(image, 256)
    x1, y1, x2, y2 = boxes_to_letterbox(np.array([[200.0, 100.0, 300.0, 160.0]]), info)[0]
    ys, xs = np.nonzero(out > 127)
    assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
    assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1


@pytest.mark.parametrize("as_tensor", [False, True])
def test_boxes_round_trip(as_tensor: bool) -> None:
    _, info = letterbox(np.zeros((480, 640, 3), np.uint8), 320)
    boxes = np.array([[10.0, 20.0, 110.0, 60.0], [600.0, 400.0, 640.0, 480.0]], np.float32)
    if as_tensor:
        boxes = torch.from_numpy(boxes)
    there = boxes_to_letterbox(boxes, info)
    back = boxes_from_letterbox(there, info)
    assert type(there) is type(boxes) and type(back) is type(boxes)
    np.testing.assert_allclose(np.asarray(there[0]), [5.0, 50.0, 55.0, 70.0])
    np.testing.assert_allclose(np.asarray(back), np.asarray(boxes), atol=1e-4)


def test_boxes_from_letterbox_clip_to_the_original_image() -> None:
    _, info = letterbox(np.zeros((480, 640), np.uint8), 320)
    in_padding = torch.tensor([[-10.0, 0.0, 330.0, 300.0]])  # reaches into the padding bands
    restored = boxes_from_letterbox(in_padding, info)
    torch.testing.assert_close(restored, torch.tensor([[0.0, 0.0, 640.0, 480.0]]))


def test_integer_and_empty_boxes() -> None:
    _, info = letterbox(np.zeros((100, 100), np.uint8), 50)
    assert boxes_to_letterbox(np.array([[10, 10, 20, 20]]), info).dtype == np.float32
    assert boxes_from_letterbox(torch.zeros(0, 4), info).shape == (0, 4)


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        letterbox(np.zeros(4, np.uint8), 32)
    with pytest.raises(ValueError, match="positive"):
        letterbox(np.zeros((8, 8), np.uint8), 0)
    with pytest.raises(ValueError, match=r"\(1, 2, 3\)"):
        letterbox(np.zeros((8, 8), np.uint8), (1, 2, 3))
    _, info = letterbox(np.zeros((8, 8), np.uint8), 16)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        boxes_to_letterbox(np.zeros((2, 3)), info)

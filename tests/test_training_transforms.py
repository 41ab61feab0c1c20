"""Augmentation: boxes follow the image; a tested+template pair moves as one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from station.training.transforms import (
    AugmentConfig,
    PartwiseColorJitter,
    RandomNativeCrop,
    RandomRotationChoice,
    classification_train_transform,
    default_augment,
    detection_train_transform,
)


def pair_with_box(height=80, width=120, box=(30, 20, 70, 40)):
    """Two channels (tested, template) with the same bright rectangle; its box."""
    image = torch.zeros(2, height, width, dtype=torch.uint8)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = 255
    boxes = tv_tensors.BoundingBoxes(torch.tensor([box], dtype=torch.float32), format="XYXY",
                                     canvas_size=(height, width))
    return {"image": tv_tensors.Image(image), "boxes": boxes, "labels": torch.tensor([4])}


def bright_box(channel: torch.Tensor) -> list[int]:
    ys, xs = torch.nonzero(channel > 127, as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


@pytest.mark.parametrize("angle", [30.0, -15.0, 90.0])
def test_box_survives_rotate_flip_resize(angle):
    transform = v2.Compose([
        RandomRotationChoice([angle]),
        v2.RandomHorizontalFlip(p=1.0),
        v2.RandomVerticalFlip(p=1.0),
        v2.Resize((60, 90)),
    ])
    out = transform(pair_with_box())
    image, boxes = out["image"], out["boxes"]
    assert boxes.canvas_size == tuple(image.shape[-2:])
    expected = boxes[0].tolist()
    # the rotated rectangle's axis-aligned extent is exactly the transformed box (to resampling)
    assert bright_box(image[0]) == pytest.approx(expected, abs=2.0)
    torch.testing.assert_close(image[0], image[1])  # the template moved with the tested image
    assert out["labels"].tolist() == [4]


def test_right_angles_swap_the_canvas_instead_of_cropping():
    out = RandomRotationChoice([90.0])(pair_with_box())
    assert tuple(out["image"].shape[-2:]) == (120, 80)
    assert bright_box(out["image"][0]) == pytest.approx(out["boxes"][0].tolist(), abs=0.5)


def test_native_crop_keeps_boxes_that_stay_visible_and_drops_slivers():
    torch.manual_seed(0)
    crop = v2.Compose([RandomNativeCrop(48, min_visible=0.4, object_bias=0.0), v2.SanitizeBoundingBoxes(min_size=2)])
    seen_kept = seen_dropped = False
    for _ in range(40):
        out = crop(pair_with_box())
        assert tuple(out["image"].shape) == (2, 48, 48)
        assert len(out["boxes"]) == len(out["labels"])
        visible = int((out["image"][0] > 127).sum())
        if len(out["boxes"]):
            seen_kept = True
            assert visible >= 0.4 * 40 * 20 - 1
            assert bright_box(out["image"][0]) == pytest.approx(out["boxes"][0].tolist(), abs=0.5)
        else:
            seen_dropped = True
            assert visible < 0.4 * 40 * 20
    assert seen_kept and seen_dropped


def test_native_crop_pads_small_images():
    out = RandomNativeCrop(128)(pair_with_box())
    assert tuple(out["image"].shape) == (2, 128, 128)
    assert out["image"][0, 100, 0].item() == 114  # padded below the 80-px image
    assert out["boxes"][0].tolist() == [30, 20, 70, 40]


def test_partwise_jitter_changes_each_part_on_its_own():
    torch.manual_seed(1)
    image = tv_tensors.Image(torch.full((2, 8, 8), 100, dtype=torch.uint8))
    out = PartwiseColorJitter([1, 1], brightness=0.5)(image)
    assert out.shape == image.shape
    assert out[0, 0, 0] != out[1, 0, 0]
    with pytest.raises(ValueError, match="channels"):
        PartwiseColorJitter([3])(image)


def test_full_pipelines_run_and_keep_shapes():
    torch.manual_seed(2)
    detection = detection_train_transform([1, 1], default_augment("detection"), crop=32)
    for _ in range(5):
        out = detection(pair_with_box())
        assert tuple(out["image"].shape) == (2, 32, 32)
        boxes = out["boxes"]
        assert ((boxes[:, 2] - boxes[:, 0]) >= 2).all() and (boxes >= 0).all() and (boxes <= 32).all()
    classification = classification_train_transform((40, 40), [3], AugmentConfig())
    image = tv_tensors.Image(torch.from_numpy(np.zeros((3, 50, 70), np.uint8)))
    assert tuple(classification(image).shape) == (3, 40, 40)


def test_right_angle_rotation_of_an_image_without_boxes_keeps_canvas_and_image_in_step():
    """torchvision does not swap the canvas of an empty box set; a defect-free image must still train."""
    import torch
    from torchvision import tv_tensors

    from station.training.transforms import RandomRotationChoice

    rotate = RandomRotationChoice([90.0])
    out = rotate({
        "image": tv_tensors.Image(torch.zeros(3, 48, 64, dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(48, 64)),
    })
    assert out["image"].shape[-2:] == (64, 48)
    assert out["boxes"].canvas_size == (64, 48)

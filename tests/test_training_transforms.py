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


# --- sample-mixing augmentations (mosaic, mixup, copy-paste) and multi-scale batches ---------


def boxed_square(fill: int, box, side: int = 64, label: int = 1):
    """A grey ``side``-square with one white box."""
    from station.training.transforms import BoxedImage

    image = torch.full((1, side, side), fill, dtype=torch.uint8)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = 255
    return BoxedImage(image, torch.tensor([box], dtype=torch.float32), torch.tensor([label]))


def test_a_whole_canvas_mosaic_halves_each_tile_and_keeps_every_box_on_its_object():
    from station.training.transforms import mosaic

    torch.manual_seed(0)
    tiles = [boxed_square(10 * i, (16, 16, 48, 48), label=i) for i in range(4)]
    out = mosaic(tiles, zoom=(2.0, 2.0))  # the window is the whole 2s canvas: every tile at half size
    assert tuple(out.image.shape) == (1, 64, 64)
    assert sorted(out.labels.tolist()) == [0, 1, 2, 3]
    for box in out.boxes.round().long().tolist():
        x1, y1, x2, y2 = box
        assert (x2 - x1, y2 - y1) == (16, 16) or min(x2 - x1, y2 - y1) >= 0.4 * 16
        assert out.image[0, y1 + 2:y2 - 2, x1 + 2:x2 - 2].float().mean() > 240  # the box is on a white object


def test_a_native_scale_mosaic_drops_the_boxes_mostly_outside_its_window():
    from station.training.transforms import mosaic

    torch.manual_seed(3)
    tiles = [boxed_square(0, (0, 0, 12, 12)) for _ in range(4)]
    for _ in range(20):
        out = mosaic(tiles, zoom=(1.0, 1.0), min_visible=0.4)
        assert ((out.boxes >= 0) & (out.boxes <= 64)).all()
        for x1, y1, x2, y2 in out.boxes.round().long().tolist():
            assert (x2 - x1) * (y2 - y1) >= 0.4 * 144 - 12  # each kept box shows at least 40 % of its object
            assert out.image[0, y1:y2, x1:x2].float().mean() > 200


def test_mosaic_refuses_tiles_of_different_sizes():
    from station.training.transforms import BoxedImage, mosaic

    odd = BoxedImage(torch.zeros(1, 32, 32, dtype=torch.uint8), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="squares of one size"):
        mosaic([boxed_square(0, (0, 0, 8, 8))] * 3 + [odd])


def test_mixup_blends_near_half_and_keeps_both_box_sets():
    from station.training.transforms import mixup

    torch.manual_seed(0)
    out = mixup(boxed_square(0, (0, 0, 8, 8), label=1), boxed_square(200, (30, 30, 40, 40), label=2))
    assert out.boxes.tolist() == [[0, 0, 8, 8], [30, 30, 40, 40]] and out.labels.tolist() == [1, 2]
    assert 80 < float(out.image[0, 20, 20]) < 120  # Beta(32, 32): the weight stays near 0.5


def test_copy_paste_puts_the_donors_object_under_its_new_box_and_hides_no_label():
    from station.training.transforms import copy_paste

    torch.manual_seed(0)
    target = boxed_square(0, (0, 0, 30, 30), label=1)
    donor = boxed_square(0, (40, 40, 56, 56), label=5)
    out = copy_paste(target, donor)
    assert out.labels.tolist() == [1, 5] and out.boxes[0].tolist() == [0, 0, 30, 30]
    x1, y1, x2, y2 = out.boxes[1].long().tolist()
    assert (x2 - x1, y2 - y1) == (16, 16) and bool((out.image[0, y1:y2, x1:x2] == 255).all())
    overlap = max(0, min(x2, 30) - max(x1, 0)) * max(0, min(y2, 30) - max(y1, 0))
    assert overlap < 0.3 * 900


def test_multiscale_sides_are_stride_multiples_in_range_and_repeat_for_a_seed():
    from station.training.transforms import multiscale_side, resize_batch

    def sides(seed):
        return [multiscale_side(224, 0.25, 32, torch.Generator().manual_seed(seed + step)) for step in range(50)]

    assert sides(0) == sides(0) and set(sides(0)) <= {192, 224, 256} and len(set(sides(0))) == 3
    images = torch.zeros(2, 3, 224, 224)
    resized, targets = resize_batch(images, [{"boxes": torch.tensor([[0.0, 0.0, 112.0, 56.0]]),
                                             "labels": torch.tensor([0])}] * 2, 256)
    assert tuple(resized.shape) == (2, 3, 256, 256)
    assert targets[0]["boxes"].tolist() == [[0.0, 0.0, 128.0, 64.0]]


def test_classifier_batch_mixing_mixes_labels_like_the_images_and_repeats_for_a_step():
    from station.training.transforms import ClassifierBatchMixing

    images = torch.stack([torch.full((3, 16, 16), float(value)) for value in range(4)])
    labels = torch.tensor([0, 1, 2, 0])
    cutmix_only = ClassifierBatchMixing(num_classes=3, mixup=0.0, cutmix=1.0, seed=5)
    mixed, targets = cutmix_only(images, labels, step=7)
    assert targets.shape == (4, 3) and torch.allclose(targets.sum(1), torch.ones(4))
    # CutMix pastes a box of the rolled batch: the label weight of the image's own class is its kept area
    for index in range(4):
        kept = (mixed[index] == images[index]).float().mean()
        assert targets[index, labels[index]] >= kept - 1e-6
    again, again_targets = cutmix_only(images, labels, step=7)
    assert torch.equal(again, mixed) and torch.equal(again_targets, targets)
    off = ClassifierBatchMixing(num_classes=3, mixup=0.0, cutmix=0.0, seed=5)
    assert off(images, labels, step=7)[1] is labels
    with pytest.raises(ValueError, match="at most 1"):
        ClassifierBatchMixing(num_classes=3, mixup=0.6, cutmix=0.6, seed=0)

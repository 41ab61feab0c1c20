"""WBAM-FFEM detector: shapes, WBAM math, ATSS assigner, losses, predict() contract, overfitting."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from station.ml.letterbox import boxes_from_letterbox, letterbox
from station.ml.wbam_ffem import (
    CONFIGS,
    INPUT_CHANNELS,
    WBAM,
    WBAMFFEM,
    anchor_grid,
    atss_assign,
    build,
    decode_boxes,
    smooth_max_pool,
)


# --------------------------------------------------------------------------------------------
# Shapes and construction
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("input_mode", sorted(INPUT_CHANNELS))
@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_output_shapes_for_every_config_and_input_mode(config_name: str, input_mode: str) -> None:
    torch.manual_seed(0)
    model = build(config_name, num_classes=4, input_mode=input_mode).eval()
    channels = INPUT_CHANNELS[input_mode]
    assert isinstance(model, WBAMFFEM)
    assert model.in_chans == channels
    assert model.input_mode == input_mode
    assert model.num_classes == 4
    assert model.default_input_size == (channels, 640, 640)
    assert model.config is CONFIGS[config_name]

    captured = {}
    hook = model.get_submodule(model.cam_target_layer).register_forward_hook(
        lambda module, inputs, output: captured.setdefault("cam", output)
    )
    with torch.no_grad():
        outputs = model(torch.randn(2, channels, 64, 96))
    hook.remove()

    expected_cells = []
    for level, stride in enumerate((8, 16, 32)):
        height, width = 64 // stride, 96 // stride
        assert outputs.cls_logits[level].shape == (2, 4, height, width)
        assert outputs.box_regression[level].shape == (2, 4, height, width)
        assert outputs.quality_logits[level].shape == (2, 1, height, width)
        assert outputs.aux_logits[level].shape == (2, 4)
        expected_cells.append(height * width)
    total = sum(expected_cells)
    assert outputs.anchor_points.shape == (total, 2)
    expected_strides = [8.0] * expected_cells[0] + [16.0] * expected_cells[1] + [32.0] * expected_cells[2]
    assert outputs.anchor_strides.tolist() == expected_strides
    assert captured["cam"].shape == (2, model.config.neck_width, 8, 12)
    assert decode_boxes(outputs).shape == (2, total, 4)


def test_stride_four_level_is_available() -> None:
    model = build("wbam-ffem-nano", num_classes=2, out_strides=(4, 8, 16, 32)).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape[-2:]) for m in outputs.cls_logits] == [(16, 16), (8, 8), (4, 4), (2, 2)]


def test_bad_inputs_name_the_problem() -> None:
    model = build("wbam-ffem-nano", input_mode="gray+ref")
    with pytest.raises(ValueError, match=r"\[B, 2, H, W\]"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 2, 64, 70))
    with pytest.raises(ValueError, match="input_mode"):
        build("wbam-ffem-nano", input_mode="bgr")
    with pytest.raises(KeyError, match="wbam-ffem-huge"):
        build("wbam-ffem-huge")
    with pytest.raises(TypeError, match="no_such_field"):
        build("wbam-ffem-nano", no_such_field=1)


def test_overrides_replace_config_fields() -> None:
    model = build("wbam-ffem-nano", use_wbam=False, aux_weight=0.0)
    assert model.config.use_wbam is False and model.config.aux_weight == 0.0
    assert CONFIGS["wbam-ffem-nano"].use_wbam is True
    assert not any(isinstance(m, WBAM) for m in model.modules())


# --------------------------------------------------------------------------------------------
# WBAM (eqs. 1-9)
# --------------------------------------------------------------------------------------------


def test_wbam_blend_follows_equation_8() -> None:
    torch.manual_seed(0)
    wbam = WBAM(8)
    with torch.no_grad():
        wbam.gamma_channel.fill_(3.0)
        wbam.gamma_spatial.fill_(1.0)
    channel_gate = torch.rand(2, 8, 1, 1)
    spatial_gate = torch.rand(2, 1, 5, 5)
    expected = (3.0 * channel_gate + 1.0 * spatial_gate) / (3.0 + 1.0 + wbam.eps)
    torch.testing.assert_close(wbam.blend(channel_gate, spatial_gate), expected)

    features = torch.randn(2, 8, 5, 5)
    blended = wbam.blend(wbam.channel_gate(features), wbam.spatial_gate(features))
    torch.testing.assert_close(wbam(features), features * blended)  # eq. 9

    # a weight driven below zero counts as zero: the blend degenerates to the other gate
    with torch.no_grad():
        wbam.gamma_spatial.fill_(-2.0)
    expected = (channel_gate * 3.0 / (3.0 + wbam.eps)).expand(2, 8, 5, 5)
    torch.testing.assert_close(wbam.blend(channel_gate, spatial_gate), expected)


def test_wbam_gates_match_their_equations() -> None:
    torch.manual_seed(0)
    wbam = WBAM(6)
    features = torch.randn(1, 6, 4, 4)
    pooled = torch.cat([features.mean(1, keepdim=True), features.max(1, keepdim=True).values], 1)
    torch.testing.assert_close(wbam.spatial_gate(features), torch.sigmoid(wbam.spatial_conv(pooled)))
    hidden = torch.relu(wbam.channel_fc1(features.mean((2, 3))))
    assert hidden.shape == (1, 3)  # C -> C/2 -> C
    torch.testing.assert_close(wbam.channel_gate(features), torch.sigmoid(wbam.channel_fc2(hidden))[:, :, None, None])


def test_wbam_gammas_receive_gradients() -> None:
    torch.manual_seed(0)
    wbam = WBAM(8)
    wbam(torch.randn(2, 8, 6, 6)).square().sum().backward()
    for gamma in (wbam.gamma_channel, wbam.gamma_spatial):
        assert gamma.grad is not None and torch.isfinite(gamma.grad) and gamma.grad.abs() > 0


def test_wbam_gammas_in_the_detector_receive_gradients() -> None:
    torch.manual_seed(0)
    model = build("wbam-ffem-nano", num_classes=2)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 30.0, 26.0]]), "labels": torch.tensor([1])}]
    model.loss(model(torch.randn(1, 3, 64, 64)), targets)["loss"].backward()
    gammas = [p for name, p in model.named_parameters() if "gamma" in name]
    assert len(gammas) == 2 * len(model.strides)
    assert all(g.grad is not None and g.grad.abs() > 0 for g in gammas)


def test_smooth_max_pool_lies_between_mean_and_max() -> None:
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 3, 4] = 5.0  # one hot cell, as a small defect gives
    pooled = smooth_max_pool(maps, 10.0)
    assert maps[0, 0].mean() < pooled[0, 0] < 5.0
    # log(mean(exp(10 x))) / 10 = (log(e^50 + 63) - log 64) / 10, and 63 is nothing beside e^50
    torch.testing.assert_close(pooled[0, 0], torch.tensor((50.0 - math.log(64)) / 10))
    assert pooled[0, 1] == 0.0
    torch.testing.assert_close(smooth_max_pool(maps, 1e4)[0, 0], torch.tensor(5.0), atol=1e-3, rtol=0)


# --------------------------------------------------------------------------------------------
# ATSS assigner
# --------------------------------------------------------------------------------------------


def _grid(size: int = 64):
    levels = [(size // s, size // s) for s in (8, 16, 32)]
    return anchor_grid(levels, (8, 16, 32), torch.device("cpu"), torch.float32)


def test_assigner_marks_points_inside_a_box() -> None:
    points, strides = _grid()
    box = torch.tensor([[20.0, 16.0, 44.0, 40.0]])  # 24 px
    assignment = atss_assign(points, strides, box, torch.tensor([2]), num_classes=3)
    positive = assignment.positive
    # its 64 px stride-8 anchors overlap it far better than the coarser levels' (IoU 0.14 against
    # 0.035 and 0.009), so exactly the six stride-8 cell centres inside the box are positive
    expected = [[28.0, 20.0], [28.0, 28.0], [28.0, 36.0], [36.0, 20.0], [36.0, 28.0], [36.0, 36.0]]
    assert sorted(points[positive].tolist()) == expected
    assert (strides[positive] == 8).all()
    assert (assignment.labels[positive] == 2).all() and (assignment.labels[~positive] == 3).all()
    assert (assignment.gt_index[positive] == 0).all() and (assignment.gt_index[~positive] == -1).all()
    torch.testing.assert_close(assignment.boxes[positive], box.expand(6, 4))
    assert (assignment.boxes[~positive] == 0).all()


def test_assigner_sends_a_large_box_to_a_coarse_level() -> None:
    points, strides = _grid(128)
    assignment = atss_assign(points, strides, torch.tensor([[0.0, 0.0, 128.0, 128.0]]), torch.tensor([0]), 1)
    assert assignment.positive.any()
    assert (strides[assignment.positive] >= 16).all()


def test_assigner_gives_a_contested_point_to_the_box_its_anchor_overlaps_most() -> None:
    points, strides = _grid()
    boxes = torch.tensor([[4.0, 4.0, 44.0, 44.0], [20.0, 20.0, 52.0, 52.0]])
    assignment = atss_assign(points, strides, boxes, torch.tensor([0, 1]), num_classes=2)
    # (28, 28) is among both boxes' nearest points and inside both; its 64 px anchor holds each
    # box whole, so the IoUs are 40^2/64^2 = 0.39 and 32^2/64^2 = 0.25: it belongs to the first
    index = int(((points == torch.tensor([28.0, 28.0])).all(1) & (strides == 8)).nonzero())
    assert assignment.gt_index[index] == 0
    for gt in (0, 1):
        owned = points[assignment.gt_index == gt]
        assert len(owned) > 0
        assert ((owned > boxes[gt, :2]) & (owned < boxes[gt, 2:])).all()


def test_assigner_keeps_a_point_for_a_box_nested_in_a_larger_one() -> None:
    points, strides = _grid()
    boxes = torch.tensor([[8.0, 8.0, 40.0, 40.0], [20.0, 20.0, 36.0, 36.0]])
    assignment = atss_assign(points, strides, boxes, torch.tensor([0, 1]), num_classes=2)
    # the small box's only point inside it, (28, 28), overlaps the large box more but stays its own
    assert points[assignment.gt_index == 1].tolist() == [[28.0, 28.0]]
    assert (assignment.gt_index == 0).sum() >= 4


def test_assigner_gives_a_box_between_cell_centres_its_nearest_point() -> None:
    points, strides = _grid()
    tiny = torch.tensor([[13.0, 13.0, 16.0, 17.0]])  # holds no stride-8 cell centre (4, 12, 20, ...)
    assignment = atss_assign(points, strides, tiny, torch.tensor([0]), num_classes=1)
    assert int(assignment.positive.sum()) == 1
    assert points[assignment.positive].tolist() == [[12.0, 12.0]]


def test_assigner_without_boxes_leaves_everything_background() -> None:
    points, strides = _grid()
    assignment = atss_assign(points, strides, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), num_classes=6)
    assert not assignment.positive.any()
    assert (assignment.labels == 6).all() and (assignment.gt_index == -1).all()


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------


def _empty_target() -> dict[str, torch.Tensor]:
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}


def test_loss_on_an_empty_image_is_finite_with_zero_box_loss() -> None:
    torch.manual_seed(0)
    model = build("wbam-ffem-nano", num_classes=6)
    losses = model.loss(model(torch.randn(1, 3, 64, 64)), [_empty_target()])
    assert all(torch.isfinite(value) and value.ndim == 0 for value in losses.values())
    assert losses["loss_box"].item() == 0.0 and losses["loss_quality"].item() == 0.0
    assert losses["loss_cls"].item() > 0 and losses["loss_aux"].item() > 0
    losses["loss"].backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    flat_empty = {"boxes": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    assert model.loss(model(torch.randn(1, 3, 64, 64)), [flat_empty])["loss_box"].item() == 0.0


def test_loss_total_is_main_plus_weighted_auxiliary_losses() -> None:
    torch.manual_seed(0)
    model = build("wbam-ffem-nano", num_classes=3)
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 30.0, 28.0], [40.0, 40.0, 60.0, 50.0]]), "labels": torch.tensor([0, 2])},
        _empty_target(),
    ]
    losses = model.loss(model(torch.randn(2, 3, 64, 64)), targets)
    assert model.config.aux_weight == 0.5
    torch.testing.assert_close(losses["loss"], losses["loss_main"] + 0.5 * losses["loss_aux"])
    torch.testing.assert_close(
        losses["loss_aux"], losses["loss_aux_s8"] + losses["loss_aux_s16"] + losses["loss_aux_s32"]
    )
    torch.testing.assert_close(
        losses["loss_main"], losses["loss_cls"] + 2.0 * losses["loss_box"] + losses["loss_quality"]
    )
    assert losses["loss_box"].item() > 0


def test_loss_rejects_bad_targets() -> None:
    model = build("wbam-ffem-nano", num_classes=2)
    outputs = model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="x2 > x1"):
        model.loss(outputs, [{"boxes": torch.tensor([[10.0, 10.0, 5.0, 20.0]]), "labels": torch.tensor([0])}])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        model.loss(outputs, [{"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]]), "labels": torch.tensor([2])}])
    with pytest.raises(ValueError, match="2 targets for a batch of 1"):
        model.loss(outputs, [_empty_target(), _empty_target()])


# --------------------------------------------------------------------------------------------
# predict()
# --------------------------------------------------------------------------------------------


def test_predict_output_contract() -> None:
    torch.manual_seed(0)
    model = build("wbam-ffem-nano", num_classes=3, input_mode="gray").train()
    images = torch.randn(2, 1, 64, 96)
    detections = model.predict(images, score_thresh=0.0, max_det=20)
    assert model.training, "predict() must restore the training mode"
    assert len(detections) == 2
    for detection in detections:
        assert set(detection) == {"boxes", "labels", "scores"}
        boxes, labels, scores = detection["boxes"], detection["labels"], detection["scores"]
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64 and scores.dtype == torch.float32
        assert boxes.shape == (len(labels), 4) and scores.shape == (len(labels),)
        assert 0 < len(labels) <= 20
        assert (scores[:-1] >= scores[1:]).all()
        assert ((labels >= 0) & (labels < 3)).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 96).all() and (boxes[:, 3] <= 64).all()
        assert (boxes[:, 2:] >= boxes[:, :2]).all()
    assert model.predict(images, score_thresh=1.0)[0]["boxes"].shape == (0, 4)


def test_predict_undoes_the_letterbox() -> None:
    torch.manual_seed(0)
    model = build("wbam-ffem-nano", num_classes=2, input_mode="gray+ref")
    tested = np.random.default_rng(0).integers(0, 255, (50, 150, 2), dtype=np.uint8)  # wide: padded top/bottom
    padded, info = letterbox(tested, 64)
    images = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255
    in_input = model.predict(images, score_thresh=0.0)[0]
    in_original = model.predict(images, score_thresh=0.0, letterbox=[info])[0]
    torch.testing.assert_close(in_original["boxes"], boxes_from_letterbox(in_input["boxes"], info))
    torch.testing.assert_close(in_original["scores"], in_input["scores"])
    assert (in_original["boxes"][:, 2] <= 150).all() and (in_original["boxes"][:, 3] <= 50).all()
    with pytest.raises(ValueError, match="2 letterbox infos for a batch of 1"):
        model.predict(images, letterbox=[info, info])


def test_mixed_precision_keeps_coordinates_and_losses_in_float32() -> None:
    torch.manual_seed(0)
    model = build("wbam-ffem-nano", num_classes=2)
    targets = [{"boxes": torch.tensor([[600.0, 610.0, 630.0, 636.0]]), "labels": torch.tensor([1])}]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(torch.randn(1, 3, 640, 640))
        losses = model.loss(outputs, targets)
        detections = model.predict(torch.randn(1, 3, 640, 640), score_thresh=0.0, max_det=5)
    assert outputs.cls_logits[0].dtype == torch.bfloat16
    assert outputs.anchor_points.dtype == torch.float32 and outputs.anchor_points[-1].tolist() == [624.0, 624.0]
    assert all(value.dtype == torch.float32 and torch.isfinite(value) for value in losses.values())
    assert detections[0]["boxes"].dtype == torch.float32 and detections[0]["scores"].dtype == torch.float32


# --------------------------------------------------------------------------------------------
# The detector learns: overfit eight synthetic tested + template pairs
# --------------------------------------------------------------------------------------------

SYNTH_CLASSES = ("blob", "rectangle", "scratch")


def _synthetic_pair(rng: np.random.Generator, size: int = 128):
    """A template with copper-like traces and a tested copy carrying 1-3 separated defects."""
    template = np.full((size, size), 40, np.uint8)
    for _ in range(3):
        position, width = int(rng.integers(8, size - 8)), int(rng.integers(3, 6))
        if rng.random() < 0.5:
            template[position : position + width, :] = 190
        else:
            template[:, position : position + width] = 190
    tested = template.copy()
    occupied = np.zeros((size, size), bool)
    boxes: list[list[int]] = []
    labels: list[int] = []
    wanted = int(rng.integers(1, 4))
    while len(boxes) < wanted:
        label = int(rng.integers(0, len(SYNTH_CLASSES)))
        mask = np.zeros((size, size), np.uint8)
        cx, cy = (int(v) for v in rng.integers(16, size - 16, 2))
        if label == 0:
            cv2.circle(mask, (cx, cy), int(rng.integers(4, 10)), 255, -1)
        elif label == 1:
            half_w, half_h = (int(v) // 2 for v in rng.integers(8, 22, 2))
            cv2.rectangle(mask, (cx - half_w, cy - half_h), (cx + half_w, cy + half_h), 255, -1)
        else:
            angle, half_length = rng.uniform(0, np.pi), rng.uniform(8, 14)
            dx, dy = half_length * np.cos(angle), half_length * np.sin(angle)
            cv2.line(mask, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 255, 2)
        ys, xs = np.nonzero(mask)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        margin = np.zeros_like(occupied)
        margin[max(box[1] - 3, 0) : box[3] + 3, max(box[0] - 3, 0) : box[2] + 3] = True
        if (margin & occupied).any():
            continue
        occupied |= margin
        tested[mask > 0] = (0, 235, 120)[label]
        boxes.append(box)
        labels.append(label)
    return tested, template, np.array(boxes, np.float32), np.array(labels, np.int64)


def test_overfits_eight_synthetic_images() -> None:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    samples = [_synthetic_pair(rng) for _ in range(8)]
    images = torch.stack([torch.from_numpy(np.stack([tested, template])) for tested, template, _, _ in samples])
    images = (images.float() / 255 - 0.5) / 0.25
    targets = [
        {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)} for _, _, boxes, labels in samples
    ]

    model = build("wbam-ffem-nano", num_classes=len(SYNTH_CLASSES), input_mode="gray+ref")
    steps = 120
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    first_loss = None
    for _ in range(steps):
        losses = model.loss(model(images), targets)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        schedule.step()
        first_loss = first_loss if first_loss is not None else losses["loss"].item()
    assert losses["loss"].item() < 0.2 * first_loss

    detections = model.predict(images)
    for index, (detection, target) in enumerate(zip(detections, targets)):
        for box, label in zip(target["boxes"], target["labels"]):
            same_class = detection["labels"] == label
            best = box_iou(box[None], detection["boxes"][same_class]).max().item() if same_class.any() else 0.0
            assert best >= 0.5, f"image {index}: {SYNTH_CLASSES[label]} at {box.tolist()} found with IoU {best:.2f}"
        found = len(detection["boxes"])
        assert found <= 2 * len(target["boxes"]), f"image {index}: {found} detections"

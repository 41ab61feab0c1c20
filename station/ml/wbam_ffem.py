"""WBAM-FFEM micro-defect detector (Li & Wu, "Micro defect detection method for electronic
components based on blending attention and full-scale feature enhancement"). The paper describes
modules, not a complete detector; how the code reads it and what it fills in (head, ATSS assigner,
deep supervision, reference channels) is in docs/MODELS.md.

Layout: WBAM -> backbone blocks -> FFEM -> head -> assigner / loss -> config rows ->
``WBAMFFEM`` -> ``build``. ``forward()`` returns raw head outputs, ``predict()`` detections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import (
    Conv2dNormActivation,
    batched_nms,
    box_iou,
    complete_box_iou_loss,
    generalized_box_iou_loss,
    sigmoid_focal_loss,
)

from station.ml.letterbox import LetterboxInfo, boxes_from_letterbox

INPUT_CHANNELS: dict[str, int] = {"rgb": 3, "gray": 1, "gray+ref": 2, "rgb+ref": 6}

ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "hardswish": nn.Hardswish}

_CLASS_PRIOR = 0.01  # RetinaNet's initial foreground probability; keeps the first focal losses small
_AUX_POOL_SHARPNESS = 10.0  # r of the auxiliary classifiers' log-sum-exp pooling


# --------------------------------------------------------------------------------------------
# WBAM: weighted blending attention (eqs. 1-9)
# --------------------------------------------------------------------------------------------


class WBAM(nn.Module):
    """Weighted Blending Attention Module: ``F * (g_d*G_d + g_t*G_t) / (g_d + g_t + eps)``.

    Reusable on any ``[B, C, H, W]`` map; output has the input's shape.
    """

    def __init__(self, channels: int, spatial_kernel: int = 7, eps: float = 1e-4) -> None:
        super().__init__()
        hidden = max(channels // 2, 1)
        self.spatial_conv = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)  # eq. 2
        self.channel_fc1 = nn.Linear(channels, hidden)  # eq. 5
        self.channel_fc2 = nn.Linear(hidden, channels)  # eq. 6
        self.gamma_channel = nn.Parameter(torch.ones(()))  # gamma_d
        self.gamma_spatial = nn.Parameter(torch.ones(()))  # gamma_t
        self.eps = eps

    def spatial_gate(self, features: torch.Tensor) -> torch.Tensor:
        """G_t, eqs. 1-3: ``[B, 1, H, W]``."""
        pooled = torch.cat([features.mean(1, keepdim=True), features.amax(1, keepdim=True)], dim=1)  # eq. 1
        return torch.sigmoid(self.spatial_conv(pooled))

    def channel_gate(self, features: torch.Tensor) -> torch.Tensor:
        """G_d, eqs. 4-7: ``[B, C, 1, 1]``."""
        squeezed = features.mean((2, 3))  # eq. 4, [B, C]
        excited = self.channel_fc2(F.relu(self.channel_fc1(squeezed)))
        return torch.sigmoid(excited)[:, :, None, None]

    def blend(self, channel_gate: torch.Tensor, spatial_gate: torch.Tensor) -> torch.Tensor:
        """G_cmf, eq. 8 (broadcasts to ``[B, C, H, W]``)."""
        gamma_d = F.relu(self.gamma_channel)
        gamma_t = F.relu(self.gamma_spatial)
        return (gamma_d * channel_gate + gamma_t * spatial_gate) / (gamma_d + gamma_t + self.eps)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features * self.blend(self.channel_gate(features), self.spatial_gate(features))  # eq. 9


# --------------------------------------------------------------------------------------------
# Backbone blocks
# --------------------------------------------------------------------------------------------


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    stride: int = 1,
    groups: int = 1,
    activation: str = "silu",
) -> Conv2dNormActivation:
    return Conv2dNormActivation(
        in_channels, out_channels, kernel_size, stride, groups=groups, activation_layer=ACTIVATIONS[activation]
    )


class SeparableConv(nn.Sequential):
    """Depthwise kxk then pointwise 1x1, each with BN and activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, activation: str = "silu") -> None:
        super().__init__(
            conv_bn_act(in_channels, in_channels, kernel_size, groups=in_channels, activation=activation),
            conv_bn_act(in_channels, out_channels, 1, activation=activation),
        )


class Bottleneck(nn.Module):
    """Two 3x3 convolutions with a residual connection."""

    def __init__(self, channels: int, activation: str = "silu") -> None:
        super().__init__()
        self.conv1 = conv_bn_act(channels, channels, 3, activation=activation)
        self.conv2 = conv_bn_act(channels, channels, 3, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class CSPBlock(nn.Module):
    """Cross-stage-partial block: half the channels go through ``depth`` bottlenecks, every
    intermediate result is concatenated and merged by a 1x1 convolution (YOLOv8's C2f)."""

    def __init__(self, channels: int, depth: int, activation: str = "silu") -> None:
        super().__init__()
        hidden = channels // 2
        self.split = conv_bn_act(channels, 2 * hidden, 1, activation=activation)
        self.blocks = nn.ModuleList(Bottleneck(hidden, activation) for _ in range(depth))
        self.merge = conv_bn_act((2 + depth) * hidden, channels, 1, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.split(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.merge(torch.cat(parts, dim=1))


class Backbone(nn.Module):
    """Stem (stride 2) and four stages at strides 4, 8, 16, 32: a stride-2 3x3 convolution
    followed by a CSP block of the configured depth (none when the depth is 0)."""

    strides = (4, 8, 16, 32)

    def __init__(
        self,
        in_channels: int,
        stem_channels: int,
        stage_channels: Sequence[int],
        stage_depths: Sequence[int],
        activation: str = "silu",
    ) -> None:
        super().__init__()
        if len(stage_channels) != len(self.strides) or len(stage_depths) != len(self.strides):
            raise ValueError(
                f"need {len(self.strides)} stage channels and depths, got {stage_channels!r} and {stage_depths!r}"
            )
        self.stem = conv_bn_act(in_channels, stem_channels, 3, stride=2, activation=activation)
        stages = []
        previous = stem_channels
        for channels, depth in zip(stage_channels, stage_depths):
            layers: list[nn.Module] = [conv_bn_act(previous, channels, 3, stride=2, activation=activation)]
            if depth > 0:
                layers.append(CSPBlock(channels, depth, activation))
            stages.append(nn.Sequential(*layers))
            previous = channels
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(stage_channels)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """One map per stride in ``self.strides``."""
        x = self.stem(images)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


# --------------------------------------------------------------------------------------------
# FFEM: full-scale feature enhancement (eqs. 10-13)
# --------------------------------------------------------------------------------------------


class MultiScaleExtraction(nn.Module):
    """Eq. 10: parallel 1x1 / 3x3 / 5x5 receptive fields, concatenated and fused to ``width``."""

    def __init__(self, in_channels: int, width: int, activation: str = "silu") -> None:
        super().__init__()
        self.small = conv_bn_act(in_channels, width, 1, activation=activation)
        self.medium = conv_bn_act(width, width, 3, groups=width, activation=activation)
        self.large = conv_bn_act(width, width, 5, groups=width, activation=activation)
        self.fuse = conv_bn_act(3 * width, width, 1, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = self.small(x)
        return self.fuse(torch.cat([small, self.medium(small), self.large(small)], dim=1))


class EnhanceLevel(nn.Module):
    """Eq. 13: WBAM on ``[T_i; B_i]`` then a 1x1 projection back to the neck width."""

    def __init__(self, width: int, use_wbam: bool = True, spatial_kernel: int = 7, activation: str = "silu") -> None:
        super().__init__()
        self.attention = WBAM(2 * width, spatial_kernel) if use_wbam else nn.Identity()
        self.project = conv_bn_act(2 * width, width, 1, activation=activation)

    def forward(self, top_down: torch.Tensor, bottom_up: torch.Tensor) -> torch.Tensor:
        return self.project(self.attention(torch.cat([top_down, bottom_up], dim=1)))


class FFEM(nn.Module):
    """Full-Scale Feature Enhancement Module over pyramid levels ordered fine to coarse."""

    def __init__(
        self,
        in_channels: Sequence[int],
        width: int,
        use_wbam: bool = True,
        spatial_kernel: int = 7,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        levels = len(in_channels)
        self.extract = nn.ModuleList(MultiScaleExtraction(c, width, activation) for c in in_channels)
        self.bottom_up = nn.ModuleList(
            SeparableConv(width if level == 0 else 2 * width, width, 3, activation) for level in range(levels)
        )
        self.enhance = nn.ModuleList(EnhanceLevel(width, use_wbam, spatial_kernel, activation) for _ in range(levels))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        extracted = [extract(x) for extract, x in zip(self.extract, features)]  # eq. 10
        top_down = list(extracted)
        for level in range(len(extracted) - 2, -1, -1):  # eq. 11
            coarser = F.interpolate(top_down[level + 1], size=extracted[level].shape[-2:], mode="nearest")
            top_down[level] = extracted[level] + coarser
        bottom_up: list[torch.Tensor] = []
        for level, fuse in enumerate(self.bottom_up):  # eq. 12
            if level == 0:
                bottom_up.append(fuse(top_down[0]))
            else:
                finer = F.max_pool2d(bottom_up[-1], kernel_size=3, stride=2, padding=1)
                bottom_up.append(fuse(torch.cat([top_down[level], finer], dim=1)))
        return [enhance(t, b) for enhance, t, b in zip(self.enhance, top_down, bottom_up)]  # eq. 13


# --------------------------------------------------------------------------------------------
# Head: decoupled anchor-free detection + deep-supervision classifiers
# --------------------------------------------------------------------------------------------


class DetectorOutputs(NamedTuple):
    """Raw head outputs; per-level lists are ordered fine to coarse like ``anchor_strides``."""

    cls_logits: list[torch.Tensor]  # [B, K, H_l, W_l]
    box_regression: list[torch.Tensor]  # [B, 4, H_l, W_l]; ltrb distance = softplus(raw) * stride
    quality_logits: list[torch.Tensor]  # [B, 1, H_l, W_l]; predicted IoU of the box
    aux_logits: list[torch.Tensor]  # [B, K]; image-level defect presence (eq. 14)
    anchor_points: torch.Tensor  # [A, 2] x, y of every cell centre in input pixels, levels concatenated
    anchor_strides: torch.Tensor  # [A]


def smooth_max_pool(maps: torch.Tensor, sharpness: float) -> torch.Tensor:
    """Log-sum-exp pooling ``[B, K, H, W] -> [B, K]``: ``log(mean(exp(r * x))) / r``, between the
    mean (r -> 0) and the maximum (r -> inf) (Pinheiro & Collobert, CVPR 2015)."""
    flat = maps.flatten(2).float()
    return (torch.logsumexp(sharpness * flat, dim=2) - math.log(flat.shape[2])) / sharpness


class LevelHead(nn.Module):
    """Decoupled head for one level: classification tower, box tower (+ quality), aux classifier."""

    def __init__(self, width: int, num_classes: int, depth: int, activation: str = "silu") -> None:
        super().__init__()
        self.cls_tower = nn.Sequential(*(SeparableConv(width, width, 3, activation) for _ in range(depth)))
        self.box_tower = nn.Sequential(*(SeparableConv(width, width, 3, activation) for _ in range(depth)))
        self.cls_pred = nn.Conv2d(width, num_classes, 1)
        self.box_pred = nn.Conv2d(width, 4, 1)
        self.quality_pred = nn.Conv2d(width, 1, 1)
        self.aux_classifier = nn.Conv2d(width, num_classes, 1)
        prior_bias = -math.log((1 - _CLASS_PRIOR) / _CLASS_PRIOR)
        for conv in (self.cls_pred, self.box_pred, self.quality_pred, self.aux_classifier):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.cls_pred.bias, prior_bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        cls_features = self.cls_tower(features)
        box_features = self.box_tower(features)
        aux = smooth_max_pool(self.aux_classifier(features), _AUX_POOL_SHARPNESS)  # [B, K]
        return self.cls_pred(cls_features), self.box_pred(box_features), self.quality_pred(box_features), aux


def anchor_grid(
    feature_sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres ``[A, 2]`` (x, y, row-major per level) and their strides ``[A]``."""
    points, point_strides = [], []
    for (height, width), stride in zip(feature_sizes, strides):
        ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) * stride
        xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))
        point_strides.append(torch.full((height * width,), float(stride), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(point_strides)


def flatten_levels(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-level ``[B, C, H_l, W_l]`` maps -> float32 ``[B, A, C]`` in ``anchor_grid`` order
    (float32 also under autocast: losses and box coordinates need it)."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1).float()


def decode_boxes(outputs: DetectorOutputs) -> torch.Tensor:
    """x1y1x2y2 boxes ``[B, A, 4]`` in input pixels."""
    distances = F.softplus(flatten_levels(outputs.box_regression)) * outputs.anchor_strides[None, :, None]
    points = outputs.anchor_points[None]
    return torch.cat([points - distances[..., :2], points + distances[..., 2:]], dim=-1)


# --------------------------------------------------------------------------------------------
# Assigner (ATSS) and loss
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """Targets for every anchor point of one image."""

    positive: torch.Tensor  # [A] bool
    gt_index: torch.Tensor  # [A] int64, -1 for background
    labels: torch.Tensor  # [A] int64, num_classes for background
    boxes: torch.Tensor  # [A, 4] the assigned ground-truth box (zeros for background)


def atss_assign(
    anchor_points: torch.Tensor,
    anchor_strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    num_classes: int,
    topk: int = 9,
    anchor_scale: float = 8.0,
) -> Assignment:
    """Adaptive Training Sample Selection for one image.

    Every point stands for a square anchor of side ``anchor_scale * stride``. For each ground
    truth the ``topk`` points nearest its centre are taken on every level; those whose anchor IoU
    reaches the mean + standard deviation of the candidates' IoUs and whose centre lies inside the
    box become positive. A box left without any (one smaller than a cell) gets the candidate whose
    anchor overlaps it most -- one on the finest level -- nearest its centre first. A point claimed
    by several boxes goes to the one its anchor overlaps most, except that a box which would lose
    all its points that way (a small defect inside a large one) keeps its best one.
    """
    num_points = anchor_points.shape[0]
    device = anchor_points.device
    background = Assignment(
        positive=torch.zeros(num_points, dtype=torch.bool, device=device),
        gt_index=torch.full((num_points,), -1, dtype=torch.long, device=device),
        labels=torch.full((num_points,), num_classes, dtype=torch.long, device=device),
        boxes=torch.zeros(num_points, 4, dtype=anchor_points.dtype, device=device),
    )
    num_gt = gt_boxes.shape[0]
    if num_gt == 0:
        return background

    half = anchor_scale * anchor_strides[:, None] / 2
    anchor_boxes = torch.cat([anchor_points - half, anchor_points + half], dim=1)
    ious = box_iou(gt_boxes, anchor_boxes)  # [G, A]
    gt_centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    distances = torch.cdist(gt_centres, anchor_points)  # [G, A]

    candidates = []
    for stride in torch.unique(anchor_strides):
        level_index = torch.nonzero(anchor_strides == stride).squeeze(1)
        k = min(topk, level_index.numel())
        nearest = distances[:, level_index].topk(k, dim=1, largest=False).indices
        candidates.append(level_index[nearest])
    candidates = torch.cat(candidates, dim=1)  # [G, K']

    candidate_ious = ious.gather(1, candidates)
    threshold = candidate_ious.mean(1, keepdim=True) + candidate_ious.std(1, keepdim=True).nan_to_num(0.0)
    candidate_points = anchor_points[candidates]  # [G, K', 2]
    inside = (
        (candidate_points[..., 0] > gt_boxes[:, None, 0])
        & (candidate_points[..., 0] < gt_boxes[:, None, 2])
        & (candidate_points[..., 1] > gt_boxes[:, None, 1])
        & (candidate_points[..., 1] < gt_boxes[:, None, 3])
    )
    selected = torch.zeros_like(ious, dtype=torch.bool)
    selected.scatter_(1, candidates, (candidate_ious >= threshold) & inside)

    unmatched = ~selected.any(1)
    if unmatched.any():
        # candidates are nearest-first per level and argmax takes the first maximum
        best_candidate = candidate_ious[unmatched].argmax(1, keepdim=True)
        fallback_point = candidates[unmatched].gather(1, best_candidate).squeeze(1)
        selected[unmatched.nonzero().squeeze(1), fallback_point] = True

    # a point claimed by several boxes goes to the one with the highest anchor IoU
    claim = torch.where(selected, ious, torch.full_like(ious, -1.0))
    best_claim, gt_index = claim.max(0)
    gt_index = torch.where(best_claim >= 0, gt_index, torch.full_like(gt_index, -1))
    # a box that lost every point that way (a small defect inside a large one) takes back its best
    orphans = torch.ones(num_gt, dtype=torch.bool, device=device)
    orphans[gt_index[gt_index >= 0]] = False
    if orphans.any():
        gt_index[claim[orphans].argmax(1)] = orphans.nonzero().squeeze(1)
    positive = gt_index >= 0
    labels = torch.where(positive, gt_labels[gt_index.clamp(min=0)], background.labels)
    boxes = torch.where(positive[:, None], gt_boxes[gt_index.clamp(min=0)], background.boxes)
    return Assignment(positive=positive, gt_index=gt_index, labels=labels, boxes=boxes)


def paired_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of ``boxes1[i]`` with ``boxes2[i]`` (torchvision's ``box_iou`` is all-pairs)."""
    top_left = torch.maximum(boxes1[:, :2], boxes2[:, :2])
    bottom_right = torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(1)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).clamp(min=0).prod(1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2]).clamp(min=0).prod(1)
    return intersection / (area1 + area2 - intersection).clamp(min=1e-9)


def _check_targets(targets: Sequence[dict[str, torch.Tensor]], batch_size: int, num_classes: int) -> None:
    if len(targets) != batch_size:
        raise ValueError(f"got {len(targets)} targets for a batch of {batch_size} images")
    for index, target in enumerate(targets):
        boxes, labels = target["boxes"], target["labels"].reshape(-1)
        if boxes.numel() == 0:  # "no defects" may come as shape [0] too
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:1]:
            raise ValueError(
                f"target {index}: boxes must be [N, 4] and labels [N], "
                f"got {tuple(boxes.shape)} and {tuple(labels.shape)}"
            )
        degenerate = (boxes[:, 2:] <= boxes[:, :2]).any(1)
        if degenerate.any():
            raise ValueError(f"target {index}: boxes need x2 > x1 and y2 > y1, got {boxes[degenerate].tolist()}")
        bad_labels = (labels < 0) | (labels >= num_classes)
        if bad_labels.any():
            raise ValueError(
                f"target {index}: labels must lie in [0, {num_classes}), got {labels[bad_labels].tolist()}"
            )


def detection_loss(
    outputs: DetectorOutputs, targets: Sequence[dict[str, torch.Tensor]], config: WBAMFFEMConfig
) -> dict[str, torch.Tensor]:
    """``L_total = L_main + lambda * sum_k L_aux^k`` (eqs. 14-15) for one batch.

    ``L_main = L_cls + box_weight * L_box + quality_weight * L_quality``, each summed over the
    batch and divided by the number of positive points (at least 1), so a defect-free image gives
    a finite classification loss and zero box and quality losses.
    """
    cls_logits = flatten_levels(outputs.cls_logits)  # [B, A, K]
    quality_logits = flatten_levels(outputs.quality_logits).squeeze(-1)  # [B, A]
    pred_boxes = decode_boxes(outputs)  # [B, A, 4]
    batch_size, _, num_classes = cls_logits.shape
    _check_targets(targets, batch_size, num_classes)

    cls_targets = torch.zeros_like(cls_logits)
    positive_pred, positive_target, positive_quality = [], [], []
    presence = torch.zeros(batch_size, num_classes, dtype=cls_logits.dtype, device=cls_logits.device)
    for index, target in enumerate(targets):
        gt_boxes = target["boxes"].to(device=cls_logits.device, dtype=cls_logits.dtype).reshape(-1, 4)
        gt_labels = target["labels"].to(device=cls_logits.device, dtype=torch.long).reshape(-1)
        assignment = atss_assign(
            outputs.anchor_points,
            outputs.anchor_strides,
            gt_boxes,
            gt_labels,
            num_classes,
            topk=config.atss_topk,
            anchor_scale=config.anchor_scale,
        )
        positive = assignment.positive
        cls_targets[index, positive, assignment.labels[positive]] = 1.0
        positive_pred.append(pred_boxes[index, positive])
        positive_target.append(assignment.boxes[positive])
        positive_quality.append(quality_logits[index, positive])
        presence[index, gt_labels] = 1.0

    pred_pos = torch.cat(positive_pred)
    target_pos = torch.cat(positive_target)
    quality_pos = torch.cat(positive_quality)
    normalizer = max(pred_pos.shape[0], 1)

    loss_cls = (
        sigmoid_focal_loss(cls_logits, cls_targets, alpha=config.focal_alpha, gamma=config.focal_gamma, reduction="sum")
        / normalizer
    )
    if pred_pos.shape[0] > 0:
        box_loss_fn = complete_box_iou_loss if config.box_loss == "ciou" else generalized_box_iou_loss
        loss_box = box_loss_fn(pred_pos, target_pos, reduction="sum") / normalizer
        iou_target = paired_iou(pred_pos.detach(), target_pos)
        loss_quality = F.binary_cross_entropy_with_logits(quality_pos, iou_target, reduction="sum") / normalizer
    else:  # zero, but still connected to the graph
        loss_box = pred_boxes.sum() * 0.0
        loss_quality = quality_logits.sum() * 0.0

    loss_main = loss_cls + config.box_weight * loss_box + config.quality_weight * loss_quality
    aux_losses = [F.binary_cross_entropy_with_logits(aux.float(), presence) for aux in outputs.aux_logits]  # eq. 14
    loss_aux = torch.stack(aux_losses).sum()
    losses = {
        "loss": loss_main + config.aux_weight * loss_aux,  # eq. 15
        "loss_main": loss_main,
        "loss_cls": loss_cls,
        "loss_box": loss_box,
        "loss_quality": loss_quality,
        "loss_aux": loss_aux,
    }
    for stride, aux in zip(config.out_strides, aux_losses):
        losses[f"loss_aux_s{stride}"] = aux
    return losses


# --------------------------------------------------------------------------------------------
# Config rows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WBAMFFEMConfig:
    """One row of the model family. Fields after ``head_depth`` are ablation and training knobs
    that ``build(..., **overrides)`` may change."""

    name: str
    stem_channels: int
    stage_channels: tuple[int, int, int, int]  # strides 4, 8, 16, 32
    stage_depths: tuple[int, int, int, int]
    neck_width: int
    head_depth: int
    out_strides: tuple[int, ...] = (8, 16, 32)  # a subset of (4, 8, 16, 32), fine to coarse
    activation: str = "silu"
    use_wbam: bool = True  # False: FFEM without attention (ablation)
    wbam_spatial_kernel: int = 7
    aux_weight: float = 0.5  # lambda, eq. 15; 0 disables deep supervision
    atss_topk: int = 9
    anchor_scale: float = 8.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_loss: str = "ciou"  # "ciou" or "giou"
    box_weight: float = 2.0
    quality_weight: float = 1.0
    pre_nms_topk: int = 1000

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.box_loss not in ("ciou", "giou"):
            raise ValueError(f"box_loss must be 'ciou' or 'giou', got {self.box_loss!r}")
        if not self.out_strides or any(s not in Backbone.strides for s in self.out_strides):
            raise ValueError(f"out_strides must be a non-empty subset of {Backbone.strides}, got {self.out_strides!r}")
        if list(self.out_strides) != sorted(set(self.out_strides)):
            raise ValueError(f"out_strides must be increasing, got {self.out_strides!r}")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight}")


CONFIGS: dict[str, WBAMFFEMConfig] = {
    row.name: row
    for row in (
        WBAMFFEMConfig(
            name="wbam-ffem-nano",
            stem_channels=16,
            stage_channels=(32, 64, 128, 256),
            stage_depths=(0, 1, 1, 1),
            neck_width=48,
            head_depth=1,
        ),
        WBAMFFEMConfig(
            name="wbam-ffem-small",
            stem_channels=24,
            stage_channels=(48, 96, 192, 384),
            stage_depths=(1, 1, 2, 1),
            neck_width=80,
            head_depth=2,
        ),
        WBAMFFEMConfig(
            name="wbam-ffem-medium",
            stem_channels=32,
            stage_channels=(64, 128, 256, 512),
            stage_depths=(1, 2, 3, 1),
            neck_width=128,
            head_depth=2,
        ),
    )
}


def dense_detections(outputs: DetectorOutputs, image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every anchor's class scores ``[B, A, K]`` (``p_cls * p_quality``) and its x1y1x2y2 box
    ``[B, A, 4]`` clipped to the ``(height, width)`` input: the part of ``predict`` before the
    data-dependent selection, which is also what the ONNX export computes."""
    height, width = image_size
    cls_prob = flatten_levels(outputs.cls_logits).sigmoid()  # [B, A, K]
    quality_prob = flatten_levels(outputs.quality_logits).sigmoid()  # [B, A, 1]
    boxes = decode_boxes(outputs)
    boxes = torch.stack(
        [boxes[..., 0].clamp(0, width), boxes[..., 1].clamp(0, height),
         boxes[..., 2].clamp(0, width), boxes[..., 3].clamp(0, height)], dim=-1
    )
    return cls_prob * quality_prob, boxes


def select_detections(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    score_thresh: float,
    nms_iou: float,
    max_det: int,
    pre_nms_topk: int,
    letterbox: Sequence[LetterboxInfo] | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Score threshold -> top ``pre_nms_topk`` -> class-wise NMS -> ``max_det`` best -> boxes
    mapped back through ``letterbox[i]``; ``scores`` ``[B, A, K]``, ``boxes`` ``[B, A, 4]``."""
    num_classes = scores.shape[-1]
    detections = []
    for index in range(scores.shape[0]):
        image_scores = scores[index].flatten()  # [A*K], anchor-major
        candidates = torch.nonzero(image_scores > score_thresh).squeeze(1)
        candidate_scores = image_scores[candidates]
        if candidates.numel() > pre_nms_topk:
            candidate_scores, order = candidate_scores.topk(pre_nms_topk)
            candidates = candidates[order]
        anchor_index = candidates // num_classes
        labels = candidates % num_classes
        image_boxes = boxes[index, anchor_index]
        keep = batched_nms(image_boxes, candidate_scores, labels, nms_iou)[:max_det]
        image_boxes, labels, candidate_scores = image_boxes[keep], labels[keep], candidate_scores[keep]
        if letterbox is not None:
            image_boxes = boxes_from_letterbox(image_boxes, letterbox[index])
        detections.append({"boxes": image_boxes, "labels": labels, "scores": candidate_scores})
    return detections


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


class WBAMFFEM(nn.Module):
    """Backbone -> FFEM (per-level WBAM) -> decoupled anchor-free head with deep supervision.

    ``forward(images)`` returns raw ``DetectorOutputs``; ``loss(outputs, targets)`` the training
    losses; ``predict(images, ...)`` final detections. ``images`` are normalised float
    ``[B, in_chans, H, W]`` with H and W multiples of ``max_stride``.
    """

    def __init__(self, config: WBAMFFEMConfig, num_classes: int = 6, input_mode: str = "rgb") -> None:
        super().__init__()
        if input_mode not in INPUT_CHANNELS:
            raise ValueError(f"input_mode must be one of {sorted(INPUT_CHANNELS)}, got {input_mode!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.config = config
        self.num_classes = num_classes
        self.input_mode = input_mode
        self.in_chans = INPUT_CHANNELS[input_mode]
        self.default_input_size = (self.in_chans, 640, 640)
        self.strides = tuple(config.out_strides)
        self.max_stride = Backbone.strides[-1]
        # the finest enhanced level: the sharpest map for defects of a few cells
        self.cam_target_layer = "ffem.enhance.0"

        self.backbone = Backbone(
            self.in_chans, config.stem_channels, config.stage_channels, config.stage_depths, config.activation
        )
        self._level_index = [Backbone.strides.index(s) for s in self.strides]
        self.ffem = FFEM(
            [config.stage_channels[i] for i in self._level_index],
            config.neck_width,
            config.use_wbam,
            config.wbam_spatial_kernel,
            config.activation,
        )
        self.heads = nn.ModuleList(
            LevelHead(config.neck_width, num_classes, config.head_depth, config.activation) for _ in self.strides
        )

    def _check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise ValueError(
                f"{self.config.name} ({self.input_mode}) expects images [B, {self.in_chans}, H, W], "
                f"got {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        if height % self.max_stride or width % self.max_stride:
            raise ValueError(f"image height and width must be multiples of {self.max_stride}, got {height}x{width}")

    def forward_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Enhanced pyramid maps ``[B, neck_width, H/s, W/s]`` for each stride in ``self.strides``."""
        backbone_maps = self.backbone(images)
        return self.ffem([backbone_maps[i] for i in self._level_index])

    def forward_head(self, features: Sequence[torch.Tensor]) -> DetectorOutputs:
        cls_logits, box_regression, quality_logits, aux_logits = [], [], [], []
        for head, level_features in zip(self.heads, features):
            cls, box, quality, aux = head(level_features)
            cls_logits.append(cls)
            box_regression.append(box)
            quality_logits.append(quality)
            aux_logits.append(aux)
        # float32 whatever autocast does to the features: bf16 cannot hold 636.0 exactly
        points, point_strides = anchor_grid(
            [tuple(f.shape[-2:]) for f in features], self.strides, features[0].device, torch.float32
        )
        return DetectorOutputs(cls_logits, box_regression, quality_logits, aux_logits, points, point_strides)

    def forward(self, images: torch.Tensor) -> DetectorOutputs:
        self._check_images(images)
        return self.forward_head(self.forward_features(images))

    def loss(self, outputs: DetectorOutputs, targets: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Training losses (see ``detection_loss``); ``targets[i]`` holds ``boxes`` [N, 4] x1y1x2y2 in
        input pixels and ``labels`` [N] in ``[0, num_classes)``; N may be 0."""
        return detection_loss(outputs, targets, self.config)

    @torch.inference_mode()
    def predict(
        self,
        images: torch.Tensor,
        score_thresh: float = 0.25,
        nms_iou: float = 0.5,
        max_det: int = 300,
        letterbox: Sequence[LetterboxInfo] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Detections per image: ``{"boxes": [M, 4] x1y1x2y2, "labels": [M] int64, "scores": [M]}``.

        Score threshold -> top ``config.pre_nms_topk`` -> class-wise NMS -> ``max_det`` best ->
        boxes mapped back to the original image through ``letterbox[i]`` (else left in input
        pixels, clipped to the input). Runs in eval mode and restores the previous mode.
        """
        if letterbox is not None and len(letterbox) != images.shape[0]:
            raise ValueError(f"got {len(letterbox)} letterbox infos for a batch of {images.shape[0]} images")
        was_training = self.training
        self.eval()
        try:
            outputs = self(images)
        finally:
            self.train(was_training)

        scores, boxes = dense_detections(outputs, tuple(images.shape[-2:]))
        return select_detections(
            scores, boxes, score_thresh, nms_iou, max_det, self.config.pre_nms_topk, letterbox
        )


def build(config_name: str, num_classes: int = 6, input_mode: str = "rgb", **overrides: object) -> WBAMFFEM:
    """Build ``config_name`` from ``CONFIGS``; ``overrides`` replace fields of its row
    (e.g. ``use_wbam=False``, ``aux_weight=0.0`` for the paper's ablations)."""
    if config_name not in CONFIGS:
        raise KeyError(f"unknown WBAM-FFEM config {config_name!r}; known: {', '.join(CONFIGS)}")
    config = CONFIGS[config_name]
    if overrides:
        known = {f.name for f in fields(WBAMFFEMConfig)} - {"name"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown WBAM-FFEM config fields {unknown}; known: {sorted(known)}")
        config = replace(config, **overrides)
    return WBAMFFEM(config, num_classes=num_classes, input_mode=input_mode)

"""torchvision networks as peers of CTI and WBAM-FFEM, built with the registry's convention.

Every peer starts from random weights (``weights=None``, ``weights_backbone=None``: nothing is
downloaded) and takes the same build arguments as our models, so that ``station train`` trains
them with the same recipe and model cards load them the same way:

* classifiers: ``build(name, num_classes=K, in_chans=C)``; they carry ``default_input_size``,
  ``in_chans`` and ``cam_target_layer`` (the last feature stage, for Grad-CAM);
* detectors: ``build(name, num_classes=K, input_mode="rgb"|"gray"|"gray+ref"|"rgb+ref")``,
  wrapped in :class:`TorchvisionDetector`, which speaks WBAM-FFEM's interface (``forward`` /
  ``loss`` / ``predict``, boxes in input pixels).

A first convolution for other than 3 input channels is rebuilt with the requested count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from torchvision import models
from torchvision.models import detection

from station.ml.letterbox import LetterboxInfo, boxes_from_letterbox

INPUT_CHANNELS: dict[str, int] = {"rgb": 3, "gray": 1, "gray+ref": 2, "rgb+ref": 6}


@dataclass(frozen=True)
class PeerConfig:
    task: str  # "classification" | "detection"
    builder: Callable[..., nn.Module]
    cam_target_layer: str | None = None
    # detectors: the torchvision head counts a background class
    background_class: bool = False


CONFIGS: dict[str, PeerConfig] = {
    "resnet18": PeerConfig("classification", models.resnet18, "layer4"),
    "resnet50": PeerConfig("classification", models.resnet50, "layer4"),
    "convnext-t": PeerConfig("classification", models.convnext_tiny, "features.7"),
    "swin-t": PeerConfig("classification", models.swin_t, "permute"),  # [B, C, H, W] after the last stage's norm
    "efficientnet-b0": PeerConfig("classification", models.efficientnet_b0, "features.8"),
    "mobilenetv3-l": PeerConfig("classification", models.mobilenet_v3_large, "features.16"),
    "fasterrcnn-mobilenet-v3-fpn": PeerConfig("detection", detection.fasterrcnn_mobilenet_v3_large_fpn,
                                              background_class=True),
    "fcos-resnet50-fpn": PeerConfig("detection", detection.fcos_resnet50_fpn),
}
CLASSIFIERS = tuple(name for name, config in CONFIGS.items() if config.task == "classification")
DETECTORS = tuple(name for name, config in CONFIGS.items() if config.task == "detection")


def replace_first_conv(model: nn.Module, in_chans: int) -> None:
    """Swap the first 3-channel convolution for one taking ``in_chans`` channels (fresh weights)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            replacement = nn.Conv2d(in_chans, module.out_channels, module.kernel_size, module.stride, module.padding,
                                    module.dilation, module.groups, module.bias is not None, module.padding_mode)
            setattr(parent, child, replacement)
            return
    raise ValueError(f"{type(model).__name__} has no 3-channel convolution to replace")


class DeferredImages(NamedTuple):
    """What a torchvision detector's ``forward`` gives back here: its images. torchvision computes
    the losses inside the forward pass that sees the targets, so ``loss`` runs it then."""

    images: torch.Tensor


class TorchvisionDetector(nn.Module):
    """A torchvision detector behind WBAM-FFEM's interface.

    Inputs are normalised ``[B, C, H, W]`` batches of equal size (letterboxed by the caller);
    torchvision's own resize is pinned to the input size so that both detectors see the same
    pixels. Labels are ``0..K-1`` outside (a background class is added inside where needed).
    """

    max_stride = 32

    def __init__(self, detector: nn.Module, num_classes: int, input_mode: str, background_class: bool) -> None:
        super().__init__()
        self.detector = detector
        self.num_classes = num_classes
        self.input_mode = input_mode
        self.in_chans = INPUT_CHANNELS[input_mode]
        self.default_input_size = (self.in_chans, 640, 640)
        self.cam_target_layer: str | None = None
        self._label_offset = 1 if background_class else 0

    def _pin_size(self, images: torch.Tensor) -> None:
        height, width = images.shape[-2:]
        self.detector.transform.min_size = (min(height, width),)
        self.detector.transform.max_size = max(height, width)

    def forward(self, images: torch.Tensor) -> DeferredImages:
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise ValueError(f"expected images [B, {self.in_chans}, H, W], got {tuple(images.shape)}")
        return DeferredImages(images)

    def loss(self, outputs: DeferredImages, targets: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        self._pin_size(outputs.images)
        shifted = [{"boxes": t["boxes"].float(), "labels": t["labels"].long() + self._label_offset} for t in targets]
        was_training = self.detector.training
        self.detector.train()
        try:
            losses = self.detector(list(outputs.images), shifted)
        finally:
            self.detector.train(was_training)
        return dict(losses) | {"loss": sum(losses.values())}

    def _set_postprocess(self, score_thresh: float, nms_iou: float, max_det: int) -> None:
        target: Any = getattr(self.detector, "roi_heads", self.detector)
        target.score_thresh, target.nms_thresh, target.detections_per_img = score_thresh, nms_iou, max_det

    @torch.inference_mode()
    def predict(
        self,
        images: torch.Tensor,
        score_thresh: float = 0.25,
        nms_iou: float = 0.5,
        max_det: int = 300,
        letterbox: Sequence[LetterboxInfo] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        was_training = self.training
        self.eval()
        self._pin_size(images)
        self._set_postprocess(score_thresh, nms_iou, max_det)
        try:
            found = self.detector(list(images))
        finally:
            self.train(was_training)
        detections = []
        for index, item in enumerate(found):
            boxes = item["boxes"]
            if letterbox is not None:
                boxes = boxes_from_letterbox(boxes, letterbox[index])
            detections.append({"boxes": boxes, "labels": item["labels"] - self._label_offset, "scores": item["scores"]})
        return detections


def build(config_name: str, num_classes: int = 3, in_chans: int = 3, input_mode: str = "rgb",
          **overrides: Any) -> nn.Module:
    """Build peer ``config_name`` with random weights; ``overrides`` go to the torchvision builder."""
    if config_name not in CONFIGS:
        raise KeyError(f"unknown torchvision peer {config_name!r}; known: {', '.join(CONFIGS)}")
    config = CONFIGS[config_name]
    if config.task == "classification":
        model = config.builder(weights=None, num_classes=num_classes, **overrides)
        if in_chans != 3:
            replace_first_conv(model, in_chans)
        model.in_chans = in_chans
        model.default_input_size = (in_chans, 224, 224)
        model.cam_target_layer = config.cam_target_layer
        return model
    if input_mode not in INPUT_CHANNELS:
        raise ValueError(f"input_mode must be one of {sorted(INPUT_CHANNELS)}, got {input_mode!r}")
    channels = INPUT_CHANNELS[input_mode]
    mean = [0.485, 0.456, 0.406] if channels == 3 else [0.45] * channels
    std = [0.229, 0.224, 0.225] if channels == 3 else [0.225] * channels
    detector = config.builder(weights=None, weights_backbone=None,
                              num_classes=num_classes + (1 if config.background_class else 0),
                              image_mean=mean, image_std=std, **overrides)
    if channels != 3:
        replace_first_conv(detector, channels)
    return TorchvisionDetector(detector, num_classes, input_mode, config.background_class)

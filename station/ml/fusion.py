"""Inference-time folding of batch normalisation into the convolution before it (as YOLO's
``fuse()``): one convolution instead of a convolution and a normalisation, the same function
up to float rounding. Only for a model in eval mode, whose normalisation statistics are fixed."""

from __future__ import annotations

import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(model: nn.Module) -> int:
    """Fold each ``BatchNorm2d`` that directly follows a ``Conv2d`` in an ``nn.Sequential`` (where the
    data surely flows from one to the other) into that convolution; the normalisation becomes an
    ``Identity``, so module names (Grad-CAM and familiarity hooks) stay. Returns how many were folded."""
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode: training updates the statistics it folds")
    folded = 0
    for parent in model.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = parent._modules[first], parent._modules[second]
            if isinstance(conv, nn.Conv2d) and type(norm) is nn.BatchNorm2d and norm.track_running_stats:
                fused = fuse_conv_bn_eval(conv, norm)
                fused.requires_grad_(conv.weight.requires_grad)
                parent._modules[first], parent._modules[second] = fused, nn.Identity()
                folded += 1
    return folded

"""ONNX Runtime as the engine's CPU arithmetic for inference without attention maps.

The engine keeps its torch models (cards, approvals, Grad-CAM); with ``backend="onnxruntime"``
each one is also exported once to ``<cache>/onnx/<weights sha256>-<name>.onnx`` and its
ONNX Runtime runner does the forward passes of ``run_batch`` when no maps are asked for.
Preprocessing, temperature, views, thresholds and the detection selection stay the engine's:
only the network's arithmetic changes (``docs/RESULTS.md``: 1.5-3.9x faster on the CPU,
logits within 1e-5).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from station.inference.loading import LoadedModel
from station.ml.onnx_export import export_graph
from station.ml.onnx_runtime import OnnxClassifier, OnnxDetector, runner_for

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def onnx_unavailable_reason(device: str, want_attention: bool) -> str | None:
    """Why ONNX Runtime cannot do a run's arithmetic (None: it can): it is the CPU backend of
    runs without attention maps."""
    if want_attention:
        return "ONNX Runtime is used only without attention maps (the maps need torch's gradients)"
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return "the station runs on CUDA; ONNX Runtime is its CPU backend"
    if not onnxruntime_available():
        return "onnxruntime is not installed in this station"
    return None


def onnx_runner(loaded: LoadedModel, cache: Path) -> OnnxClassifier | OnnxDetector:
    """``loaded``'s runner, exporting its graph into ``cache`` first when it is not there."""
    card = loaded.card
    path = cache / f"{card.weights_sha256[:16]}-{card.name}.onnx"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        log.info("exporting %s to %s for ONNX Runtime", card.name, path)
        try:
            export_graph(loaded.model, card, temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    pre_nms_topk = loaded.model.config.pre_nms_topk if card.task == "detection" else None
    return runner_for(path, card, pre_nms_topk, threads=torch.get_num_threads())

"""ONNX Runtime as the engine's CPU arithmetic.

The engine keeps its torch models (cards, approvals, Grad-CAM); with ``backend="onnxruntime"``
each one is also exported once to ``<cache>/onnx/<weights sha256>-<name>-taps<hash>.onnx`` and
its ONNX Runtime runner does the forward passes of ``run_batch``: every detector pass (its
EigenCAM map from the tapped layer) and the classifier's passes when no Grad-CAM is asked for.
The familiarity features come from taps too, so no torch pass is added for them.
Preprocessing, temperature, views, thresholds and the detection selection stay the engine's:
only the network's arithmetic changes (``docs/RESULTS.md``: 1.5-3.9x faster on the CPU,
logits within 1e-5).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import torch

from station.inference.loading import LoadedModel
from station.ml.onnx_export import export_graph
from station.ml.onnx_runtime import OnnxClassifier, OnnxDetector, runner_for

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
CHOICES = ("auto", *BACKENDS)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``backend`` with "auto" made definite: ONNX Runtime on the CPU when it is installed, else torch."""
    if backend not in CHOICES:
        raise ValueError(f"backend must be one of {CHOICES}, got {backend!r}")
    if backend != "auto":
        return backend
    return "onnxruntime" if device.type == "cpu" and onnxruntime_available() else "torch"


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def onnx_unavailable_reason(device: str) -> str | None:
    """Why ONNX Runtime cannot do a run's arithmetic (None: it can): it is the CPU backend."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return "the station runs on CUDA; ONNX Runtime is its CPU backend"
    if not onnxruntime_available():
        return "onnxruntime is not installed in this station"
    return None


def engine_taps(loaded: LoadedModel) -> tuple[str, ...]:
    """The layers the engine reads besides the outputs: a detector's EigenCAM layer (EigenCAM
    needs no gradients) and the familiarity layers; a classifier's Grad-CAM stays torch's."""
    card = loaded.card
    taps = []
    if card.task == "detection" and getattr(loaded.model, "cam_target_layer", None):
        taps.append(loaded.model.cam_target_layer)
    if card.familiarity is not None:
        taps += [layer for layer in card.familiarity.layers if layer not in taps]
    return tuple(taps)


def onnx_runner(loaded: LoadedModel, cache: Path) -> OnnxClassifier | OnnxDetector:
    """``loaded``'s runner with the engine's taps, exporting its graph into ``cache`` first when
    it is not there (the file name holds the weights' and the taps' hashes)."""
    card = loaded.card
    taps = engine_taps(loaded)
    tapped = f"-taps{hashlib.sha256(json.dumps(taps).encode()).hexdigest()[:8]}" if taps else ""
    path = cache / f"{card.weights_sha256[:16]}-{card.name}{tapped}.onnx"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # engines on two threads
        log.info("exporting %s to %s for ONNX Runtime", card.name, path)
        try:
            export_graph(loaded.model, card, temporary, taps=taps)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    pre_nms_topk = loaded.model.config.pre_nms_topk if card.task == "detection" else None
    return runner_for(path, card, pre_nms_topk, threads=torch.get_num_threads())

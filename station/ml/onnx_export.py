"""``station export --model DIR --format onnx --out FILE``: a bundled or trained model as ONNX.

The graph is what other tools (ONNX Runtime, OpenVINO, X-AnyLabeling) can load: the classifier's
logits ``[B, K]`` (softmax / the card's temperature is left to the reader, as in the engine); the
detector's dense outputs, every anchor's class scores ``[B, A, K]`` and x1y1x2y2 boxes
``[B, A, 4]`` in input pixels (``station.ml.wbam_ffem.dense_detections``). Thresholding and NMS
are data-dependent and stay outside the graph: ``station.ml.onnx_runtime`` applies the same
``select_detections`` as ``predict``. The batch axis is dynamic; the spatial size is the card's.
The card travels inside the file (metadata ``station.card``), so a reader knows the classes,
preprocessing and thresholds.

``taps`` names layers whose outputs become extra graph outputs, ``tap/<layer>/<j>`` for the
layer's j-th tensor: the engine reads the detector's EigenCAM activations and both models'
familiarity features from them, so ONNX Runtime does the whole forward pass (no torch pass for
the hooks). ``station export`` writes no taps.

The TorchScript-based exporter is used: the dynamo exporter of torch 2.14 fails to decompose the
CTI graph.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from station.ml.cards import ModelCard, ModelLoadError, load_model
from station.ml.wbam_ffem import dense_detections

DEFAULT_OPSET = 18
CARD_METADATA_KEY = "station.card"
PRE_NMS_TOPK_KEY = "station.pre_nms_topk"


class _DenseDetector(nn.Module):
    """The detector up to the data-dependent selection: ``images -> (scores, boxes)``."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return dense_detections(self.detector(images), (images.shape[-2], images.shape[-1]))


TAP_PREFIX = "tap/"


def _tensors(output: Any) -> list[torch.Tensor]:
    items = output if isinstance(output, (list, tuple)) else [output]
    return [item for item in items if isinstance(item, torch.Tensor)]


class _Tapped(nn.Module):
    """``graph``'s outputs followed by the output tensors of ``model``'s ``taps`` layers, in order."""

    def __init__(self, graph: nn.Module, model: nn.Module, taps: Sequence[str]) -> None:
        super().__init__()
        self.graph = graph
        self.layers = [(name, model.get_submodule(name)) for name in taps]
        self.counts: dict[str, int] = {}

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        caught: dict[str, list[torch.Tensor]] = {}

        def keep(name: str, output: Any) -> None:  # a hook that returned a value would replace the output
            caught.setdefault(name, _tensors(output))

        handles = [module.register_forward_hook(lambda _m, _i, output, name=name: keep(name, output))
                   for name, module in self.layers]
        try:
            outputs = self.graph(images)
        finally:
            for handle in handles:
                handle.remove()
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        self.counts = {name: len(caught[name]) for name, _ in self.layers}
        return (*outputs, *(tensor for name, _ in self.layers for tensor in caught[name]))


def export_graph(model: nn.Module, card: ModelCard, out: str | Path, opset: int = DEFAULT_OPSET,
                 taps: Sequence[str] = ()) -> Path:
    """Trace ``model`` (built from ``card``) into the ONNX file ``out``; torch only, no ``onnx``."""
    if opset < 17:
        raise ValueError(f"opset must be 17 or newer, got {opset}")
    if card.task == "detection":
        graph, outputs = _DenseDetector(model).eval(), ["scores", "boxes"]
    else:
        graph, outputs = model.eval(), ["logits"]
    if taps:
        graph = _Tapped(graph, model, taps).eval()
        with torch.no_grad():
            graph(torch.zeros(1, *card.input_size))
        outputs += [f"{TAP_PREFIX}{name}/{j}" for name in taps for j in range(graph.counts[name])]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, *card.input_size)
    dynamic = {name: {0: "batch"} for name in ("images", *outputs)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape arithmetic on the fixed input size
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph, (example,), str(out), input_names=["images"], output_names=outputs,
            dynamic_axes=dynamic, opset_version=opset, dynamo=False,
        )
    return out


def export_onnx(model_dir: str | Path, out: str | Path, opset: int = DEFAULT_OPSET) -> ModelCard:
    """Write ``model_dir``'s network to ``out`` as ONNX (dynamic batch), the card inside, and check it."""
    import onnx

    model, card = load_model(model_dir, "cpu")
    export_graph(model, card, out, opset)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, json.dumps(card.to_dict(), ensure_ascii=False)
    if card.task == "detection":
        entry = proto.metadata_props.add()
        entry.key, entry.value = PRE_NMS_TOPK_KEY, str(model.config.pre_nms_topk)
    onnx.save(proto, str(out))
    return card


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="a model folder (card.json + weights.safetensors)")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="the export format")
    parser.add_argument("--out", required=True, type=Path, help="the file to write, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (17 or newer; default {DEFAULT_OPSET})")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        card = export_onnx(args.model, args.out, args.opset)
    except (ModelLoadError, ValueError) as exc:
        print(f"station export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"station export: cannot write {args.out} ({exc.strerror or exc})", file=sys.stderr)
        return 1
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({card.name}, {card.task}, opset {args.opset}, dynamic batch, "
          f"{size_mb:.1f} MB) in {time.perf_counter() - start:.1f} s")
    return 0

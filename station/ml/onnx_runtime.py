"""Exported models (``station.ml.onnx_export``) run by ONNX Runtime, behind the torch models' calls.

``OnnxClassifier(images) -> logits`` and ``OnnxDetector.predict(images, ...) -> detections`` take
and return torch tensors like ``CTI`` and ``WBAMFFEM`` do, so the card preprocessing, the
temperature, test-time views and the detection selection (``select_detections``, the very code
``predict`` runs) are shared with the torch path; only the network's arithmetic differs. No
gradient maps: Grad-CAM needs the torch graph. A graph exported with taps also hands back those
layers' outputs, as the torch models' forward hooks do: inside ``with runner.tapping() as taps``
each pass on that thread puts them in ``taps`` (the last pass's win), and the detector's EigenCAM
and the familiarity features are read from there.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from station.ml.cards import ModelCard
from station.ml.letterbox import LetterboxInfo
from station.ml.onnx_export import CARD_METADATA_KEY, PRE_NMS_TOPK_KEY, TAP_PREFIX
from station.ml.wbam_ffem import select_detections


class _OnnxModel:
    def __init__(self, session: object, card: ModelCard) -> None:
        self.session = session
        self.card = card
        self.training = False
        names = [output.name for output in session.get_outputs()]
        self._main = sum(not name.startswith(TAP_PREFIX) for name in names)
        self._tap_layers = [name[len(TAP_PREFIX):].rsplit("/", 1)[0] for name in names[self._main:]]
        # by thread, only while a ``tapping`` block is open: a threading.local still holding tensors
        # when a QThread ends crashed CPython's thread-state teardown (segfault at the window's close)
        self._tapping: dict[int, dict[str, list[torch.Tensor]]] = {}

    @property
    def tapped_layers(self) -> frozenset[str]:
        return frozenset(self._tap_layers)

    def eval(self) -> _OnnxModel:
        return self

    def _run(self, images: torch.Tensor) -> list[np.ndarray]:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        outputs = self.session.run(None, {"images": array})
        taps = self._tapping.get(threading.get_ident())
        if taps is not None:
            taps.clear()
            for layer, tensor in zip(self._tap_layers, outputs[self._main:]):
                taps.setdefault(layer, []).append(torch.from_numpy(tensor))
        return outputs[: self._main]

    @contextlib.contextmanager
    def tapping(self) -> Iterator[dict[str, list[torch.Tensor]]]:
        """Each tapped layer's output tensors of the last pass this thread runs inside the block."""
        key = threading.get_ident()
        taps: dict[str, list[torch.Tensor]] = {}
        self._tapping[key] = taps
        try:
            yield taps
        finally:
            del self._tapping[key]


class OnnxClassifier(_OnnxModel):
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        (logits,) = self._run(images)
        return torch.from_numpy(logits)


class OnnxDetector(_OnnxModel):
    def __init__(self, session: object, card: ModelCard, pre_nms_topk: int) -> None:
        super().__init__(session, card)
        self.pre_nms_topk = pre_nms_topk

    def predict(
        self,
        images: torch.Tensor,
        score_thresh: float = 0.25,
        nms_iou: float = 0.5,
        max_det: int = 300,
        letterbox: Sequence[LetterboxInfo] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        scores, boxes = self._run(images)
        return select_detections(
            torch.from_numpy(scores), torch.from_numpy(boxes), score_thresh, nms_iou, max_det,
            self.pre_nms_topk, letterbox,
        )


def _session(path: str | Path, threads: int | None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # no spin-waiting after a pass: the engine runs torch (Grad-CAM) next on the same cores, and a
    # spinning pool took them from it (the demo capture 64 -> 90 ms on 2 busy cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runner_for(path: str | Path, card: ModelCard, pre_nms_topk: int | None = None,
               threads: int | None = None) -> OnnxClassifier | OnnxDetector:
    """The runner for a graph exported from ``card``'s model (``export_graph``); a detector also
    needs its config's ``pre_nms_topk``."""
    session = _session(path, threads)
    if card.task == "detection":
        if pre_nms_topk is None:
            raise ValueError("a detector's runner needs its pre_nms_topk")
        return OnnxDetector(session, card, pre_nms_topk)
    return OnnxClassifier(session, card)


def load_onnx(path: str | Path, threads: int | None = None) -> OnnxClassifier | OnnxDetector:
    """The runner for a file written by ``station export``, chosen by the card inside it;
    ``threads`` caps ONNX Runtime's intra-op threads (None: its default, one per core)."""
    session = _session(path, threads)
    metadata = session.get_modelmeta().custom_metadata_map
    if CARD_METADATA_KEY not in metadata:
        raise ValueError(f"{path} was not written by `station export` (no {CARD_METADATA_KEY} metadata)")
    card = ModelCard.from_dict(json.loads(metadata[CARD_METADATA_KEY]))
    if card.task == "detection":
        return OnnxDetector(session, card, int(metadata[PRE_NMS_TOPK_KEY]))
    return OnnxClassifier(session, card)

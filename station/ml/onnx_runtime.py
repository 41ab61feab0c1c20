"""Exported models (``station.ml.onnx_export``) run by ONNX Runtime, behind the torch models' calls.

``OnnxClassifier(images) -> logits`` and ``OnnxDetector.predict(images, ...) -> detections`` take
and return torch tensors like ``CTI`` and ``WBAMFFEM`` do, so the card preprocessing, the
temperature, test-time views and the detection selection (``select_detections``, the very code
``predict`` runs) are shared with the torch path; only the network's arithmetic differs. No
attention maps: Grad-CAM needs the torch graph.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from station.ml.cards import ModelCard
from station.ml.letterbox import LetterboxInfo
from station.ml.onnx_export import CARD_METADATA_KEY, PRE_NMS_TOPK_KEY
from station.ml.wbam_ffem import select_detections


class _OnnxModel:
    def __init__(self, session: object, card: ModelCard) -> None:
        self.session = session
        self.card = card
        self.training = False

    def eval(self) -> _OnnxModel:
        return self

    def _run(self, images: torch.Tensor) -> list[np.ndarray]:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        return self.session.run(None, {"images": array})


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

"""Loading a recipe's models through their cards, with errors that say what is wrong with which file."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from station.inference.errors import (
    CorruptWeightsError,
    EngineError,
    IncompatibleModelError,
    InvalidCardError,
    ModelNotFoundError,
    TruncatedWeightsError,
    WeightsMismatchError,
)
from station.inference.results import ModelRef
from station.ml.cards import CARD_FILE, WEIGHTS_FILE, ModelCard, ModelLoadError, load_model
from station.ml.fusion import fold_batch_norms

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


@dataclass
class LoadedModel:
    role: str  # "classifier" | "detector"
    directory: Path
    model: nn.Module
    card: ModelCard

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.card.name, self.card.weights_sha256)


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None when it is one.

    Reads only the 8-byte length and the JSON header: the header lists every tensor's byte
    range, so a file shorter than its last range is truncated.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return f"only {size} bytes: not a safetensors file"
        (header_length,) = struct.unpack("<Q", prefix)
        if header_length > _MAX_HEADER_BYTES:
            return "not a safetensors file (no valid header)"
        raw_header = handle.read(header_length)
    if len(raw_header) < header_length:
        return f"truncated: the file ends inside its header ({size} bytes)"
    try:
        header = json.loads(raw_header)
        data_end = max(
            (int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"), default=0
        )
    except (ValueError, TypeError, KeyError, IndexError):
        return "not a safetensors file (its header is not valid)"
    expected = 8 + header_length + data_end
    if size < expected:
        return f"truncated: {size} of {expected} bytes"
    return None


def _classify(exc: ModelLoadError, directory: Path) -> EngineError:
    path = exc.path
    message = str(exc)
    if path == directory or path.name == CARD_FILE:
        if not path.exists():
            return ModelNotFoundError(message, path)
        return InvalidCardError(message, path)
    if path.name == WEIGHTS_FILE:
        if not path.exists():
            return ModelNotFoundError(message, path)
        problem = safetensors_problem(path)
        if problem is None:
            return WeightsMismatchError(message, path)
        kind = TruncatedWeightsError if problem.startswith("truncated") else CorruptWeightsError
        return kind(f"Cannot load model '{path}': {problem}", path)
    return EngineError(message, path)


def load_for_role(role: str, directory: Path, task: str) -> LoadedModel:
    """Load the model in ``directory`` (on the CPU) for ``role``; its card must be of ``task``.

    Weights are frozen (``requires_grad=False``): Grad-CAM then back-propagates only from its
    target layer, not into every parameter. Batch normalisations are folded into their
    convolutions (``station.ml.fusion``): the same network in fewer operations; the weights are
    kept channels-last, where oneDNN's CPU convolutions run 10-20 % faster here (docs/RESULTS.md).
    """
    try:
        model, card = load_model(directory, device="cpu")
    except ModelLoadError as exc:
        raise _classify(exc, directory) from exc
    if card.task != task:
        raise IncompatibleModelError(
            f"the recipe's {role} '{directory}' is a {card.task} model; a {task} model is needed", directory / CARD_FILE
        )
    model.eval()
    fold_batch_norms(model)
    model.requires_grad_(False).to(memory_format=torch.channels_last)
    return LoadedModel(role, directory, model, card)

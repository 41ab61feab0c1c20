"""Why the engine refused: every error names the file or value at fault."""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """Base of every error the inference engine raises on purpose."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class ModelNotFoundError(EngineError):
    """The model folder, its card or its weights file does not exist."""


class InvalidCardError(EngineError):
    """``card.json`` is unreadable, incomplete, or describes a network that cannot be built."""


class CorruptWeightsError(EngineError):
    """The weights file is not a readable safetensors file (broken or foreign)."""


class TruncatedWeightsError(CorruptWeightsError):
    """The weights file ends before the data its own header announces."""


class WeightsMismatchError(EngineError):
    """A complete safetensors file, but not the card's: sha256 or tensor names/shapes differ."""


class UnapprovedModelError(EngineError):
    """No admin approved this model's weights and card (``station models approve DIR``)."""


class IncompatibleModelError(EngineError):
    """The model does not fit its place in the recipe (wrong task, classes without a decap
    method, reference image expected or not)."""


class InvalidInputError(EngineError):
    """The request's image or reference cannot be inspected (wrong type, shape or size)."""


class MissingReferenceError(InvalidInputError):
    """The recipe compares against a defect-free template, and the request has none."""

"""Synchronous, Qt-free inference: a recipe's models turn an image into a typed result.

``Engine(recipe, device).run(InspectionRequest(...)) -> InspectionResult``, or for many images
``engine.run_batch([engine.prepare(image, reference), ...])``; recipes come from ``load_recipes()``.
The GUI calls the engine from its worker thread (``station.ui.workers``); the batch reviewer and
``station bench latency`` call it directly; evaluation runs the networks through
``station.inference.networks`` as the engine does.
"""

from station.inference.engine import STAGES, Engine, PreparedImage
from station.inference.errors import (
    CorruptWeightsError,
    EngineError,
    IncompatibleModelError,
    UnapprovedModelError,
    InvalidCardError,
    InvalidInputError,
    MissingReferenceError,
    ModelNotFoundError,
    TruncatedWeightsError,
    WeightsMismatchError,
)
from station.inference.recipes import Recipe, RecipeError, load_recipes, read_recipe
from station.inference.results import (
    AttentionMaps,
    Defect,
    InspectionRequest,
    InspectionResult,
    MaterialCall,
    ModelRef,
)

__all__ = [
    "STAGES",
    "AttentionMaps",
    "CorruptWeightsError",
    "Defect",
    "Engine",
    "EngineError",
    "IncompatibleModelError",
    "UnapprovedModelError",
    "InspectionRequest",
    "InspectionResult",
    "InvalidCardError",
    "InvalidInputError",
    "MaterialCall",
    "MissingReferenceError",
    "ModelNotFoundError",
    "ModelRef",
    "PreparedImage",
    "Recipe",
    "RecipeError",
    "TruncatedWeightsError",
    "WeightsMismatchError",
    "load_recipes",
    "read_recipe",
]

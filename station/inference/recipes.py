"""Recipes: which models inspect a part, with which thresholds, and how each material is decapped.

A recipe is a small JSON file. Bundled ones live in ``resources/recipes/``; a user adds or
overrides one (same ``name``) by dropping a file in ``station.paths.recipes_dir()``. A broken
file is logged and skipped, so one bad recipe never stops the station from starting.

``classifier`` and ``detector`` name a bundled model (a folder under ``station.paths.models_dir()``)
or give a path to a model folder (absolute, or relative to the recipe file). A threshold left
``null`` takes the value from the model's card. ``image_check`` (optional) holds the limits a
captured frame must meet before the answer is trusted (``station.inference.image_check``); a
frame that fails goes to a person, like an uncertain call. ``part_region`` says how the part is
found in a frame (``station.inference.part_region``): ``{"kind": "object", ...}`` for a part on a
stage, ``{"kind": "frame"}`` (the default) where the subject fills the frame; a frame without a
part, or whose features the models' familiarity statistics do not know, is NO PART / UNFAMILIAR.
Batch review's bulk accept takes only calls at or above ``bulk_accept_confidence`` whose attention
lies at least ``min_attention_on_part`` inside the part. ``allow_missing_chip_id`` lets a
capture go on without a chip ID, with a reason the operator gives that goes into the record.
``tiling`` ("auto", the default; "on"; "off") says when the detector also runs on native-resolution
tiles of a frame: in "auto", when its letterbox would shrink the frame by more than 1.5×.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station import paths
from station.inference.image_check import ImageCheck
from station.inference.part_region import PartRegionCheck
from station.inference.tiling import TILING_MODES

log = logging.getLogger(__name__)

RECIPE_VERSION = 1


class RecipeError(ValueError):
    """A recipe file or value that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str = ""
    classifier: str | None = None  # model name or model folder path
    detector: str | None = None
    uncertain_below: float | None = None  # calibrated confidence below this -> route to an expert
    score_threshold: float | None = None
    nms_iou: float | None = None
    max_detections: int | None = None
    decap_methods: dict[str, str] = field(default_factory=dict)  # material -> decapsulation method
    use_reference: bool = False  # the detector compares against a defect-free template image
    image_check: ImageCheck | None = None  # limits a usable frame meets; None: no check
    part_region: PartRegionCheck | None = None  # how the part is found; None: the whole frame
    bulk_accept_confidence: float = 0.9  # batch bulk accept: calibrated confidence at least this
    min_attention_on_part: float = 0.6  # batch bulk accept: share of the attention inside the part
    # parts without a readable ID (bare dies, scrap): capture may go on without one, with a recorded reason
    allow_missing_chip_id: bool = False
    # detector on native-resolution tiles of a large frame (station.inference.tiling): auto, on, off
    tiling: str = "auto"
    origin: Path | None = field(default=None, compare=False)  # the file it was read from

    def __post_init__(self) -> None:
        where = f"recipe {self.name!r}" + (f" ({self.origin})" if self.origin else "")
        if not isinstance(self.name, str) or not self.name.strip():
            raise RecipeError(f"{where}: 'name' must be a non-empty string")
        if self.classifier is None and self.detector is None:
            raise RecipeError(f"{where}: names neither a classifier nor a detector")
        for key in ("classifier", "detector"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise RecipeError(f"{where}: {key!r} must be a model name or folder, got {value!r}")
        for key, upper_open in (("uncertain_below", False), ("score_threshold", False), ("nms_iou", True),
                                ("bulk_accept_confidence", False), ("min_attention_on_part", False)):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RecipeError(f"{where}: {key!r} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= value <= 1.0 or (upper_open and value == 0.0):
                raise RecipeError(f"{where}: {key!r} must be in {'(0, 1]' if upper_open else '[0, 1]'}, got {value}")
        if self.max_detections is not None and (
            isinstance(self.max_detections, bool) or not isinstance(self.max_detections, int) or self.max_detections < 1
        ):
            raise RecipeError(f"{where}: 'max_detections' must be a positive integer, got {self.max_detections!r}")
        if not isinstance(self.decap_methods, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in self.decap_methods.items()
        ):
            raise RecipeError(f"{where}: 'decap_methods' must map material names to method names")
        if not isinstance(self.use_reference, bool):
            raise RecipeError(f"{where}: 'use_reference' must be true or false, got {self.use_reference!r}")
        if not isinstance(self.allow_missing_chip_id, bool):
            raise RecipeError(f"{where}: 'allow_missing_chip_id' must be true or false, got {self.allow_missing_chip_id!r}")
        if self.tiling not in TILING_MODES:
            raise RecipeError(f"{where}: 'tiling' must be one of {', '.join(TILING_MODES)}, got {self.tiling!r}")
        if self.image_check is not None and not isinstance(self.image_check, ImageCheck):
            raise RecipeError(f"{where}: 'image_check' must be an ImageCheck, got {self.image_check!r}")
        if self.part_region is not None and not isinstance(self.part_region, PartRegionCheck):
            raise RecipeError(f"{where}: 'part_region' must be a PartRegionCheck, got {self.part_region!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: Path | None = None) -> Recipe:
        where = str(origin) if origin else "recipe"
        if not isinstance(data, dict):
            raise RecipeError(f"{where}: a recipe is a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", RECIPE_VERSION)
        if version != RECIPE_VERSION:
            raise RecipeError(f"{where}: unsupported recipe version {version!r} (this station reads {RECIPE_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)} - {"origin"}
        unknown = sorted(set(data) - known)
        if unknown:
            # a typo ("uncertain_bellow") must not silently fall back to a default
            raise RecipeError(
                f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
            )
        if "name" not in data:
            raise RecipeError(f"{where}: the recipe has no 'name'")
        if data.get("image_check") is not None:
            try:
                data["image_check"] = ImageCheck.from_dict(data["image_check"])
            except (TypeError, ValueError) as exc:
                raise RecipeError(f"{where}: {exc}") from exc
        if data.get("part_region") is not None:
            try:
                data["part_region"] = PartRegionCheck.from_dict(data["part_region"])
            except (TypeError, ValueError) as exc:
                raise RecipeError(f"{where}: {exc}") from exc
        return cls(**data, origin=origin)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "origin"}
        data["decap_methods"] = dict(self.decap_methods)
        data["image_check"] = self.image_check.to_dict() if self.image_check is not None else None
        data["part_region"] = self.part_region.to_dict() if self.part_region is not None else None
        return {"version": RECIPE_VERSION, **data}

    def model_dir(self, reference: str) -> Path:
        """Where the model named by ``reference`` (a classifier/detector value) lives."""
        if "/" in reference or "\\" in reference or reference.startswith((".", "~")):
            path = Path(reference).expanduser()
            if not path.is_absolute() and self.origin is not None:
                path = self.origin.parent / path
            return path
        return paths.models_dir() / reference


def read_recipe(path: Path) -> Recipe:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # Notepad writes a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    try:
        return Recipe.from_dict(data, origin=path)
    except TypeError as exc:
        raise RecipeError(f"{path}: {exc}") from exc


def _read_folder(folder: Path, kind: str) -> dict[str, Recipe]:
    recipes: dict[str, Recipe] = {}
    if not folder.is_dir():
        return recipes
    for path in sorted(folder.glob("*.json")):
        try:
            recipe = read_recipe(path)
        except RecipeError as exc:
            log.warning("skipping %s recipe: %s", kind, exc)
            continue
        if recipe.name in recipes:
            earlier = recipes[recipe.name].origin
            log.warning("%s recipe %r in %s replaces the one in %s", kind, recipe.name, path, earlier)
        recipes[recipe.name] = recipe
    return recipes


def load_recipes(bundled_dir: Path | None = None, user_dir: Path | None = None,
                 machine_dir: Path | None = None) -> dict[str, Recipe]:
    """name -> Recipe: the bundled recipes, then the machine's (a lab admin's, for every user of
    this PC), then the user's; a later one overrides an earlier one of the same name."""
    recipes = _read_folder(bundled_dir or paths.resources_dir() / "recipes", "bundled")
    for kind, folder in (("machine", machine_dir or paths.machine_config_dir() / "recipes"),
                         ("user", user_dir or paths.recipes_dir())):
        for name, recipe in _read_folder(folder, kind).items():
            if name in recipes:
                log.info("%s recipe %r (%s) overrides the one in %s", kind, name, recipe.origin, recipes[name].origin)
            recipes[name] = recipe
    return recipes

"""What goes into the engine and what comes out: immutable request, typed result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from station.inference.familiarity import FamiliarityCheck


# eq=False where a field holds arrays: ``==`` on arrays has no single truth value


@dataclass(frozen=True, eq=False)
class InspectionRequest:
    """Built on the GUI thread; ``request_id`` lets the GUI drop stale results."""

    request_id: int
    image: np.ndarray  # HxWx3 RGB uint8
    reference: np.ndarray | None = None  # defect-free template of the same part (recipes with use_reference)
    want_attention: bool = True


@dataclass(frozen=True)
class MaterialCall:
    """The classifier's answer. ``probabilities`` are temperature-calibrated (the card's T)."""

    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    material: str
    confidence: float
    uncertain: bool  # confidence below the recipe's threshold: route to an expert
    decap_method: str


@dataclass(frozen=True)
class Defect:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the request image's pixels
    label: str
    score: float
    # other classes the detector gave the same place, best first (station.inference.defects)
    alternatives: tuple[tuple[str, float], ...] = ()

    @property
    def label_text(self) -> str:
        """The label as shown to the operator: "crack (or scratch 0.31)"."""
        if not self.alternatives:
            return self.label
        return f"{self.label} (or {', '.join(f'{label} {score:.2f}' for label, score in self.alternatives)})"

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(eq=False)
class AttentionMaps:
    """Each map is HxW float32 in [0, 1], the request image's size, scaled against the card's
    fixed reference range: 0 is the card's "nothing here", 1 its "strong evidence"."""

    material: np.ndarray | None = None
    defects: np.ndarray | None = None


@dataclass(frozen=True)
class ModelRef:
    name: str
    sha256: str


@dataclass(eq=False)
class InspectionResult:
    request_id: int
    material: MaterialCall | None
    defects: list[Defect]
    attention: AttentionMaps | None
    timings_ms: dict[str, float]  # preprocess, classifier, detector, cam, total
    device: str
    models: tuple[ModelRef, ...]
    thresholds: dict[str, float]  # uncertain_below, score_threshold, nms_iou, temperature (those that apply)
    recipe: str = ""
    image_size: tuple[int, int] = field(default=(0, 0))  # (height, width)
    image_problems: tuple[str, ...] = ()  # the recipe's image check failed: route to a person
    # is this a part of the kind the models know? (station.inference.familiarity); None: not checked
    familiarity: FamiliarityCheck | None = None
    suppressed_defects: int = 0  # boxes the detector gave an unfamiliar frame: not findings, not in ``defects``
    attention_on_part: float | None = None  # share of the material map's mass inside the part (maps only)
    detector_tiles: int = 0  # native-resolution tiles the detector also ran on (station.inference.tiling); 0: none

    @property
    def unfamiliar(self) -> bool:
        """No part, or not a part of the kind the models know: never accepted, only overridden."""
        return self.familiarity is not None and not self.familiarity.familiar

    @property
    def needs_expert(self) -> bool:
        """An uncertain material call, a frame the recipe's image check rejected, or an unfamiliar one."""
        return self.unfamiliar or bool(self.image_problems) or (self.material is not None and self.material.uncertain)

    @property
    def problems(self) -> tuple[str, ...]:
        """Why the frame goes to a person before any call is read: unfamiliar first, then the image check."""
        unfamiliar = self.familiarity.reasons if self.unfamiliar else ()  # type: ignore[union-attr]
        return tuple(f"NO PART / UNFAMILIAR: {reason}" for reason in unfamiliar) + self.image_problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no attention arrays) for the audit log and batch reports."""
        material = None
        if self.material is not None:
            call = self.material
            material = {
                "material": call.material,
                "confidence": call.confidence,
                "uncertain": call.uncertain,
                "decap_method": call.decap_method,
                "probabilities": dict(zip(call.classes, call.probabilities)),
            }
        return {
            "request_id": self.request_id,
            "recipe": self.recipe,
            "image_size": list(self.image_size),
            "material": material,
            "defects": [{"box": list(d.box), "label": d.label, "score": d.score,
                         "alternatives": [[label, score] for label, score in d.alternatives]} for d in self.defects],
            "models": [{"name": m.name, "sha256": m.sha256} for m in self.models],
            "thresholds": dict(self.thresholds),
            "device": self.device,
            "timings_ms": dict(self.timings_ms),
            "image_problems": list(self.image_problems),
            "familiarity": self.familiarity.to_dict() if self.familiarity is not None else None,
            "suppressed_defects": self.suppressed_defects,
            "attention_on_part": self.attention_on_part,
            "detector_tiles": self.detector_tiles,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InspectionResult:
        """The inverse of ``to_dict`` (attention maps are not part of it)."""
        material = None
        call = data.get("material")
        if call is not None:
            probabilities = call["probabilities"]
            material = MaterialCall(
                classes=tuple(probabilities),
                probabilities=tuple(float(p) for p in probabilities.values()),
                material=call["material"],
                confidence=float(call["confidence"]),
                uncertain=bool(call["uncertain"]),
                decap_method=call["decap_method"],
            )
        defects = [
            Defect(box=tuple(float(v) for v in d["box"]), label=d["label"], score=float(d["score"]),  # type: ignore[arg-type]
                   alternatives=tuple((str(label), float(score)) for label, score in d.get("alternatives", ())))
            for d in data.get("defects", [])
        ]
        height, width = (int(v) for v in data.get("image_size", (0, 0)))
        return cls(
            request_id=int(data.get("request_id", -1)),
            material=material,
            defects=defects,
            attention=None,
            timings_ms={k: float(v) for k, v in data.get("timings_ms", {}).items()},
            device=data.get("device", ""),
            models=tuple(ModelRef(m["name"], m["sha256"]) for m in data.get("models", [])),
            thresholds={k: float(v) for k, v in data.get("thresholds", {}).items()},
            recipe=data.get("recipe", ""),
            image_size=(height, width),
            image_problems=tuple(str(problem) for problem in data.get("image_problems", ())),
            familiarity=FamiliarityCheck.from_dict(data["familiarity"]) if data.get("familiarity") else None,
            suppressed_defects=int(data.get("suppressed_defects", 0)),
            attention_on_part=None if data.get("attention_on_part") is None else float(data["attention_on_part"]),
            detector_tiles=int(data.get("detector_tiles", 0)),
        )

"""Stored inspection results: ``InspectionResult.to_dict()`` JSON back into typed objects.

The batch store keeps each item's result as the engine's own JSON summary (no attention
arrays); the detail view, the exports and the audit drafts read it back through here.
"""

from __future__ import annotations

from typing import Any

from station.inference import Defect, InspectionResult, MaterialCall, ModelRef


def result_from_dict(data: dict[str, Any]) -> InspectionResult:
    """The inverse of ``InspectionResult.to_dict()`` (attention maps are not part of it)."""
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
    return InspectionResult(
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
    )


def top_defect(result: InspectionResult) -> Defect | None:
    return max(result.defects, key=lambda d: d.score, default=None)

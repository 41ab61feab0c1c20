"""What batch review reads from a stored ``InspectionResult`` (the store keeps
``InspectionResult.to_dict()`` and gives back ``InspectionResult.from_dict``)."""

from __future__ import annotations

from station.inference import Defect, InspectionResult


def top_defect(result: InspectionResult) -> Defect | None:
    return max(result.defects, key=lambda d: d.score, default=None)

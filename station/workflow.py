"""The Capture & Classify workflow as plain data (no Qt).

One :class:`Inspection` per captured chip. The GUI asks this module what to write to the
audit log at each step, and the module decides what the operator may do next: an
uncertain call cannot simply be accepted, and a chip can be released to decapping only
once its verdict record is committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from station.audit.entry import Action, Verdict
from station.capture.base import Frame


@dataclass(frozen=True)
class Operator:
    operator_id: str
    name: str


@dataclass(frozen=True)
class AuditDraft:
    """An entry to append: ``AuditLog.append(action, **fields)``."""

    action: Action
    fields: dict[str, Any]


@dataclass
class Inspection:
    request_id: int
    frame: Frame
    recipe: Any  # station.inference.Recipe
    chip: dict[str, str] = field(default_factory=dict)  # chip_id, lot_id, serial
    result: Any = None  # station.inference.InspectionResult
    error: str | None = None
    verdict: Verdict | None = None
    material: str | None = None  # material of record after the verdict
    verdict_entry_id: int | None = None
    release_entry_id: int | None = None

    # -- what the operator may do --------------------------------------------------
    @property
    def has_result(self) -> bool:
        return self.result is not None

    @property
    def uncertain(self) -> bool:
        """An uncertain call, or a frame the recipe's image check rejected."""
        return self.result is not None and self.result.needs_expert

    @property
    def can_accept(self) -> bool:
        """An uncertain call goes to a person: override with a reason, or hold."""
        return self.has_result and self.verdict_entry_id is None and not self.uncertain

    @property
    def can_give_verdict(self) -> bool:
        return self.has_result and self.verdict_entry_id is None

    @property
    def goes_to_decapping(self) -> bool:
        """A recipe without a classifier (bare PCBs, steel) inspects only: the verdict ends the
        flow and nothing is released to decapping."""
        return getattr(self.recipe, "classifier", None) is not None

    @property
    def can_release(self) -> bool:
        return (
            self.goes_to_decapping
            and self.verdict_entry_id is not None
            and self.verdict in (Verdict.ACCEPT, Verdict.OVERRIDE)
            and self.release_entry_id is None
        )

    @property
    def decap_method(self) -> str | None:
        if self.material is None:
            return None
        return self.recipe.decap_methods.get(self.material)

    # -- audit drafts --------------------------------------------------------------
    def _prediction_fields(self) -> dict[str, Any]:
        fields = result_audit_fields(self.result)
        fields.update(
            chip_id=self.chip.get("chip_id") or None,
            lot_id=self.chip.get("lot_id") or None,
            serial_id=self.chip.get("serial") or None,
            recipe=self.recipe.name,
        )
        fields["details"].update(
            frame_source=self.frame.source, frame_id=self.frame.frame_id, frame_time=self.frame.timestamp
        )
        return fields

    def verdict_draft(self, operator: Operator, verdict: Verdict, material: str | None = None, reason: str = "") -> AuditDraft:
        """The record of the operator's decision, with the archived image and every prediction."""
        if not self.has_result:
            raise ValueError("no result to give a verdict on")
        if self.verdict_entry_id is not None:
            raise ValueError(f"this inspection already has its verdict (record {self.verdict_entry_id})")
        if verdict is Verdict.ACCEPT and not self.can_accept:
            raise ValueError("an uncertain result cannot be accepted: override it with a reason, or hold it")
        if verdict is Verdict.OVERRIDE and not reason.strip():
            raise ValueError("an override needs a reason")
        if verdict is Verdict.OVERRIDE and self.goes_to_decapping and not material:
            raise ValueError("an override needs the chosen material and a reason")
        call = self.result.material
        if verdict is Verdict.OVERRIDE:
            chosen = material if self.goes_to_decapping else None
        else:
            chosen = call.material if call is not None else None
        action = {Verdict.ACCEPT: Action.VERDICT, Verdict.OVERRIDE: Action.OVERRIDE, Verdict.REJECT_HOLD: Action.REJECT_HOLD}[verdict]
        fields = self._prediction_fields()
        fields.update(
            operator_id=operator.operator_id,
            image=self.frame.image,
            material=chosen,
            verdict=verdict,
            reason=reason.strip() or None,
            decap_method=self.recipe.decap_methods.get(chosen) if chosen and verdict is not Verdict.REJECT_HOLD else None,
        )
        return AuditDraft(action, fields)

    def commit_verdict(self, draft: AuditDraft, entry_id: int) -> None:
        self.verdict = Verdict(draft.fields["verdict"])
        self.material = draft.fields.get("material")
        self.verdict_entry_id = entry_id

    def release_draft(self, operator: Operator) -> AuditDraft:
        if not self.can_release:
            raise ValueError("release needs a committed accept/override record first")
        fields = {
            "operator_id": operator.operator_id,
            "chip_id": self.chip.get("chip_id") or None,
            "lot_id": self.chip.get("lot_id") or None,
            "serial_id": self.chip.get("serial") or None,
            "recipe": self.recipe.name,
            "material": self.material,
            "decap_method": self.decap_method,
            "refers_to": self.verdict_entry_id,
        }
        return AuditDraft(Action.RELEASE, fields)


def _defect_record(defect) -> dict[str, Any]:
    record = {"class": defect.label, "score": round(float(defect.score), 4),
              "box": [round(float(v), 1) for v in defect.box]}
    if defect.alternatives:  # the other classes the detector gave this place (station.inference.defects)
        record["alternatives"] = [{"class": label, "score": round(float(score), 4)}
                                  for label, score in defect.alternatives]
    return record


def result_audit_fields(result) -> dict[str, Any]:
    """What the models said, as audit fields: models and their hashes, thresholds, defects,
    calibrated probabilities; device and timings in ``details``. Shared by Capture & Classify
    and batch review so both record a decision the same way."""
    fields: dict[str, Any] = {
        "models": {ref.name: ref.sha256 for ref in result.models},
        "thresholds": dict(result.thresholds),
        "defects": [_defect_record(d) for d in result.defects],
        "details": {
            "device": result.device,
            "timings_ms": {k: round(float(v), 2) for k, v in result.timings_ms.items()},
        },
    }
    if result.image_problems:
        fields["details"]["image_problems"] = list(result.image_problems)
    call = result.material
    if call is not None:
        fields.update(
            probabilities={c: round(float(p), 6) for c, p in zip(call.classes, call.probabilities)},
            predicted_material=call.material,
            uncertain=bool(call.uncertain),
        )
    return fields


def sign_in_draft(operator: Operator, previous: Operator | None, recipe: str | None = None) -> AuditDraft:
    """Sign-in, with the recipe in use at that moment (a later change is its own entry)."""
    details = {"name": operator.name}
    if previous is not None:
        details["previous_operator"] = previous.operator_id
    return AuditDraft(Action.SIGN_IN, {"operator_id": operator.operator_id, "recipe": recipe, "details": details})


def sign_out_draft(operator: Operator) -> AuditDraft:
    return AuditDraft(Action.SIGN_OUT, {"operator_id": operator.operator_id, "details": {"name": operator.name}})


def recipe_change_draft(operator: Operator, recipe_name: str, models: dict[str, str], previous: str | None) -> AuditDraft:
    return AuditDraft(
        Action.RECIPE_CHANGE,
        {"operator_id": operator.operator_id, "recipe": recipe_name, "models": models, "details": {"previous": previous}},
    )


def threshold_change_draft(operator: Operator, recipe_name: str, thresholds: dict[str, float], previous: dict[str, float]) -> AuditDraft:
    return AuditDraft(
        Action.THRESHOLD_CHANGE,
        {"operator_id": operator.operator_id, "recipe": recipe_name, "thresholds": thresholds, "details": {"previous": previous}},
    )

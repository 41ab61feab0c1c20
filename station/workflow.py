"""The Capture & Classify workflow as plain data (no Qt).

One :class:`Inspection` per captured chip. The GUI asks this module what to write to the
audit log at each step, and the module decides what the operator may do next: an
uncertain call cannot simply be accepted, and a chip can be released to decapping only
once its verdict record is committed. A frame that holds no part, or not one of the kind the
models know (``InspectionResult.unfamiliar``), is routed as NO PART / UNFAMILIAR: it cannot be
accepted at all, not even with an expert's signature, only overridden (with a reason) or held. :meth:`Inspection.view` is what the screen shows:
the panel draws that and nothing else, so the screen cannot say one thing while the record
says another.

Who may do it is checked here too (``station.users.roles``), not only by greying buttons: a
technician accepts a confident call, holds and releases an accepted chip; an override, accepting
an uncertain call, releasing a held chip and changing the recipe need an expert's (or admin's)
electronic signature, which goes into the record's ``details["signature"]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from station.audit.draft import EntryDraft
from station.audit.entry import Action, Verdict
from station.capture.base import Frame
from station.capture.scale import Objective
from station.inference.familiarity import UNFAMILIAR_BANNER
from station.labels import display_name, verdict_title
from station.users.roles import Permission, Role, check_signature, require
from station.users.signatures import Signature


@dataclass(frozen=True)
class Operator:
    """The signed-in user (``station.users.UserDirectory.sign_in``)."""

    operator_id: str
    name: str
    role: Role = Role.TECHNICIAN

    @classmethod
    def from_user(cls, user) -> Operator:
        return cls(user.user_id, user.name, user.role)

    def describe(self) -> str:
        return f"{self.name} ({self.operator_id}, {self.role.value})"


class Stage(str, Enum):
    """Where one captured chip stands. The screen shows this and nothing else."""

    CLASSIFYING = "classifying"
    FAILED = "failed"  # the models could not answer: capture again
    CAPTURED = "captured"  # a result waits for the operator's verdict
    ACCEPTED = "accepted"
    OVERRIDDEN = "overridden"
    HELD = "held"
    RELEASED = "released"
    DISCARDED = "discarded"  # set aside on the record (new capture, operator switch, exit)


class Tone(str, Enum):
    """How the banner reads: the panel maps each to one colour."""

    INFO = "info"
    CONFIDENT = "confident"
    TO_PERSON = "to_person"
    OVERRIDDEN = "overridden"
    HOLD = "hold"
    DONE = "done"


@dataclass(frozen=True)
class Routing:
    """Why a result must go to a person instead of being accepted. ``kind`` is what the
    record keeps; a new kind (a part the models do not know, say) adds a branch in
    :func:`person_routing` and the banner, the buttons and the record follow."""

    kind: str  # "unfamiliar", "image_problem", "uncertain"
    banner: str
    details: tuple[str, ...] = ()

    @property
    def acceptable(self) -> bool:
        """Whether an expert may accept the call as it is (with their signature): not for a frame
        with no part the models know, where there is no call to accept."""
        return self.kind != "unfamiliar"


def person_routing(result) -> Routing | None:
    if result is None:
        return None
    if getattr(result, "unfamiliar", False):
        # no part, or one the models were never shown: whatever they named means nothing
        return Routing("unfamiliar", UNFAMILIAR_BANNER, tuple(result.problems))
    if result.image_problems:
        # the networks answered, but on a frame the recipe does not trust
        return Routing("image_problem", "IMAGE CHECK FAILED – route to expert", tuple(result.image_problems))
    if result.material is not None and result.material.uncertain:
        return Routing("uncertain", "UNCERTAIN – route to expert")
    return None


def release_label(method: str | None) -> str:
    return f"Release to {method} decapsulation" if method else "Release to decapping"


def chip_id_problem(chip: dict[str, str], recipe) -> str:
    """Why a capture may not start with these IDs ("" when it may)."""
    if chip.get("chip_id"):
        return ""
    if getattr(recipe, "allow_missing_chip_id", False):
        return ""  # the operator gives a reason instead, kept in the record
    return "Scan or type the chip ID first: every verdict is recorded against one chip."


@dataclass(frozen=True)
class InspectionView:
    """Everything the inspection panel shows for one inspection, derived from its state."""

    stage: Stage
    banner: str = ""
    banner_details: tuple[str, ...] = ()
    tone: Tone = Tone.INFO
    material: str = "—"
    material_tooltip: str = ""
    confidence: str = ""
    decap: str = "—"
    record: str = ""
    release_text: str = "Release to decapping"
    accept_text: str = "Accept"
    can_accept: bool = False
    can_override: bool = False
    can_hold: bool = False
    can_release: bool = False
    accept_tooltip: str = ""
    show_result: bool = False  # the chart and the defects table


def _material_fields(result, stage: Stage) -> dict[str, Any]:
    call = result.material
    fields = dict(stage=stage, material="not classified", material_tooltip="",
                  confidence="this recipe has no classifier", decap="—", show_result=True)
    if call is not None and getattr(result, "unfamiliar", False):
        fields.update(material="not named — no known part", material_tooltip=f"the classifier said {call.material}",
                      confidence="not a part of the kind the models know")
    elif call is not None:
        threshold = result.thresholds.get("uncertain_below", 0.0)
        fields.update(material=display_name(call.material), material_tooltip=call.material, decap=call.decap_method,
                      confidence=f"{call.confidence:.1%} (calibrated; expert below {threshold:.0%})")
    return fields


def result_view(result) -> InspectionView:
    """What a result says before anyone decided (also batch review's detail pane)."""
    routing, call = person_routing(result), result.material
    if routing is not None:
        banner, details, tone = routing.banner, routing.details, Tone.TO_PERSON
    elif call is not None:
        banner, details, tone = f"{display_name(call.material)} — {call.decap_method}", (), Tone.CONFIDENT
    else:
        banner, details, tone = "Findings ready – give the verdict", (), Tone.INFO
    tooltip = "Goes to a person: override with a reason, or hold for an expert." if routing else ""
    if routing is not None and not routing.acceptable:
        tooltip = "No part the models know: it cannot be accepted. An expert overrides it with a reason, or hold it."
    return InspectionView(**_material_fields(result, Stage.CAPTURED), banner=banner, banner_details=details,
                          tone=tone, accept_tooltip=tooltip)


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
    owner: Operator | None = None  # who captured it (or took it over): only they decide
    no_id_reason: str = ""  # the recipe allows a capture without chip ID, for this recorded reason
    reason: str = ""  # the override's or the hold's reason, once committed
    discarded_entry_id: int | None = None
    objective: Objective | None = None  # the microscope objective at the capture: the sizes' scale

    @property
    def um_per_px(self) -> float | None:
        """The image scale of record for this capture's defect sizes (None: not known)."""
        return self.objective.um_per_px if self.objective is not None else None

    # -- what the operator may do --------------------------------------------------
    @property
    def has_result(self) -> bool:
        return self.result is not None

    @property
    def routing(self) -> Routing | None:
        return person_routing(self.result)

    @property
    def uncertain(self) -> bool:
        """The result must go to a person: an uncertain call or a frame the image check rejected."""
        return self.routing is not None

    @property
    def stage(self) -> Stage:
        if self.discarded_entry_id is not None:
            return Stage.DISCARDED
        if self.release_entry_id is not None:
            return Stage.RELEASED
        if self.verdict_entry_id is not None:
            return {Verdict.ACCEPT: Stage.ACCEPTED, Verdict.OVERRIDE: Stage.OVERRIDDEN}.get(self.verdict, Stage.HELD)
        if self.error is not None:
            return Stage.FAILED
        return Stage.CAPTURED if self.has_result else Stage.CLASSIFYING

    @property
    def pending(self) -> bool:
        """Something an operator still has to do: a verdict to give, or a chip to release."""
        return self.stage is Stage.CAPTURED or self.awaiting_release

    @property
    def awaiting_release(self) -> bool:
        return self.stage in (Stage.ACCEPTED, Stage.OVERRIDDEN) and self.goes_to_decapping

    @property
    def can_accept(self) -> bool:
        """An uncertain call goes to a person: override with a reason, or hold."""
        return self.stage is Stage.CAPTURED and not self.uncertain

    @property
    def can_accept_signed(self) -> bool:
        """A result routed to a person, which an expert may accept with their signature (not a
        frame with no known part: there is no call to accept)."""
        routing = self.routing
        return self.stage is Stage.CAPTURED and routing is not None and routing.acceptable

    @property
    def can_give_verdict(self) -> bool:
        return self.stage is Stage.CAPTURED

    @property
    def can_release_held(self) -> bool:
        """A held chip with a material of record, which an expert may release with their signature."""
        return self.stage is Stage.HELD and self.goes_to_decapping and self.material is not None

    @property
    def goes_to_decapping(self) -> bool:
        """A recipe without a classifier (bare PCBs, steel) inspects only: the verdict ends the
        flow and nothing is released to decapping."""
        return getattr(self.recipe, "classifier", None) is not None

    @property
    def can_release(self) -> bool:
        return self.awaiting_release

    @property
    def decap_method(self) -> str | None:
        if self.material is None:
            return None
        return self.recipe.decap_methods.get(self.material)

    @property
    def chip_label(self) -> str:
        return self.chip.get("chip_id") or "(no chip ID)"

    def owned_by(self, operator: Operator | None) -> bool:
        return operator is not None and (self.owner is None or self.owner.operator_id == operator.operator_id)

    # -- what the screen shows -----------------------------------------------------
    def view(self) -> InspectionView:
        stage = self.stage
        if stage is Stage.CLASSIFYING:
            return InspectionView(stage, material="classifying…")
        if stage is Stage.FAILED:
            return InspectionView(stage, "NOT CLASSIFIED – capture again", (self.error or "",), Tone.HOLD,
                                  material="not classified")
        if stage is Stage.RELEASED:
            return InspectionView(stage, f"Released: {self.chip_label} → {self.decap_method}", (), Tone.DONE,
                                  record=f"Record #{self.release_entry_id} (verdict #{self.verdict_entry_id}). "
                                         "Scan the next chip.")
        if stage is Stage.DISCARDED:
            return InspectionView(stage, f"Set aside: {self.chip_label} (not released)", (), Tone.DONE,
                                  record=f"Record #{self.discarded_entry_id}. Scan the next chip.")
        if stage is Stage.CAPTURED:
            signed = {"accept_text": "Accept — expert signs…"} if self.can_accept_signed else {}
            return dataclasses.replace(result_view(self.result), can_accept=self.can_accept or self.can_accept_signed,
                                       can_override=True, can_hold=True, **signed)
        return self._decided_view(_material_fields(self.result, stage), self.result.material)

    def _decided_view(self, base: dict, call) -> InspectionView:
        stage = self.stage
        record = f"Record #{self.verdict_entry_id} committed"
        if stage is Stage.HELD:
            held_release = {"can_release": True, "release_text": "Release held chip — expert signs…"}
            return InspectionView(**{**base, "decap": "none — held"}, banner="HOLD — do not decap",
                                  banner_details=(f"Reason: {self.reason}",) if self.reason else (), tone=Tone.HOLD,
                                  record=f"{record}: {self.chip_label} held.",
                                  **(held_release if self.can_release_held else {}))
        method = self.decap_method
        if not self.goes_to_decapping:
            return InspectionView(**base, banner=f"{stage.value.upper()} — inspection only", tone=Tone.DONE,
                                  record=f"{record}: {verdict_title(self.verdict)} — inspection only "
                                         "(this recipe sends nothing to decapping).")
        shown = f"{display_name(self.material)} — {method}"
        if stage is Stage.OVERRIDDEN:
            model_said = display_name(call.material) if call is not None else "—"
            said = f"model said {model_said} ({call.confidence:.1%})" if call is not None else "overridden by a person"
            base.update(material=display_name(self.material), material_tooltip=self.material or "", decap=method or "—",
                        confidence=said)
            return InspectionView(**base, banner=f"OVERRIDDEN → {shown}", tone=Tone.OVERRIDDEN,
                                  banner_details=(f"model said {model_said}; reason: {self.reason}",),
                                  record=f"{record}: override — {self.chip_label} → {method}.",
                                  release_text=release_label(method), can_release=True)
        return InspectionView(**base, banner=f"ACCEPTED — {shown}", tone=Tone.CONFIDENT,
                              record=f"{record}: accepted — {self.chip_label} → {method}.",
                              release_text=release_label(method), can_release=True)

    # -- audit drafts --------------------------------------------------------------
    def _chip_fields(self) -> dict[str, Any]:
        return {
            "chip_id": self.chip.get("chip_id") or None,
            "lot_id": self.chip.get("lot_id") or None,
            "serial_id": self.chip.get("serial") or None,
            "recipe": self.recipe.name,
        }

    def _prediction_fields(self) -> dict[str, Any]:
        fields = result_audit_fields(self.result)
        fields.update(self._chip_fields())
        fields["details"].update(
            frame_source=self.frame.source, frame_id=self.frame.frame_id, frame_time=self.frame.timestamp,
            **capture_details(self.frame, self.objective),
        )
        if self.routing is not None:
            fields["details"]["routed_to_person"] = self.routing.kind
        if self.no_id_reason:
            fields["details"]["no_chip_id_reason"] = self.no_id_reason
        return fields

    def _check_operator(self, operator: Operator) -> None:
        if not self.owned_by(operator):
            raise ValueError(f"this result belongs to operator {self.owner.operator_id}: "
                             "hand it over or discard it first")

    @staticmethod
    def verdict_permission(verdict: Verdict, uncertain: bool) -> Permission:
        if verdict is Verdict.OVERRIDE:
            return Permission.OVERRIDE
        if verdict is Verdict.REJECT_HOLD:
            return Permission.HOLD
        return Permission.ACCEPT_UNCERTAIN if uncertain else Permission.ACCEPT

    def verdict_draft(self, operator: Operator, verdict: Verdict, material: str | None = None, reason: str = "",
                      signature: Signature | None = None) -> EntryDraft:
        """The record of the operator's decision, with the archived image and every prediction.

        An override, or accepting a result routed to a person, needs ``signature`` (an expert's
        or admin's, with that meaning): ``station.users.roles.PermissionDenied`` otherwise.
        """
        if not self.has_result:
            raise ValueError("no result to give a verdict on")
        if self.verdict_entry_id is not None:
            raise ValueError(f"this inspection already has its verdict (record {self.verdict_entry_id})")
        if self.discarded_entry_id is not None:
            raise ValueError("this inspection was set aside")
        self._check_operator(operator)
        routing = self.routing
        if verdict is Verdict.ACCEPT and routing is not None and not routing.acceptable:
            raise ValueError("no part of the kind the models know in this frame: it cannot be accepted; "
                             "an expert overrides it with a reason, or hold it")
        permission = self.verdict_permission(verdict, self.uncertain)
        if permission in (Permission.OVERRIDE, Permission.ACCEPT_UNCERTAIN):
            check_signature(signature, permission)
        else:
            require(operator.role, permission, operator.describe())
        if not self.chip.get("chip_id") and not self.no_id_reason:
            raise ValueError("a verdict needs the chip ID (or the recipe's recorded reason for none)")
        if verdict in (Verdict.OVERRIDE, Verdict.REJECT_HOLD) and not reason.strip():
            raise ValueError(f"{'an override' if verdict is Verdict.OVERRIDE else 'a hold'} needs a reason")
        if verdict is Verdict.OVERRIDE and self.goes_to_decapping and not material:
            raise ValueError("an override needs the chosen material and a reason")
        call = self.result.material
        if verdict is Verdict.OVERRIDE:
            chosen = material if self.goes_to_decapping else None
        elif routing is not None and not routing.acceptable:
            chosen = None  # held with no part the models know: what they named is no material of record
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
        if signature is not None:
            fields["details"]["signature"] = signature.to_dict()
        return EntryDraft(action, **fields)

    def commit_verdict(self, draft: EntryDraft, entry_id: int) -> None:
        self.verdict = draft.verdict
        self.material = draft.material
        self.reason = draft.reason or ""
        self.verdict_entry_id = entry_id

    def release_draft(self, operator: Operator, signature: Signature | None = None) -> EntryDraft:
        """Release to decapping; a held chip needs an expert's ``signature`` ("release approved")."""
        if self.can_release_held:
            check_signature(signature, Permission.RELEASE_HELD)
        elif not self.can_release:
            raise ValueError("release needs a committed accept/override record first")
        else:
            require(operator.role, Permission.RELEASE, operator.describe())
        self._check_operator(operator)
        fields = {
            "operator_id": operator.operator_id,
            **self._chip_fields(),
            "material": self.material,
            "decap_method": self.decap_method,
            "refers_to": self.verdict_entry_id,
        }
        details: dict[str, Any] = {}
        if self.no_id_reason:
            details["no_chip_id_reason"] = self.no_id_reason
        if signature is not None:
            details["signature"] = signature.to_dict()
        if details:
            fields["details"] = details
        return EntryDraft(Action.RELEASE, **fields)

    def handover_draft(self, previous: Operator, operator: Operator) -> EntryDraft:
        """The pending result passes from ``previous`` to ``operator``, who then decides it."""
        if not self.pending:
            raise ValueError("nothing pending to hand over")
        return EntryDraft(Action.HANDOVER, **{
            "operator_id": operator.operator_id,
            **self._chip_fields(),
            "material": self.material,
            "refers_to": self.verdict_entry_id,
            "details": {"from_operator": previous.operator_id, "stage": self.stage.value},
        })

    def discard_draft(self, operator: Operator, why: str) -> EntryDraft:
        """The pending result is set aside: no verdict given, or an accepted chip not released."""
        if not self.pending:
            raise ValueError("nothing pending to set aside")
        return EntryDraft(Action.DISCARD, **{
            "operator_id": operator.operator_id,
            **self._chip_fields(),
            "material": self.material,
            "refers_to": self.verdict_entry_id,
            "reason": why,
            "details": {"stage": self.stage.value, "released": False,
                        "owner": self.owner.operator_id if self.owner else None},
        })


def capture_details(frame: Frame, objective: Objective | None) -> dict[str, Any]:
    """The camera that took ``frame`` (identity, resolution, exposure, gain as read back) and the
    objective with its µm/px, for a record's ``details``."""
    height, width = frame.image.shape[:2]
    camera = {**(frame.camera.to_dict() if frame.camera is not None else {}), "width": int(width), "height": int(height)}
    details: dict[str, Any] = {"camera": camera}
    if objective is not None:
        details["objective"] = objective.to_dict()
    return details


def objective_of_record(details: dict[str, Any]) -> Objective | None:
    """The objective a record's ``details`` name (None for records before objectives, or without one)."""
    recorded = details.get("objective")
    return Objective.from_dict(recorded) if isinstance(recorded, dict) else None


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
    if getattr(result, "detector_tiles", 0):  # the detector also saw the frame at full resolution
        fields["details"]["detector_tiles"] = result.detector_tiles
    familiarity = getattr(result, "familiarity", None)
    if familiarity is not None:
        fields["details"]["familiarity"] = familiarity.to_dict()
        if not familiarity.familiar:
            fields["details"]["unfamiliar"] = list(familiarity.reasons)
            fields["details"]["suppressed_defects"] = result.suppressed_defects
    call = result.material
    if call is not None:
        fields.update(
            probabilities={c: round(float(p), 6) for c, p in zip(call.classes, call.probabilities)},
            predicted_material=call.material,
            uncertain=bool(call.uncertain),
        )
    return fields


def sign_in_draft(operator: Operator, previous: Operator | None, recipe: str | None = None) -> EntryDraft:
    """Sign-in, with the recipe in use at that moment (a later change is its own entry)."""
    details = {"name": operator.name, "role": operator.role.value}
    if previous is not None:
        details["previous_operator"] = previous.operator_id
    return EntryDraft(Action.SIGN_IN, **{"operator_id": operator.operator_id, "recipe": recipe, "details": details})


def sign_out_draft(operator: Operator) -> EntryDraft:
    return EntryDraft(Action.SIGN_OUT, **{"operator_id": operator.operator_id, "details": {"name": operator.name}})


def recipe_change_draft(
    operator: Operator, recipe_name: str, models: dict[str, str], previous: str | None, signature: Signature | None = None
) -> EntryDraft:
    """A change of the station's recipe (and so of its models): an expert's or admin's signature.
    The first recipe of a session (``previous`` None: the one in the settings) needs none."""
    details: dict[str, Any] = {"previous": previous}
    if previous is not None:
        check_signature(signature, Permission.CHANGE_RECIPE)
    if signature is not None:
        details["signature"] = signature.to_dict()
    return EntryDraft(
        Action.RECIPE_CHANGE,
        **{"operator_id": operator.operator_id, "recipe": recipe_name, "models": models, "details": details},
    )


def settings_change_draft(operator: Operator, setting: str, value: Any, previous: Any,
                          signature: Signature | None) -> EntryDraft:
    """A station setting changed (image scale, foot-pedal key): an admin's signature."""
    check_signature(signature, Permission.CHANGE_SETTINGS)
    return EntryDraft(Action.SETTINGS_CHANGE, operator_id=operator.operator_id, details={
        "setting": setting, "value": value, "previous": previous, "signature": signature.to_dict()})


def session_lock_draft(operator: Operator, idle_minutes: float) -> EntryDraft:
    """An idle session locked itself; the next person signs in with their password."""
    return EntryDraft(
        Action.SESSION_LOCK,
        **{"operator_id": operator.operator_id, "details": {"name": operator.name, "idle_minutes": idle_minutes}},
    )


def threshold_change_draft(operator: Operator, recipe_name: str, thresholds: dict[str, float], previous: dict[str, float]) -> EntryDraft:
    return EntryDraft(
        Action.THRESHOLD_CHANGE,
        **{"operator_id": operator.operator_id, "recipe": recipe_name, "thresholds": thresholds, "details": {"previous": previous}},
    )

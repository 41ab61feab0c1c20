"""Operator decisions on batch items, each one an audit entry (no Qt).

A batch verdict has the shape of Capture & Classify's (``station.workflow.Inspection.verdict_draft``):
the same prediction fields (recipe, model sha256s, thresholds, probabilities, defects), the
material of record, the verdict, the reason and the decapsulation method, and the image archived
losslessly by the audit log. The action is ``BATCH_VERDICT``; ``details`` name the folder, the
file and its sha256, and whether the decision was part of a bulk accept.

The rules are the workflow's: an uncertain call, or a frame with no part the models know (NO PART
/ UNFAMILIAR), cannot be accepted (override it with a reason); a bulk accept takes only what the
recipe's ``BulkRule`` calls confident, defect-free and looked at on the part;
an override needs a reason, and the material where the recipe classifies. A second decision on
an item is a ``CORRECTION`` that refers to the first, with its reason. The file is hashed again
before archiving, so an entry never pairs a prediction with an image it was not made on.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

from station.audit import Action, AuditEntry, AuditLog, EntryDraft, Verdict
from station.capture.images import ImageReadError, decode_image
from station.capture.scale import Objective
from station.review.scan import absolute_path
from station.review.store import BatchStore, ItemRecord, ItemRow, Review
from station.users.roles import Permission, PermissionDenied, check_signature, require
from station.users.signatures import Signature
from station.workflow import Operator, result_audit_fields


class VerdictError(ValueError):
    """This decision cannot be recorded for this item; the message says why."""


@dataclass(frozen=True)
class BulkRule:
    """What a bulk accept takes: a call not routed to a person, no defect reported, a calibrated
    confidence of at least ``min_confidence`` (recipes that classify), and an attention map with
    at least ``min_attention_on_part`` of its mass inside the part (``InspectionResult.attention_on_part``)."""

    min_confidence: float = 0.9
    min_attention_on_part: float = 0.6
    classifies: bool = True

    @classmethod
    def from_recipe(cls, recipe) -> BulkRule:
        return cls(float(recipe.bulk_accept_confidence), float(recipe.min_attention_on_part),
                   recipe.classifier is not None)

    def describe(self) -> str:
        """The rule as the batch window states it."""
        confident = f"confident (≥ {self.min_confidence:.0%}), " if self.classifies else ""
        return f"{confident}defect-free, attention ≥ {self.min_attention_on_part:.0%} on the part"

    def refusal(self, row: ItemRow) -> str | None:
        """Why ``row`` is no bulk-accept candidate (None when it is one)."""
        if not row.is_done or row.is_reviewed:
            return f"{row.relative_path} is {row.status_text}"
        if row.uncertain:
            return f"{row.relative_path} goes to a person (uncertain, image check, or no known part)"
        if row.n_defects:
            return f"{row.relative_path} has defects reported"
        if self.classifies and (row.confidence is None or row.confidence < self.min_confidence):
            return f"{row.relative_path}: confidence below the recipe's {self.min_confidence:.0%} for bulk accept"
        if row.attention_on_part is None:
            return f"{row.relative_path} has no attention map to check against the part (inspect with maps)"
        if row.attention_on_part < self.min_attention_on_part:
            return (f"{row.relative_path}: only {row.attention_on_part:.0%} of the attention lies on the part "
                    f"(bulk accept needs {self.min_attention_on_part:.0%})")
        return None


@dataclass(frozen=True)
class BatchContext:
    """Which review a decision belongs to."""

    folder: Path
    store_dir: Path
    decap_methods: dict[str, str]  # the recipe's material -> decapsulation method
    bulk_rule: BulkRule = BulkRule()
    objective: Objective | None = None  # in use when the folder was opened: the scale of its defects' sizes


@dataclass(frozen=True)
class VerdictRequest:
    """One decision for one or more items (a bulk accept is one request, one entry per item)."""

    item_ids: tuple[int, ...]
    verdict: Verdict
    operator: Operator
    material: str | None = None  # override: the operator's material
    reason: str = ""
    bulk: bool = False
    signature: Signature | None = None  # an override: the expert's e-signature ("override approved")


def refusal(row: ItemRow, verdict: Verdict) -> str | None:
    """Why ``verdict`` cannot be given on ``row`` (None when it can)."""
    if not row.is_done:
        return f"{row.relative_path} has no result to review ({row.state})"
    if verdict is Verdict.ACCEPT:
        if row.is_reviewed:
            return f"{row.relative_path} is already {row.status_text} (record #{row.audit_entry_id}); override to correct it"
        if row.uncertain:
            return f"{row.relative_path}: an uncertain result (material call or image check) cannot be accepted; override it with a reason"
    return None


def verdict_draft(
    record: ItemRecord,
    folder: Path,
    recipe_decap_methods: dict[str, str],
    operator: Operator,
    verdict: Verdict,
    material: str | None = None,
    reason: str = "",
    *,
    bulk: bool = False,
    signature: Signature | None = None,
    bulk_rule: BulkRule | None = None,
    objective: Objective | None = None,
) -> EntryDraft:
    """The audit entry for a decision on ``record`` (its ``image`` is added when committing).
    An override needs an expert's (or admin's) ``signature``: ``VerdictError`` otherwise."""
    row = record.row
    problem = refusal(row, verdict)
    if verdict is Verdict.ACCEPT and record.result is not None and record.result.unfamiliar:
        problem = (f"{row.relative_path}: no part of the kind the models know (NO PART / UNFAMILIAR) cannot be "
                   "accepted; override it with a reason")
    if not problem and bulk:
        problem = (bulk_rule or BulkRule()).refusal(row)
    if problem:
        raise VerdictError(problem)
    try:
        if verdict is Verdict.OVERRIDE:
            check_signature(signature, Permission.OVERRIDE)
        else:
            require(operator.role, Permission.ACCEPT, operator.describe())
    except PermissionDenied as exc:
        raise VerdictError(str(exc)) from exc
    if verdict not in (Verdict.ACCEPT, Verdict.OVERRIDE):
        raise VerdictError(f"a batch item is accepted or overridden, not {verdict.value!r}")
    reason = reason.strip()
    if record.result is None:
        raise VerdictError(f"{row.relative_path} has no stored result")
    result = record.result
    call = result.material
    if verdict is Verdict.OVERRIDE and not reason:
        raise VerdictError("an override needs a reason")
    if verdict is Verdict.OVERRIDE and call is not None and not material:
        raise VerdictError("an override needs the chosen material and a reason")
    if call is None:
        chosen = None  # a recipe without a classifier: an override corrects the findings only
    else:
        chosen = material if verdict is Verdict.OVERRIDE else call.material
    fields = result_audit_fields(result)
    fields.update(
        operator_id=operator.operator_id,
        recipe=result.recipe,
        material=chosen,
        verdict=verdict,
        reason=reason or None,
        decap_method=recipe_decap_methods.get(chosen) if chosen else None,
    )
    fields["details"].update(batch_folder=str(folder), file=row.relative_path, file_sha256=row.sha256, bulk=bulk)
    if objective is not None:
        fields["details"]["objective"] = objective.to_dict()
    if signature is not None:
        fields["details"]["signature"] = signature.to_dict()
    action = Action.BATCH_VERDICT
    if row.is_reviewed:
        # a second decision amends the first: append-only, never an edit
        action = Action.CORRECTION
        fields["refers_to"] = row.audit_entry_id
        if not reason:
            raise VerdictError(f"{row.relative_path} is already {row.status_text}: a correction needs a reason")
    return EntryDraft(action, **fields)


def commit_verdict(
    audit_log: AuditLog, store: BatchStore, context: BatchContext, item_id: int, request: VerdictRequest
) -> tuple[AuditEntry, ItemRow]:
    """Archive the item's image, append its audit entry, then mark it reviewed in the store.

    Raises ``VerdictError`` (nothing written) when the decision is refused or the file changed
    or vanished since it was inspected; ``AuditWriteError`` when the log cannot be written.
    """
    record = store.record(item_id)
    folder = context.folder
    draft = verdict_draft(
        record, folder, context.decap_methods, request.operator, request.verdict, request.material, request.reason,
        bulk=request.bulk, signature=request.signature, bulk_rule=context.bulk_rule, objective=context.objective,
    )
    path = absolute_path(folder, record.row.relative_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerdictError(f"cannot read '{path}' to archive it ({exc.strerror or exc})") from exc
    if hashlib.sha256(data).hexdigest() != record.row.sha256:
        raise VerdictError(f"'{path}' changed since it was inspected; inspect it again before deciding")
    try:
        image = decode_image(data, path, max_pixels=None)  # its content passed the cap when it was inspected
    except ImageReadError as exc:
        raise VerdictError(str(exc)) from exc
    entry = audit_log.append(dataclasses.replace(draft, image=image))
    review = Review.ACCEPTED if request.verdict is Verdict.ACCEPT else Review.OVERRIDDEN
    row = store.set_review(
        item_id, review, material=entry.material, reason=entry.reason, operator_id=request.operator.operator_id,
        audit_entry_id=entry.id,
    )
    return entry, row
